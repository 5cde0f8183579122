"""Export a model as a TensorFlow SavedModel that takes raw inputs and runs without mmzoo.

The serving graph runs the model's `mmzoo.data.Preprocessor`, the one `mmzoo.data.pipeline`
trains and evaluates with: image bytes decoded and resized, strings standardised and tokenised
with the vocabulary the model carries, waveforms centred and padded or cropped; and turns the
outputs back into strings (the class names, the caption words).
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from mmzoo import contract
from mmzoo.artifacts import staging_folder
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import InvalidValue

RAW_SPECS = {"image": tf.TensorSpec([None], tf.string, name="image"),
             "text": tf.TensorSpec([None], tf.string, name="text"),
             "question": tf.TensorSpec([None], tf.string, name="question"),
             "audio": tf.TensorSpec([None, None], tf.float32, name="audio"),
             "lengths": tf.TensorSpec([None], tf.int32, name="lengths")}


def serving_functions(model):
    """`(endpoints, resources)`: tf.functions over raw inputs for `model`, by endpoint name (the
    first is `serving_default`), and the Keras layers they use that hold resources. Raw inputs
    become model inputs through the model's `Preprocessor`, as in `mmzoo.data.pipeline`."""
    pre = Preprocessor(model)
    spec = pre.spec
    info = {"model": model.name, "task": spec.task, "inputs": list(spec.inputs),
            "sample_rate": pre.sample_rate or 0}
    endpoints = {}

    if pre.labels is not None:
        info["labels"] = list(pre.labels)

        def classify(**inputs):
            scores = model(pre.serving_inputs(inputs), training=False)
            return {"label": pre.label_names(scores), "scores": scores}

        endpoints["serve"] = _fn(classify, spec.inputs)

    elif spec.task == "captioning":
        parts = pre.captioner

        def caption(image):
            features = parts.encoder(pre.images(image), training=False)
            batch = tf.shape(features)[0]
            length = parts.max_length
            ids = tf.concat([tf.fill([batch, 1], parts.start_id),
                             tf.zeros([batch, length - 1], tf.int32)], axis=1)
            # greedy, as `mmzoo.models.captioning.generate`: each best word is fed back, up to
            # `length - 1` words after `[start]`
            for t in range(length - 1):
                probs = parts.decoder({"features": features, "ids": ids}, training=False)
                best = tf.cast(tf.argmax(probs[:, t], axis=-1), tf.int32)
                ids = tf.concat([ids[:, :t + 1], best[:, None], ids[:, t + 2:]], axis=1)
            return {"caption": pre.caption_strings(ids[:, 1:])}

        endpoints["serve"] = _fn(caption, ("image",))

    elif spec.task == "transcription":
        from mmzoo.models.transcription import decode_ids

        def transcribe(audio):
            log_probs = model({"audio": pre.audio(audio)}, training=False)
            return {"transcript": pre.transcript_strings(decode_ids(log_probs, "greedy"))}

        def transcribe_padded(audio, lengths):
            keep = tf.sequence_mask(lengths, tf.shape(audio)[1])
            return transcribe(tf.where(keep, audio, tf.zeros_like(audio)))

        info["tokens"], info["unit"] = list(pre.transcriber.tokens), pre.transcriber.unit
        endpoints["serve"] = _fn(transcribe, ("audio",))
        endpoints["transcribe_padded"] = _fn(transcribe_padded, ("audio", "lengths"))

    elif spec.task == "retrieval":
        parts = contract.retriever(model)

        def embed_text(text):
            return {"embedding": parts.text_encoder(pre.text("text", text), training=False)}

        def embed_image(image):
            return {"embedding": parts.image_encoder(pre.images(image), training=False)}

        def match(text, image):
            t = embed_text(text)["embedding"]
            v = embed_image(image)["embedding"]
            return {"text_embedding": t, "image_embedding": v,
                    "similarity": parts.similarity([t, v], training=False)}

        endpoints["serve"] = _fn(match, ("text", "image"))
        endpoints["embed_text"] = _fn(embed_text, ("text",))
        endpoints["embed_image"] = _fn(embed_image, ("image",))

    metadata = json.dumps(info)
    endpoints["metadata"] = tf.function(lambda: {"json": tf.constant(metadata)},
                                        input_signature=[])
    # build the tokenizers now, so they can be tracked as resources of the export
    for name in spec.inputs:
        if name in contract.TEXT_INPUTS and spec.task != "captioning":
            pre.text(name, tf.constant([""]))
    return endpoints, pre.resources()


def _fn(body, names):
    def call(inputs):
        return body(**inputs)

    return tf.function(call, input_signature=[{n: RAW_SPECS[n] for n in names}])


# How an mmzoo export is told from anything else: this file, which `export` writes into the
# SavedModel's `assets.extra/` (the folder SavedModel keeps for files the graph does not read).
MARKER = os.path.join("assets.extra", "mmzoo_export.json")
# What a SavedModel folder holds; a previous export holding anything else is not replaced.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb"}


def is_export(path):
    """Whether `path` is a folder that `mmzoo.export` wrote (it holds `saved_model.pb` and
    `assets.extra/mmzoo_export.json`)."""
    return (os.path.isfile(os.path.join(path, "saved_model.pb"))
            and os.path.isfile(os.path.join(path, MARKER)))


def _check_replaceable(path):
    """Fail, naming `path` and what is in it, unless writing there destroys nothing that
    `export` did not write: it does not exist, is an empty folder, or is a previous export."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise InvalidValue(
            f"cannot export to {path}: it is a file, not a folder; choose another path")
    entries = sorted(os.listdir(path))
    if not entries:
        return
    shown = ", ".join(e + ("/" if os.path.isdir(os.path.join(path, e)) else "")
                      for e in entries[:8]) + (f", ... ({len(entries)} entries)"
                                               if len(entries) > 8 else "")
    if not is_export(path):
        raise InvalidValue(
            f"cannot export to {path}: it already holds {shown}, which is not an mmzoo export "
            f"(no {MARKER}); mmzoo export replaces only a folder it wrote itself. Choose "
            "another path, or move what is there yourself")
    extra = [e for e in entries if e not in SAVED_MODEL_ENTRIES]
    try:
        with open(os.path.join(path, MARKER)) as f:
            written = json.load(f).get("files")
    except (OSError, ValueError):
        written = None
    if written is not None:  # every file the export wrote is recorded: anything else is not
        extra = sorted(set(_files(path)) - set(written) - {MARKER})
    if extra:
        raise InvalidValue(
            f"cannot export to {path}: it is a previous mmzoo export but also holds {extra}, "
            "which export did not write; move them, or choose another path")


def _files(folder):
    """The files under `folder`, as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, _, names in os.walk(folder) for n in names)


def export(model, path):
    """Write `model` as a SavedModel at `path` whose signatures take RAW inputs.

    `serving_default` takes a dict of batched raw inputs named as the model's:
    `image` tf.string (encoded PNG/JPEG/GIF/BMP bytes), `text` / `question` tf.string, `audio`
    float32 `[batch, samples]` at the model's sample rate (any length: centred, padded or
    cropped). It returns `label` (tf.string, the class as it was in the data) and `scores` for
    classifiers and VQA; `caption` (tf.string, greedy decoding) for captioning; `transcript`
    (tf.string, greedy CTC decoding, words separated by single spaces) for transcription, which
    takes `audio` of any length (one utterance, or several of the same length) and also has a
    `transcribe_padded` signature taking `audio` zero-padded or not and each row's `lengths`
    (int32 samples) for a batch of unequal utterances;
    `text_embedding`, `image_embedding` and `similarity` for the dual encoder, which also has
    `embed_text` and `embed_image` signatures returning `embedding`. A `metadata` signature
    returns a JSON string (model, task, inputs, sample rate, labels). Loading needs only
    TensorFlow.

    Nothing export did not write is ever removed. The SavedModel is written to a temporary
    folder beside `path` and moved into place once complete. An existing `path` is replaced
    only when it is a previous mmzoo export: a folder holding `saved_model.pb` and
    `assets.extra/mmzoo_export.json` (written by every export) and nothing but a SavedModel's
    own entries. An empty folder is used as it is; anything else fails naming `path` and what
    is in it.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from `.keras`).
        path: str. Destination folder: new, empty, or a previous mmzoo export.

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
    from mmzoo import __version__

    path = os.path.abspath(path)
    _check_replaceable(path)  # before the work, so a mistake costs nothing
    endpoints, resources = serving_functions(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in resources:
        archive.track(resource)
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn)
    # a staging folder beside `path`, removed at the end (or, after a kill, by the next export
    # or artifact written here: `mmzoo.artifacts.sweep`)
    with staging_folder(os.path.dirname(path), os.path.basename(path)) as staging:
        written = os.path.join(staging, "model")
        archive.write_out(written, verbose=False)
        os.makedirs(os.path.join(written, "assets.extra"), exist_ok=True)
        with open(os.path.join(written, MARKER), "w") as f:
            json.dump({"model": model.name, "mmzoo": __version__, "files": _files(written)}, f)
        _check_replaceable(path)  # again: something may have appeared there meanwhile
        if os.path.isdir(path) and os.listdir(path):
            old = os.path.join(staging, "previous")
            os.replace(path, old)           # the previous export, removed with `staging`
        os.replace(written, path)           # onto a missing path or an empty folder
    return path
