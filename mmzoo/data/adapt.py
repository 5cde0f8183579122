"""`adapt`: the data-dependent config of a model (vocabulary, class names) from a training split."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mmzoo.data.labels import label_names, label_text  # noqa: F401  (re-exported)
from mmzoo.data.pipeline import SOURCE_KEYS
from mmzoo.data.text import standardize, vectorizer
from mmzoo.errors import InvalidValue
from mmzoo.registry import get_spec, get_task


# The vocabulary cap of `adapt`: the most frequent tokens (padding and OOV among them), as the
# Keras text-classification examples cap theirs. It bounds the model's embedding whatever the
# corpus size; AG News (19,766 distinct words), Flickr8k captions and easy-VQA fit under it.
MAX_TOKENS = 20_000


def adapt(name, dataset, *, max_tokens=MAX_TOKENS, config=None):
    """Config overrides adapted on `dataset` (the training split): `vocabulary`, `labels`, and
    for captions the text length (`max_length` of a captioner: the 95th percentile of the
    caption lengths in words, plus the start token; `sequence_length` of a retrieval model: that
    percentile); for transcription the CTC `tokens` and their `unit`
    (`mmzoo.tasks.transcription.transcript_tokens`): what the model's task adapts
    (`Task.adapt`).

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
    spec = get_spec(name)
    task = get_task(spec.task)
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
        overrides["vocabulary"] = task.text_tokens(
            tuple(str(t) for t in layer.get_vocabulary()[2:]))
        if key == "captions":
            overrides.update(caption_length(task, fields, texts))
    overrides.update(task.adapt(spec, dataset, fields, dict(config or {})))
    return overrides


def caption_length(task, fields, captions):
    """`max_length` / `sequence_length` overrides that fit 95% of `captions` (a string dataset):
    their 95th percentile in words (`task.caption_length` makes it the field it sets)."""
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
    return task.caption_length(p95, fields)
