"""Export a model as a TensorFlow SavedModel that takes raw inputs and runs without mmzoo.

The serving graph holds the whole preprocessing of `mmzoo.data.pipeline` for one request:
image bytes decoded and resized, strings standardised and tokenised with the vocabulary the
model carries, waveforms centred and padded or cropped; and turns the outputs back into strings
(the class names, the caption words).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from mmzoo.data.text import vectorizer
from mmzoo.data.waveform import fit_length
from mmzoo.layers.mfcc import model_sample_rate
from mmzoo.layers.vocab import OOV, PAD, model_labels, model_vocabulary


def _image_bytes_to_pixels(data, size):
    """Encoded PNG/JPEG/GIF/BMP bytes `[batch]` -> float32 `[batch, height, width, 3]`."""
    def one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        image = tf.image.resize(image, size, antialias=True)
        return tf.clip_by_value(tf.round(image), 0.0, 255.0)

    return tf.map_fn(one, data, fn_output_signature=tf.TensorSpec([*size, 3], tf.float32))


def _caption_strings(ids, tokens, end_id):
    """Token ids `[batch, length]` -> captions: the words up to the first `[end]` or padding."""
    words = tf.constant([PAD, OOV] + list(tokens))
    stop = tf.logical_or(tf.equal(ids, end_id), tf.equal(ids, 0))
    keep = tf.equal(tf.cumsum(tf.cast(stop, tf.int32), axis=1), 0)
    kept = tf.ragged.boolean_mask(tf.gather(words, ids), keep)
    return tf.strings.reduce_join(kept, axis=1, separator=" ")


class _Raw:
    """Raw-input converters for one model (the same steps as `mmzoo.data.pipeline`)."""

    def __init__(self, model):
        self.model = model
        self.shapes = {t.name: tuple(t.shape[1:]) for t in model.inputs}
        self.tokenizers = {}

    def text(self, name, strings, length=None):
        if name not in self.tokenizers:
            tokens = model_vocabulary(self.model, name)
            self.tokenizers[name] = vectorizer(tokens, sequence_length=length
                                               or self.shapes[name][0])
        return tf.cast(self.tokenizers[name](strings), tf.int32)

    def image(self, data):
        return _image_bytes_to_pixels(data, self.shapes["image"][:2])

    def audio(self, waves):
        return fit_length(waves, self.shapes["audio"][0])

    def inputs(self, raw):
        out = {}
        for name, value in raw.items():
            if name == "image":
                out[name] = self.image(value)
            elif name == "audio":
                out[name] = self.audio(value)
            else:
                out[name] = self.text(name, value)
        return out


RAW_SPECS = {"image": tf.TensorSpec([None], tf.string, name="image"),
             "text": tf.TensorSpec([None], tf.string, name="text"),
             "question": tf.TensorSpec([None], tf.string, name="question"),
             "audio": tf.TensorSpec([None, None], tf.float32, name="audio")}


def serving_functions(model):
    """`(endpoints, resources)`: tf.functions over raw inputs for `model`, by endpoint name (the
    first is `serving_default`), and the Keras layers they use that hold resources."""
    from mmzoo.registry import get_spec

    spec = get_spec(model.name)
    raw = _Raw(model)
    info = {"model": model.name, "task": spec.task, "inputs": list(spec.inputs),
            "sample_rate": model_sample_rate(model) or 0}
    endpoints = {}

    if spec.task in ("classification", "vqa"):
        names = tf.constant(model_labels(model))
        info["labels"] = list(model_labels(model))

        def classify(**inputs):
            scores = model(raw.inputs(inputs), training=False)
            return {"label": tf.gather(names, tf.argmax(scores, axis=-1)), "scores": scores}

        endpoints["serve"] = _fn(classify, spec.inputs)

    elif spec.task == "captioning":
        from mmzoo.data.easy_vqa import END, START

        tokens = model_vocabulary(model, "text")
        start_id, end_id = tokens.index(START) + 2, tokens.index(END) + 2
        encoder, decoder = model.get_layer("image_encoder"), model.get_layer("caption_decoder")
        length = decoder.input["ids"].shape[1]

        def caption(image):
            features = encoder(raw.image(image), training=False)
            batch = tf.shape(features)[0]
            ids = tf.concat([tf.fill([batch, 1], start_id),
                             tf.zeros([batch, length - 1], tf.int32)], axis=1)
            # greedy, as `mmzoo.models.captioning.generate`: each best word is fed back, up to
            # `length - 1` words after `[start]`
            for t in range(length - 1):
                probs = decoder({"features": features, "ids": ids}, training=False)
                best = tf.cast(tf.argmax(probs[:, t], axis=-1), tf.int32)
                ids = tf.concat([ids[:, :t + 1], best[:, None], ids[:, t + 2:]], axis=1)
            return {"caption": _caption_strings(ids[:, 1:], tokens, end_id)}

        endpoints["serve"] = _fn(caption, ("image",))

    elif spec.task == "retrieval":
        from mmzoo.models.retrieval import encoders

        text_encoder, image_encoder = encoders(model)
        similarity = model.get_layer("similarity")

        def embed_text(text):
            return {"embedding": text_encoder(raw.text("text", text), training=False)}

        def embed_image(image):
            return {"embedding": image_encoder(raw.image(image), training=False)}

        def match(text, image):
            t = embed_text(text)["embedding"]
            v = embed_image(image)["embedding"]
            return {"text_embedding": t, "image_embedding": v,
                    "similarity": similarity([t, v], training=False)}

        endpoints["serve"] = _fn(match, ("text", "image"))
        endpoints["embed_text"] = _fn(embed_text, ("text",))
        endpoints["embed_image"] = _fn(embed_image, ("image",))
    else:  # pragma: no cover - every registered task is handled above
        raise ValueError(f"cannot export task {spec.task!r}")

    metadata = json.dumps(info)
    endpoints["metadata"] = tf.function(lambda: {"json": tf.constant(metadata)},
                                        input_signature=[])
    # build the tokenizers now, so they can be tracked as resources of the export
    for name in spec.inputs:
        if name in ("text", "question") and spec.task != "captioning":
            raw.text(name, tf.constant([""]))
    return endpoints, list(raw.tokenizers.values())


def _fn(body, names):
    def call(inputs):
        return body(**inputs)

    return tf.function(call, input_signature=[{n: RAW_SPECS[n] for n in names}])


def export(model, path):
    """Write `model` as a SavedModel at `path` whose signatures take RAW inputs; atomically (a
    half-written export never replaces a good one).

    `serving_default` takes a dict of batched raw inputs named as the model's:
    `image` tf.string (encoded PNG/JPEG/GIF/BMP bytes), `text` / `question` tf.string, `audio`
    float32 `[batch, samples]` at the model's sample rate (any length: centred, padded or
    cropped). It returns `label` (tf.string, the class as it was in the data) and `scores` for
    classifiers and VQA; `caption` (tf.string, greedy decoding) for captioning;
    `text_embedding`, `image_embedding` and `similarity` for the dual encoder, which also has
    `embed_text` and `embed_image` signatures returning `embedding`. A `metadata` signature
    returns a JSON string (model, task, inputs, sample rate, labels). Loading needs only
    TensorFlow.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from `.keras`).
        path: str. Destination folder; replaced if it exists.

    Returns:
        The absolute path written.

    Examples:
    ```python
    mmzoo.export(model, "out/vqa_cnn_lstm")
    served = tf.saved_model.load("out/vqa_cnn_lstm")
    png = tf.io.read_file("image.png")
    served.signatures["serving_default"](image=png[None],
                                         question=tf.constant(["what shape is it?"]))
    ```
    """
    endpoints, resources = serving_functions(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in resources:
        archive.track(resource)
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn)
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        archive.write_out(os.path.join(staging, "model"), verbose=False)
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(os.path.join(staging, "model"), path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(os.path.join(staging, "model"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
