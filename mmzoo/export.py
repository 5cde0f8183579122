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
        from mmzoo.models.captioning import caption_ids

        parts = pre.captioner
        info["decoding"] = decoding(spec.task)

        def captioner(method):
            def caption(image):
                features = parts.encoder(pre.images(image), training=False)
                return {"caption": pre.caption_strings(caption_ids(parts, features, method))}
            return caption

        endpoints["serve"] = _fn(captioner("beam"), ("image",))
        endpoints["greedy"] = _fn(captioner("greedy"), ("image",))

    elif spec.task == "transcription":
        from mmzoo.models.transcription import decode_ids

        info["decoding"] = decoding(spec.task)

        def transcriber(method):
            def transcribe(audio):
                log_probs = model({"audio": pre.audio(audio)}, training=False)
                return {"transcript": pre.transcript_strings(decode_ids(log_probs, method))}
            return transcribe

        def transcribe_padded(audio, lengths):
            keep = tf.sequence_mask(lengths, tf.shape(audio)[1])
            return transcriber("beam")(tf.where(keep, audio, tf.zeros_like(audio)))

        info["tokens"], info["unit"] = list(pre.transcriber.tokens), pre.transcriber.unit
        endpoints["serve"] = _fn(transcriber("beam"), ("audio",))
        endpoints["greedy"] = _fn(transcriber("greedy"), ("audio",))
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


def decoding(task):
    """How the SavedModel of a `task` model decodes (`serving_default`: the bench's beam
    search; `greedy`: the second signature), or None for tasks without decoding."""
    if task == "captioning":
        from mmzoo.models.captioning import LENGTH_PENALTY, NUM_BEAMS

        beam = {"method": "beam", "num_beams": NUM_BEAMS, "length_penalty": LENGTH_PENALTY}
    elif task == "transcription":
        from mmzoo.models.transcription import BEAM_WIDTH

        beam = {"method": "beam", "beam_width": BEAM_WIDTH}
    else:
        return None
    return {"serving_default": beam, "greedy": {"method": "greedy"}}


def _fn(body, names):
    def call(inputs):
        return body(**inputs)

    return tf.function(call, input_signature=[{n: RAW_SPECS[n] for n in names}])


# How an mmzoo export is told from anything else: for a SavedModel, this file, which `export`
# writes into its `assets.extra/` (the folder SavedModel keeps for files the graph does not
# read); for ONNX and LiteRT, `metadata.json` saying `"exported_by": "mmzoo"`. Both list every
# file the export wrote.
MARKER = os.path.join("assets.extra", "mmzoo_export.json")
METADATA, CARD = "metadata.json", "README.md"
# What a SavedModel folder holds; a previous export holding anything else is not replaced.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb",
                       METADATA, CARD}


def _portable_record(path):
    """The `metadata.json` of a portable export at `path`, or None."""
    try:
        with open(os.path.join(path, METADATA)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("exported_by") == "mmzoo" \
        and meta.get("format") in ("onnx", "litert") else None


def is_export(path):
    """Whether `path` is a folder that `mmzoo.export` wrote: a SavedModel (`saved_model.pb`
    and `assets.extra/mmzoo_export.json`) or an ONNX / LiteRT export (a `metadata.json` of
    mmzoo's)."""
    return ((os.path.isfile(os.path.join(path, "saved_model.pb"))
             and os.path.isfile(os.path.join(path, MARKER)))
            or _portable_record(path) is not None)


def _written(path):
    """The files a previous export at `path` says it wrote (None when it does not say)."""
    portable = _portable_record(path)
    if portable is not None:
        return portable.get("files")
    try:
        with open(os.path.join(path, MARKER)) as f:
            return json.load(f).get("files")
    except (OSError, ValueError):
        return None


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
            f"(no {MARKER} nor an mmzoo {METADATA}); mmzoo export replaces only a folder it "
            "wrote itself. Choose another path, or move what is there yourself")
    extra = [e for e in entries if e not in SAVED_MODEL_ENTRIES]
    written = _written(path)
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


def export(model, path, format="saved_model", quantize=None, *, run=None, data=None,
           on_error=None):
    """Export `model` to the folder `path`: a SavedModel taking RAW inputs (the reference), or
    ONNX / LiteRT files taking numbers; each with `metadata.json` and a model card `README.md`.

    **SavedModel** (`format="saved_model"`). `serving_default` takes a dict of batched raw
    inputs named as the model's: `image` tf.string (encoded PNG/JPEG/GIF/BMP bytes), `text` /
    `question` tf.string, `audio` float32 `[batch, samples]` at the model's sample rate (any
    length: centred, padded or cropped). It returns `label` (tf.string, the class as it was in
    the data) and `scores` for classifiers and VQA; `caption` (tf.string) for captioning,
    decoded with beam search as the bench reports it (`mmzoo.models.captioning.NUM_BEAMS`
    beams, GNMT length penalty `LENGTH_PENALTY`), with a second signature `greedy`;
    `transcript` (tf.string, words separated by single spaces; CTC beam search of width
    `mmzoo.models.transcription.BEAM_WIDTH`, and a `greedy` signature) for transcription,
    which takes `audio` of any length (one utterance, or several of the same length) and also
    has a `transcribe_padded` signature taking `audio` zero-padded or not and each row's
    `lengths` (int32 samples) for a batch of unequal utterances; `text_embedding`,
    `image_embedding` and `similarity` for the dual encoder, which also has `embed_text` and
    `embed_image` signatures returning `embedding`. A `metadata` signature returns a JSON
    string (model, task, inputs, sample rate, labels, decoding). Loading needs only TensorFlow.

    **ONNX, LiteRT** (`format="onnx"` / `"litert"`): `model.onnx` / `model.tflite` (a dual
    encoder: `text_encoder.*` and `image_encoder.*`) taking decoded uint8 images, waveforms
    and token ids, as `mmzoo.portable` describes and `metadata.json` spells out (labels in
    score order, sample rate, image size, the text standardisation and vocabulary). LiteRT
    files take batch 1 and run with builtin ops only; `quantize="float16"` halves their
    weights, `quantize="int8"` quantizes weights and activations after training, calibrated
    on `mmzoo.portable.REPRESENTATIVE_EXAMPLES` examples of the training data (`data`, or the
    run's).

    Nothing export did not write is ever removed. The export is written to a temporary
    folder beside `path` and moved into place once complete. An existing `path` is replaced
    only when it is a previous mmzoo export holding nothing it did not write; an empty folder
    is used as it is; anything else fails naming `path` and what is in it.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from `.keras`).
        path: str. Destination folder: new, empty, or a previous mmzoo export.
        format: str. `saved_model`, `onnx` or `litert`.
        quantize: str or None. `float16` or `int8`, for `litert`.
        run: str or None. The training run `model` comes from: its record (data, figures that
            `mmzoo evaluate` wrote, training time) goes into the model card and metadata.
        data: str or None. A data source for int8 calibration (default: the run's).
        on_error: str or None. Bad files in that data: `raise` or `skip` (default: the run's).

    Returns:
        The absolute path written.

    Examples:
    ```python
    mmzoo.export(model, "out/vqa_cnn_lstm")
    served = tf.saved_model.load("out/vqa_cnn_lstm")
    png = tf.io.read_file("image.png")
    served.signatures["serving_default"](image=png[None],
                                         question=tf.constant(["what shape is it?"]))
    mmzoo.export(model, "out/vqa_onnx", format="onnx")     # out/vqa_onnx/model.onnx
    ```
    """
    from mmzoo import __version__
    from mmzoo.card import card, metadata, run_record
    from mmzoo.portable import check_request, portable_files

    recorded = (run_record(run) or {}).get("config") or {}
    data = data or recorded.get("data")
    check_request(format, quantize, data)
    path = os.path.abspath(path)
    _check_replaceable(path)  # before the work, so a mistake costs nothing
    on_error = on_error or recorded.get("on_error") or "raise"
    # a staging folder beside `path`, removed at the end (or, after a kill, by the next export
    # or artifact written here: `mmzoo.artifacts.sweep`)
    with staging_folder(os.path.dirname(path), os.path.basename(path)) as staging:
        written = os.path.join(staging, "model")
        graphs = None
        if format == "saved_model":
            _write_saved_model(model, written)
        else:
            os.makedirs(written)
            graphs = portable_files(model, written, format, quantize=quantize, data=data,
                                    on_error=on_error)
        meta = metadata(model, format, quantize=quantize, graphs=graphs, run=run)
        with open(os.path.join(written, CARD), "w") as f:
            f.write(card(model, meta, run=run))
        if format == "saved_model":
            meta["files"] = _files(written) + [METADATA]
            os.makedirs(os.path.join(written, "assets.extra"), exist_ok=True)
            with open(os.path.join(written, MARKER), "w") as f:
                json.dump({"model": model.name, "mmzoo": __version__, "files": meta["files"]},
                          f)
        else:
            meta["files"] = _files(written) + [METADATA]
        with open(os.path.join(written, METADATA), "w") as f:
            json.dump(meta, f, indent=1)
        _check_replaceable(path)  # again: something may have appeared there meanwhile
        if os.path.isdir(path) and os.listdir(path):
            old = os.path.join(staging, "previous")
            os.replace(path, old)           # the previous export, removed with `staging`
        os.replace(written, path)           # onto a missing path or an empty folder
    return path


def _write_saved_model(model, folder):
    """The SavedModel of `model` (its `serving_functions`) at `folder`."""
    endpoints, resources = serving_functions(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in resources:
        archive.track(resource)
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn)
    archive.write_out(folder, verbose=False)
