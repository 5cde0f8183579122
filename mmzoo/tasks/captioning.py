"""Image captioning: an image in, a sentence out, decoded word by word (greedy or beam search).

A captioner has inputs `image` and `text` (the decoder's prompt, `[start]` then the caption so
far); a sub-model `image_encoder` (image -> features) and a sub-model `caption_decoder` taking
`{"features", "ids"}` (ids `[batch, max_length]`) and giving next-word probabilities `[batch,
max_length, ids]`; its `text_vocabulary` holds `[start]` and `[end]` (`parts`). It trains with
teacher forcing on every caption of an image, and is scored with BLEU-1..4 (NLTK's
`corpus_bleu`) and CIDEr-D (pycocoevalcap), greedy against beam search.
"""

from __future__ import annotations

import collections

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from mmzoo import contract
from mmzoo.artifacts import digest
from mmzoo.contract import END, START
from mmzoo.data.pipeline import pipeline
from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import OOV, PAD
from mmzoo.metrics import caption_scores, standardized, unique_share
from mmzoo.registry import register_task
from mmzoo.tasks.base import Task, as_list, decoder_table, image_batches, with_caption

# The beam search the bench reports and the SavedModel serves (`serving_default`).
NUM_BEAMS, LENGTH_PENALTY = 3, 0.7
DECODERS = ("greedy", "beam")

Captioner = collections.namedtuple(
    "Captioner", "encoder decoder tokens max_length start_id end_id")
Captioner.__doc__ = """The parts of a captioning model: `image_encoder`, `caption_decoder`, the
caption vocabulary, the decoder's length, and the ids of `[start]` and `[end]`."""


def parts(model):
    """The `Captioner` parts of a captioning model; what it lacks fails naming it."""
    encoder, decoder = contract.find(model, "image_encoder"), contract.find(model,
                                                                            "caption_decoder")
    missing = [n for n, layer in (("image_encoder", encoder), ("caption_decoder", decoder))
               if not hasattr(layer, "inputs")]
    if missing:
        CAPTIONING.fail(model, f"has no sub-model(s) {missing} (captioning decodes with them)")
    ids = decoder.input.get("ids") if isinstance(decoder.input, dict) else None
    if ids is None or "features" not in decoder.input:
        CAPTIONING.fail(model, "has a 'caption_decoder' whose input is not a dict of 'features' "
                               "and 'ids'")
    tokens = contract.vocabulary(model, "text")
    if START not in tokens or END not in tokens:
        CAPTIONING.fail(model, f"has a caption vocabulary without {START!r} and {END!r}")
    return Captioner(encoder, decoder, tokens, int(ids.shape[1]), tokens.index(START) + 2,
                     tokens.index(END) + 2)


def teacher_forcing(pre, captions):
    """Captions `[batch]` -> `(decoder input, target)` ids `[batch, max_length]` for the model
    of `pre` (its `mmzoo.data.Preprocessor`): input `[start] w1..wn`, target `w1..wn [end]`,
    each padded or cut to the decoder's length. The input holds no `[end]`, so its padding mask
    covers exactly the target tokens."""
    captioner = parts(pre.model)
    ids = pre.tokenizer("text", ragged=True)(captions)
    n = ids.nrows()
    start = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(captioner.start_id, ids.dtype)))
    end = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(captioner.end_id, ids.dtype)))
    full = tf.concat([start, ids, end], axis=1)
    full = tf.cast(full.to_tensor(default_value=0, shape=[None, captioner.max_length + 1]),
                   tf.int32)
    decoder_input = tf.where(full[:, :-1] == captioner.end_id, 0, full[:, :-1])
    return decoder_input, full[:, 1:]


def caption_strings(captioner, ids):
    """Caption ids `[batch, length]` (without the leading `[start]`) -> tf.string captions:
    the words up to the first `[end]` or padding, joined by single spaces."""
    words = tf.constant([PAD, OOV] + list(captioner.tokens))
    ids = tf.convert_to_tensor(ids, tf.int32)
    stop = tf.logical_or(tf.equal(ids, captioner.end_id), tf.equal(ids, 0))
    keep = tf.equal(tf.cumsum(tf.cast(stop, tf.int32), axis=1), 0)
    kept = tf.ragged.boolean_mask(tf.gather(words, ids), keep)
    return tf.strings.reduce_join(kept, axis=1, separator=" ")


def decode(model, ids):
    """Caption strings from token-id rows (without the leading `[start]`): the words up to the
    first `[end]` or padding.

    Args:
        model: keras.Model. The captioning model whose vocabulary the ids index.
        ids: int array `[batch, length]`.

    Examples:
    ```python
    decode(model, targets)   # ['there is a red circle', ...]
    ```
    """
    return as_list(caption_strings(parts(model), np.asarray(ids, dtype="int32")).numpy())


def generate(model, images, method="greedy", *, num_beams=NUM_BEAMS,
             length_penalty=LENGTH_PENALTY):
    """Captions for a batch of images, decoded with a `keras_hub.samplers` sampler.

    Beam search keeps `num_beams` captions per image; a caption that has ended stays as it is
    (every later step adds nothing to its log-probability), and the finished beams are ranked
    by their log-probability divided by GNMT's length penalty `((5 + length) / 6) **
    length_penalty` (Wu et al. 2016), so short captions are not favoured just for being short.

    Args:
        model: keras.Model. A `caption_lstm` model (or any captioner: `parts`).
        images: array `[batch, height, width, 3]`, values in [0, 255].
        method: str. `greedy` or `beam`.
        num_beams: int. Beam width for `beam`.
        length_penalty: float. The exponent of the length penalty (0: rank by log-probability).

    Returns:
        A list of str, one caption per image.

    Examples:
    ```python
    mmzoo.tasks.captioning.generate(model, images, "beam")   # ['there is a blue circle', ...]
    ```
    """
    captioner = parts(model)
    features = captioner.encoder(ops.convert_to_tensor(np.asarray(images, dtype="float32")),
                                 training=False)
    ids = caption_ids(captioner, features, method, num_beams=num_beams,
                      length_penalty=length_penalty)
    return decode(model, ops.convert_to_numpy(ids))


def caption_ids(captioner, features, method="greedy", *, num_beams=NUM_BEAMS,
                length_penalty=LENGTH_PENALTY):
    """Caption token ids `[batch, max_length - 1]` (without `[start]`; `[end]` and padding
    after the words) of image `features`, in `keras.ops` only, so the same decoding runs eagerly
    (`generate`) and inside an exported SavedModel's graph (`mmzoo.export`).

    Args:
        captioner: `Captioner`. The captioner's encoder, decoder and ids (`parts`).
        features: tensor `[batch, ...]`. `captioner.encoder`'s output for the images.
        method, num_beams, length_penalty: as `generate`.
    """
    if method == "greedy":
        sampler = keras_hub.samplers.GreedySampler()
    elif method == "beam":
        sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams, return_all_beams=True)
    else:
        raise InvalidValue(f"unknown decoding method {method!r}; use one of {list(DECODERS)}")
    batch = ops.shape(features)[0]
    prompt = ops.pad(ops.full((batch, 1), captioner.start_id, dtype="int32"),
                     [[0, 0], [0, captioner.max_length - 1]])
    # An ended caption's next token is padding with probability 1.
    ended_logits = ops.where(ops.equal(ops.arange(captioner.decoder.output.shape[-1]), 0), 0.0,
                             -1e9)

    def next_token(prompt, cache, index):
        probs = captioner.decoder({"features": cache, "ids": prompt}, training=False)
        logits = ops.log(ops.take(probs, index - 1, axis=1) + 1e-9)
        ended = ops.any(ops.equal(prompt[:, 1:], captioner.end_id), axis=1, keepdims=True)
        return ops.where(ended, ended_logits[None, :], logits), None, cache

    out = sampler(next_token, prompt, cache=features, index=1, mask=ops.not_equal(prompt, 0),
                  stop_token_ids=(captioner.end_id,))
    if method == "greedy":
        return ops.cast(out, "int32")[:, 1:]
    beams, log_probs = out
    ids = ops.cast(beams, "int32")[:, :, 1:]                       # [batch, beams, length]
    stop = ops.logical_or(ops.equal(ids, captioner.end_id), ops.equal(ids, 0))
    first_stop = ops.argmax(ops.cast(stop, "int32"), axis=-1)
    lengths = ops.where(ops.any(stop, axis=-1), first_stop, ops.shape(ids)[-1]) + 1  # + [end]
    penalty = ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, length_penalty)
    best = ops.argmax(ops.cast(log_probs, "float32") / penalty, axis=1)
    return ops.take_along_axis(ids, ops.cast(best, "int32")[:, None, None], axis=1)[:, 0]


class Captioning(Task):
    """An image encoder and a word-by-word caption decoder."""

    summary = "a sentence about an image, decoded word by word (greedy or beam search)"
    intended_use = ("Describe images like the training photos in a short sentence, in the words "
                    "of the training captions.")
    limits = ("Its vocabulary is the training captions' words: it cannot name what they never "
              "name.", "Its portable (ONNX, LiteRT) export is an image encoder and a decoder "
              "called once per word: the runtime runs the beam search (`captioning` in "
              "metadata.json; `mmzoo/runtime.py` does it).")
    decoders = DECODERS
    checked_examples = 64  # validation images captioned after training (`learned_nothing`)
    multimodal = True

    def problems(self, model):
        return contract.lacks(model, parts)

    # --- adapting ---------------------------------------------------------------------------

    def text_tokens(self, tokens):
        return (START, END) + tuple(tokens)

    def caption_length(self, p95, fields):
        """The decoder's length for captions whose 95th percentile has `p95` words: those
        words and `[start]`."""
        return {"max_length": p95 + 1} if "max_length" in fields else {}

    # --- the input pipeline -----------------------------------------------------------------

    def check_examples(self, model, element):
        if "captions" not in element and "text" not in element:
            raise InvalidValue(f"model {model.name!r} ({self.name}) needs 'captions' (or a "
                               f"'text') in each example; the dataset has {sorted(element)}")

    def identity(self, model):
        captioner = parts(model)
        return {"captions": digest([list(captioner.tokens), captioner.max_length])}

    def per_epoch_text(self, name, key):
        return True   # shifted for teacher forcing after the cache

    def expand(self, ds, training):
        """Every caption of an image an example of its own (training: the teacher-forcing
        targets; evaluating: the loss's references)."""
        if "captions" not in ds.element_spec:
            return ds
        return ds.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(e["captions"]).map(
            lambda c: with_caption(e, c)))

    def targets(self, pre, batch, inputs):
        prompt, targets = teacher_forcing(pre, batch["text"])
        return {**inputs, "text": prompt}, targets

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model, dataset, batch_size, ablate=None, num_beams=None):
        references, hyps = [], {"greedy": [], "beam": []}
        for images, refs in image_batches(model, dataset, batch_size, ablate):
            references += refs
            for method, captions in hyps.items():
                captions += generate(model, images, method,
                                     **({} if num_beams is None else {"num_beams": num_beams}))
        out = {"images": len(references)}
        for method, captions in hyps.items():
            out[method] = caption_scores(references, captions)
            out[method]["unique_captions"] = unique_share(captions)
            out[method]["distinct_captions"] = len(set(standardized(captions)))
            out[method]["examples"] = [{"references": r, "caption": h}
                                       for r, h in list(zip(references, captions))[:5]]
        return out

    def ablated_inputs(self, spec):
        return ["image"]   # its text input is the decoder's own prompt

    def headline(self, result):
        return "beam bleu_4", result.get("beam", {}).get("bleu_4")

    def table(self, result):
        return decoder_table(result, result["images"], "images")

    def learned_nothing(self, result, cause, split=""):
        if result.get("images", 0) > 1 and result["greedy"]["distinct_captions"] <= 1:
            caption = result["greedy"]["examples"][0]["caption"]
            return (f"{result['model']} learned nothing of the images: it gives every one of "
                    f"{result['images']} images the same caption ({caption!r}); {cause}")
        return None

    def report(self, model, validation, examples=8):
        inputs, targets = next(iter(pipeline(model, validation(), batch_size=examples)))
        truth = decode(model, targets.numpy())
        greedy = generate(model, inputs["image"], "greedy")
        beam = generate(model, inputs["image"], "beam")
        return ["validation captions (truth | greedy | beam):"] + [
            f"  {t:<22} | {g:<22} | {b}" for t, g, b in zip(truth, greedy, beam)]

    # --- export -----------------------------------------------------------------------------

    def serving_functions(self, model, pre):
        captioner = parts(model)

        def captions(method):
            def caption(image):
                features = captioner.encoder(pre.images(image), training=False)
                ids = caption_ids(captioner, features, method)
                return {"caption": caption_strings(captioner, ids)}
            return caption

        endpoints = {"serve": (captions("beam"), ("image",)),
                     "greedy": (captions("greedy"), ("image",))}
        return endpoints, {"decoding": self.decoding()}

    def decoding(self):
        return {"serving_default": {"method": "beam", "num_beams": NUM_BEAMS,
                                    "length_penalty": LENGTH_PENALTY},
                "greedy": {"method": "greedy"}}

    def portable_graphs(self, model, numeric_inputs, batch):
        """The image encoder, and the decoder a runtime calls once per word
        (`mmzoo.runtime.Runner.caption`)."""
        captioner = parts(model)
        inputs, feeds = numeric_inputs(captioner.encoder, batch)
        encoder = keras.Model(inputs, {"features": captioner.encoder(feeds["image"])},
                              name="image_encoder")
        features = keras.Input(captioner.decoder.input["features"].shape[1:], batch_size=batch,
                               name="features")
        ids = keras.Input((captioner.max_length,), batch_size=batch, dtype="int32", name="ids")
        decoder = keras.Model({"features": features, "ids": ids},
                              {"probs": captioner.decoder({"features": features, "ids": ids})},
                              name="caption_decoder")
        return {"image_encoder": encoder, "caption_decoder": decoder}

    def calibration_inputs(self, model, inputs):
        encoder = parts(model).encoder
        return {"features": np.asarray(encoder(inputs["image"], training=False)),
                "ids": np.asarray(inputs["text"]).astype("int32")}

    def metadata(self, model):
        captioner = parts(model)
        return {"captioning": {
            "vocabulary": list(captioner.tokens), "ids": {PAD: 0, OOV: 1, "vocabulary[i]": "i + 2"},
            "start_id": captioner.start_id, "end_id": captioner.end_id,
            "max_length": captioner.max_length, "num_beams": NUM_BEAMS,
            "length_penalty": LENGTH_PENALTY,
            "decode": "ids = [start_id, 0, ...] (max_length); for t = 1 .. max_length - 1: "
                      "the next word's probabilities are caption_decoder(features, ids)"
                      "['probs'][:, t - 1]; a caption that has said end_id only adds padding "
                      "(0) at no cost. Greedy takes the best word; beam search (what the "
                      "SavedModel's serving_default does) keeps num_beams captions by summed "
                      "log-probability and returns the one with the best log-probability / "
                      "((5 + words + 1) / 6) ** length_penalty. The caption is the words of "
                      "ids[1:] up to end_id or padding, joined by spaces"},
            "decoding": self.decoding()}

    def answer(self, model=None):
        return {"kind": "text", "output": "caption"}

    def pipeline_tag(self, inputs):
        return "image-to-text"


CAPTIONING = register_task(Captioning("captioning"))

__all__ = ["CAPTIONING", "Captioner", "Captioning", "DECODERS", "LENGTH_PENALTY", "NUM_BEAMS",
           "caption_ids", "caption_strings", "decode", "generate", "parts", "teacher_forcing"]
