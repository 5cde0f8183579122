"""`adapt`: the data-dependent config of a model (vocabulary, class names) from a training split."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmzoo.data.easy_vqa import END, START
from mmzoo.data.pipeline import SOURCE_KEYS
from mmzoo.data.text import standardize, vectorizer
from mmzoo.errors import InvalidValue


# `unit="auto"` of a speech recogniser: words when the training transcripts use at most this many
# distinct words (a closed vocabulary: digits, commands), else characters.
WORDS_UNIT_MAX = 100

# The vocabulary cap of `adapt`: the most frequent tokens (padding and OOV among them), as the
# Keras text-classification examples cap theirs. It bounds the model's embedding whatever the
# corpus size; AG News (19,766 distinct words), Flickr8k captions and easy-VQA fit under it.
MAX_TOKENS = 20_000


def adapt(name, dataset, *, max_tokens=MAX_TOKENS, config=None):
    """Config overrides adapted on `dataset` (the training split): `vocabulary`, `labels`, and
    for captions the text length (`max_length` of a captioner: the 95th percentile of the
    caption lengths in words, plus the start token; `sequence_length` of a retrieval model: that
    percentile); for transcription the CTC `tokens`: the characters of the standardised
    transcripts (sorted, `" "` among them), or their words with `unit="words"`; with
    `unit="auto"` (the default) words when there are at most `WORDS_UNIT_MAX` (100) distinct
    ones, else characters, and the `unit` chosen.

    Only the fields the model's config has are returned, so the result can go straight to
    `mmzoo.build(name, **overrides)`. Vocabulary tokens are ordered by frequency (as
    `TextVectorization.adapt` orders them) and capped at `max_tokens`; class names are sorted.
    Everything is counted in one streaming pass over `dataset` (token counts, caption-length
    histogram, label and character sets): memory grows with the distinct tokens, not the rows.

    Args:
        name: str. A registered model name.
        dataset: tf.data.Dataset. Raw example dicts from `mmzoo.data.load` (training split).
        max_tokens: int or None. Keep at most this many of the most frequent tokens (padding
            and OOV included; default `MAX_TOKENS`, 20,000); None keeps every token.
        config: dict or None. The config overrides the model will also get (e.g. `unit`).

    Examples:
    ```python
    train = mmzoo.data.load("easy_vqa", split="train")
    model = mmzoo.build("vqa_cnn_lstm", **mmzoo.data.adapt("vqa_cnn_lstm", train))
    ```
    """
    from mmzoo.registry import get_spec

    spec = get_spec(name)
    fields = {f.name for f in dataclasses.fields(spec.config)}
    overrides = {}
    text_inputs = [i for i in spec.inputs if i in ("text", "question")]
    if text_inputs and "vocabulary" in fields:
        key = next((k for k in SOURCE_KEYS[text_inputs[0]] if k in dataset.element_spec), None)
        if key is None:
            raise InvalidValue(f"cannot adapt {name!r}: its examples have no text "
                               f"({sorted(dataset.element_spec)})")
        texts = dataset.map(lambda e: e[key], num_parallel_calls=tf.data.AUTOTUNE)
        if key == "captions":  # every caption of every image
            texts = texts.unbatch()
        ngrams = dict(config or {}).get("ngrams", getattr(spec.config(), "ngrams", 1))
        layer = vectorizer(max_tokens=max_tokens, ngrams=ngrams)
        layer.adapt(texts.batch(1024))
        tokens = tuple(str(t) for t in layer.get_vocabulary()[2:])
        if spec.task == "captioning":
            tokens = (START, END) + tokens
        overrides["vocabulary"] = tokens
        if key == "captions":
            overrides.update(_caption_length(spec, fields, texts))
    if spec.task == "transcription" and "tokens" in fields:
        if "transcript" not in dataset.element_spec:
            raise InvalidValue(f"cannot adapt {name!r}: its examples have no 'transcript' "
                               f"({sorted(dataset.element_spec)})")
        unit = dict(config or {}).get("unit", spec.config().unit)
        texts = dataset.map(lambda e: standardize(e["transcript"]),
                            num_parallel_calls=tf.data.AUTOTUNE)
        characters, words = set(), set()
        for batch in texts.batch(4096).as_numpy_iterator():
            for text in batch:
                text = text.decode()
                characters.update(text)
                words.update(text.split())
        if unit == "auto":
            unit = "words" if len(words) <= WORDS_UNIT_MAX else "characters"
            # tokens given in `config` win over these: the model reads their unit from them
            if "unit" in fields and "tokens" not in dict(config or {}):
                overrides["unit"] = unit
        overrides["tokens"] = tuple(sorted(words if unit == "words" else characters))
    if spec.task in ("classification", "vqa") and "labels" in fields:
        if "label" not in dataset.element_spec:
            raise InvalidValue(f"cannot adapt {name!r}: its examples have no 'label'")
        overrides["labels"] = tuple(label_names(dataset))
    return overrides


def label_names(dataset):
    """The labels of `dataset`'s examples as sorted strings, in one streaming pass: numbers
    sorted as numbers (FSDD digits: 0 < 2 < 10, and a table's `"2"` < `"10"`), before anything
    else, which sorts as text; each written as the
    pipeline and the exported model write it (`label_text`)."""
    seen = set()
    for batch in dataset.map(lambda e: e["label"]).batch(4096).as_numpy_iterator():
        seen.update(np.asarray(batch).tolist())
    values = sorted(seen)
    if all(isinstance(v, (bool, np.bool_)) for v in values) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return sorted(label_text(values), key=_number_first)
    return label_text(values)


def _number_first(text):
    """Sort key of a label: labels that are numbers (`"2"`, `"0.5"`: a table's numeric labels
    as text) by value, before the others, which sort as text."""
    try:
        value = float(text)
    except ValueError:
        return (1, 0.0, text)
    return (0, value, text) if np.isfinite(value) else (1, 0.0, text)


def label_text(values):
    """Labels (a list of Python or NumPy values, or bytes) as strings, exactly as
    `mmzoo.data.Preprocessor.label_string` writes them in the graph: text as it is, integers
    in decimal, floats in their shortest form (`1.0` is `1`, `0.5` is `0.5`), booleans as
    `true`/`false`."""
    values = list(values)
    if not values:
        return []
    if isinstance(values[0], (bytes, str)):
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    from mmzoo.data.preprocessor import Preprocessor

    return [t.decode() for t in Preprocessor.label_string(tf.constant(values)).numpy()]


def _caption_length(spec, fields, captions):
    """`max_length` / `sequence_length` overrides that fit 95% of `captions` (a string dataset)."""
    words = captions.map(lambda c: tf.size(tf.strings.split(standardize(c))),
                         num_parallel_calls=tf.data.AUTOTUNE)
    counts = np.zeros(0, np.int64)  # counts[n]: captions of n words (a histogram, not a list)
    for batch in words.batch(4096).as_numpy_iterator():
        new = np.bincount(batch)
        if len(new) > len(counts):
            counts = np.pad(counts, (0, len(new) - len(counts)))
        counts[:len(new)] += new
    # the 95th percentile as np.percentile's default (linear) method computes it on the lengths
    position = 0.95 * (counts.sum() - 1)
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, np.floor(position), side="right"))
    high = int(np.searchsorted(cumulative, np.ceil(position), side="right"))
    p95 = max(int(np.ceil(low + (high - low) * (position - np.floor(position)))), 1)
    if spec.task == "captioning" and "max_length" in fields:
        return {"max_length": p95 + 1}
    if "sequence_length" in fields:
        return {"sequence_length": p95}
    return {}
