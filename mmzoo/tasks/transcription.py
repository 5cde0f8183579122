"""Speech to text: a waveform of any length in, a transcript out, through CTC.

A recogniser takes `audio` of any length (zero-padded at the end, an utterance ending at its
last non-zero sample) and gives per-frame CTC log-probabilities `[batch, frames, classes]`
through a `mmzoo.layers.CTCTokens` layer named `frames` carrying the tokens (class 0 is the
blank, 1 out of vocabulary, token `i` is class `i + 2`), blank-certain on the padding frames
(`parts`). It trains on transcripts turned into CTC ids, utterances of similar length batched
together, and is scored with word and character error rates, greedy against beam search.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mmzoo import contract
from mmzoo.artifacts import digest
from mmzoo.data import waveform
from mmzoo.data.pipeline import pipeline
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.data.text import standardize
from mmzoo.errors import InvalidValue
from mmzoo.layers.speech import CTCTokens
from mmzoo.layers.vocab import OOV, PAD
from mmzoo.metrics import speech_scores
from mmzoo.registry import register_task
from mmzoo.tasks.base import Task, as_list, decoder_table, zeroed

DECODERS = ("greedy", "beam")
# The beam width the bench reports and the SavedModel serves (`serving_default`).
BEAM_WIDTH = 16
# Utterance lengths (seconds) that separate the buckets of similar length batched together in
# training, so a batch pads little (`tf.data.Dataset.bucket_by_sequence_length`).
BUCKET_SECONDS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0, 24.0)

# `unit="auto"` of a speech recogniser: words when the training transcripts use at most this many
# distinct words (a closed vocabulary: digits, commands), else characters.
WORDS_UNIT_MAX = 100

Transcriber = collections.namedtuple("Transcriber", "tokens unit")
Transcriber.__doc__ = """What a transcription model's outputs index: its `tokens` (class `i + 2`)
and their `unit` (`characters` or `words`)."""


def parts(model):
    """The `Transcriber` of a transcription model: its `CTCTokens` output layer's tokens."""
    layer = contract.find(model, "frames")
    if not isinstance(layer, CTCTokens):
        TRANSCRIPTION.fail(model, "has no mmzoo.layers.CTCTokens layer named 'frames' (its "
                                  "per-frame CTC output carries the tokens the classes stand "
                                  "for)")
    return Transcriber(tuple(layer.tokens), layer.unit)


def transcript_units(transcriber, strings):
    """Transcripts `[batch]` -> ragged units: the characters of the standardised text (words
    separated by one space) or its words."""
    clean = standardize(strings)
    if transcriber.unit == "words":
        return tf.strings.split(clean)
    return tf.strings.unicode_split(clean, "UTF-8")


def transcript_ids(pre, strings):
    """Transcripts `[batch]` -> ragged int32 CTC target ids of the model of `pre` (token `i` is
    `i + 2`, a unit outside the tokens 1); `ragged.to_tensor()` pads them with 0, the blank that
    `keras.losses.CTC` reads as padding."""
    transcriber = parts(pre.model)
    lookup = pre.cached("token_lookup", lambda: keras.layers.StringLookup(
        vocabulary=list(transcriber.tokens), num_oov_indices=1))
    units = transcript_units(transcriber, strings)
    return tf.cast(tf.ragged.map_flat_values(lookup, units), tf.int32) + 1


def transcript_strings(model, ids):
    """Decoded ids `[batch, length]` of `model` (blank 0, out-of-vocabulary 1 and the -1 past
    the end are dropped) -> tf.string transcripts, words separated by single spaces."""
    transcriber = parts(model)
    table = tf.constant([PAD, OOV] + list(transcriber.tokens))
    ids = tf.convert_to_tensor(ids, tf.int32)
    kept = tf.ragged.boolean_mask(tf.gather(table, tf.maximum(ids, 0)), ids > 1)
    separator = " " if transcriber.unit == "words" else ""
    joined = tf.strings.reduce_join(kept, axis=1, separator=separator)
    return tf.strings.strip(tf.strings.regex_replace(joined, " +", " "))


def transcript_tokens(dataset, unit, name):
    """`(tokens, unit)` of the training transcripts: their characters (sorted, `" "` among
    them) or their words; `unit="auto"`: words when there are at most `WORDS_UNIT_MAX` distinct
    ones, else characters. Counted in one streaming pass."""
    if "transcript" not in dataset.element_spec:
        raise InvalidValue(f"cannot adapt {name!r}: its examples have no 'transcript' "
                           f"({sorted(dataset.element_spec)})")
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
    return tuple(sorted(words if unit == "words" else characters)), unit


def decode_ids(log_probs, method="greedy", *, beam_width=BEAM_WIDTH):
    """Token ids `[batch, frames]` (-1 past the end) of per-frame log-probabilities, decoded
    with `keras.ops.ctc_decode` (blank is class 0): `greedy` (best class per frame, repeats
    merged, blanks dropped) or `beam` (`beam_search` with `beam_width` beams, the best path)."""
    if method not in DECODERS:
        raise InvalidValue(f"unknown decoding method {method!r}; use one of {list(DECODERS)}")
    log_probs = ops.convert_to_tensor(log_probs)
    batch, frames = ops.shape(log_probs)[0], ops.shape(log_probs)[1]
    lengths = ops.full((batch,), frames, "int32")  # padding frames are a certain blank
    strategy = "greedy" if method == "greedy" else "beam_search"
    decoded, _ = ops.ctc_decode(log_probs, lengths, strategy=strategy, beam_width=beam_width,
                                top_paths=1, mask_index=0)
    return decoded[0]


def pad_waveforms(waveforms):
    """A list of 1-D waveforms -> float32 `[batch, longest]`, zero-padded at the end."""
    waveforms = [np.asarray(w, dtype="float32").reshape(-1) for w in waveforms]
    out = np.zeros((len(waveforms), max((len(w) for w in waveforms), default=0)), "float32")
    for i, w in enumerate(waveforms):
        out[i, :len(w)] = w
    return out


def transcribe(model, waveforms, method="greedy", *, beam_width=BEAM_WIDTH):
    """Transcripts of waveforms at the model's sample rate, any lengths.

    Args:
        model: keras.Model. A `speech_ctc` model (or any transcriber: `parts`).
        waveforms: list of 1-D float arrays (zero-padded together here), or a float array
            `[batch, samples]` already zero-padded at the end.
        method: str. `greedy` or `beam`.
        beam_width: int. Beams for `beam`.

    Returns:
        A list of str, words separated by single spaces.

    Examples:
    ```python
    mmzoo.tasks.transcription.transcribe(model, [wave_a, wave_b], "beam")  # ['three one', ...]
    ```
    """
    audio = pad_waveforms(waveforms) if isinstance(waveforms, (list, tuple)) else \
        np.asarray(waveforms, dtype="float32")
    log_probs = model({"audio": ops.convert_to_tensor(audio)}, training=False)
    ids = decode_ids(log_probs, method, beam_width=beam_width)
    return as_list(transcript_strings(model, ops.convert_to_numpy(ids)).numpy())


def utterance_batches(ds, pre, batch_size, training, augment, extras=()):
    """Utterances of any length -> `({"audio": [batch, longest]}, transcript ids [batch,
    longest])`, both zero-padded at the end. Training augments each waveform (speed 0.9-1.1x,
    `mmzoo.data.waveform.perturb_speed`; gain and noise, `mmzoo.data.waveform.augment` without
    a shift) and batches utterances of similar length together; evaluation keeps the order.
    (0-0.5 s of silence added around each training utterance made the test WER 6.4% against
    1.8% without it, at 30 epochs: it is not done.)"""
    if augment:
        rate = pre.sample_rate

        def perturb(wave):
            return waveform.augment(waveform.perturb_speed(wave, rate), rate, max_shift=0.0)

        ds = ds.map(lambda e: {**e, "audio": perturb(e["audio"])},
                    num_parallel_calls=tf.data.AUTOTUNE)
    shapes = {"audio": [None], "transcript": [None], **{f"extra_{k}": [] for k in extras}}
    ds = ds.map(lambda e: {k: e[k] for k in shapes})
    if training:
        bounds = [int(s * pre.sample_rate) for s in BUCKET_SECONDS]
        ds = ds.bucket_by_sequence_length(
            lambda e: tf.shape(e["audio"])[0], bounds, [batch_size] * (len(bounds) + 1),
            padded_shapes=shapes)
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=shapes)

    def split(e):
        out = ({"audio": e["audio"]}, e["transcript"])
        return (*out, {k: e[f"extra_{k}"] for k in extras}) if extras else out

    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE)


class Transcription(Task):
    """Per-frame CTC log-probabilities of a waveform of any length."""

    summary = "a transcript of a waveform of any length, through CTC (greedy or beam search)"
    intended_use = ("Transcribe short utterances of the training vocabulary at the model's "
                    "sample rate.")
    limits = ("Portable exports give per-frame CTC log-probabilities: the runtime decodes them "
              "(`ctc` in metadata.json).",)
    decoders = DECODERS
    checked_examples = 64  # validation utterances transcribed after training
    audio_any_length = True
    portable_output = "frames"

    def problems(self, model):
        return contract.lacks(model, parts)

    def adapt(self, spec, dataset, fields, config):
        """The CTC `tokens` of the training transcripts (`transcript_tokens`),
        and the `unit` chosen when the config leaves it to them (`auto`)."""
        if "tokens" not in fields:
            return {}
        unit = config.get("unit", getattr(spec.config(), "unit", "characters"))
        tokens, chosen = transcript_tokens(dataset, unit, spec.name)
        out = {}
        # tokens given in `config` win over these: the model reads their unit from them
        if unit == "auto" and "unit" in fields and "tokens" not in config:
            out["unit"] = chosen
        out["tokens"] = tokens
        return out

    # --- the input pipeline -----------------------------------------------------------------

    def check_examples(self, model, element):
        if "transcript" not in element:
            raise InvalidValue(f"model {model.name!r} ({self.name}) needs a 'transcript' in "
                               f"each example; the dataset has {sorted(element)}; load the data "
                               f"for task {self.name!r} (e.g. digit_sequences:PATH or "
                               "speech:PATH)")

    def prepare(self, pre, example):
        # one by one: utterances differ in length
        return {"transcript": transcript_ids(pre, example["transcript"][None])[0]}

    def identity(self, model):
        transcriber = parts(model)
        return {"tokens": digest([list(transcriber.tokens), transcriber.unit])}

    def batch(self, ds, pre, batch_size, training, augment, extras):
        return utterance_batches(ds, pre, batch_size, training, augment, extras)

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model, dataset, batch_size, ablate=None, forward=None):
        forward = forward or (lambda x: model(x, training=False))
        keys = ("transcript",) + (("speaker",) if "speaker" in dataset.element_spec else ())
        ds = pipeline(model, dataset, batch_size=batch_size, cache="none", extras=keys)
        if ablate:
            ds = zeroed(ds, ablate)
        hyps = {method: [] for method in DECODERS}
        references, speakers = [], []
        for x, _, extra in ds:  # the split is read once: inputs, references and speakers
            log_probs = forward(x)
            for method in DECODERS:
                ids = decode_ids(log_probs, method)
                hyps[method] += as_list(transcript_strings(model, ids).numpy())
            references += as_list(extra["transcript"].numpy())
            speakers += (as_list(extra["speaker"].numpy()) if "speaker" in extra
                         else [""] * len(extra["transcript"]))
        speakers = np.array(speakers)
        out = {}
        for method in DECODERS:
            out[method] = speech_scores(references, hyps[method])
            if speakers.any() and not ablate:  # by speaker when the examples name them
                out[method]["by_speaker"] = {
                    s: speech_scores([r for r, k in zip(references, speakers) if k == s],
                                     [h for h, k in zip(hyps[method], speakers) if k == s])
                    for s in sorted(set(speakers) - {""})}
            out[method]["empty_transcripts"] = float(np.mean([not h.strip()
                                                              for h in hyps[method]]))
            out[method]["examples"] = [{"reference": r, "transcript": h}
                                       for r, h in list(zip(references, hyps[method]))[:5]]
        return out

    def evaluate_file(self, model, dataset, batch_size, forward):
        return self.evaluate(model, dataset, batch_size,
                             forward=lambda x: forward(x)[self.portable_output])

    def headline(self, result):
        return "beam wer", result.get("beam", {}).get("wer")

    def table(self, result):
        return decoder_table(result, result["greedy"].get("utterances"), "utterances")

    def learned_nothing(self, result, cause, split=""):
        if result["greedy"].get("empty_transcripts") == 1.0:
            return (f"{result['model']} learned nothing yet: every one of its "
                    f"{result['greedy']['utterances']} transcripts is empty (a CTC model says "
                    f"only blanks until it has learned enough); {cause}")
        return None

    def report(self, model, validation, examples=5):
        pre = Preprocessor(model)
        rows = list(validation().take(examples).as_numpy_iterator())
        waves = [pre.audio(e["audio"], int(e["sample_rate"]) if "sample_rate" in e else None)
                 .numpy() for e in rows]
        greedy, beam = transcribe(model, waves), transcribe(model, waves, "beam")
        return ["validation transcripts (truth | greedy | beam):"] + [
            f"  {e['transcript'].decode():<30} | {g:<30} | {b}"
            for e, g, b in zip(rows, greedy, beam)]

    # --- export -----------------------------------------------------------------------------

    def serving_functions(self, model, pre):
        def transcriber(method):
            def transcribe_batch(audio):
                log_probs = model({"audio": pre.audio(audio)}, training=False)
                return {"transcript": transcript_strings(model, decode_ids(log_probs, method))}
            return transcribe_batch

        def transcribe_padded(audio, lengths):
            keep = tf.sequence_mask(lengths, tf.shape(audio)[1])
            return transcriber("beam")(tf.where(keep, audio, tf.zeros_like(audio)))

        found = parts(model)
        endpoints = {"serve": (transcriber("beam"), ("audio",)),
                     "greedy": (transcriber("greedy"), ("audio",)),
                     "transcribe_padded": (transcribe_padded, ("audio", "lengths"))}
        return endpoints, {"decoding": self.decoding(), "tokens": list(found.tokens),
                           "unit": found.unit}

    def decoding(self):
        return {"serving_default": {"method": "beam", "beam_width": BEAM_WIDTH},
                "greedy": {"method": "greedy"}}

    def metadata(self, model):
        found = parts(model)
        return {"ctc": {"tokens": list(found.tokens), "unit": found.unit, "blank": 0,
                        "out_of_vocabulary": 1, "token_class": "tokens[i] is class i + 2",
                        "decode": "greedy: the best class of each frame, repeats merged, "
                                  "blanks (0) and out-of-vocabulary (1) dropped; beam search as "
                                  "tf.nn.ctc_beam_search_decoder (width in `decoding`) is what "
                                  "the SavedModel serves",
                        "join": "" if found.unit == "characters" else " "},
                "decoding": self.decoding()}

    def answer(self, model=None):
        return {"kind": "text", "output": "transcript"}

    def card_lines(self, meta):
        ctc = meta["ctc"]
        return ["## Outputs", "", f"CTC over {len(ctc['tokens'])} {ctc['unit']}: "
                f"{ctc['decode']}.", ""]

    def pipeline_tag(self, inputs):
        return "automatic-speech-recognition"


TRANSCRIPTION = register_task(Transcription("transcription"))

__all__ = ["BEAM_WIDTH", "DECODERS", "TRANSCRIPTION", "Transcriber", "Transcription",
           "WORDS_UNIT_MAX", "transcript_tokens",
           "decode_ids", "pad_waveforms", "parts", "transcribe", "transcript_ids",
           "transcript_strings", "utterance_batches"]
