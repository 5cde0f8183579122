"""Export a model as a TensorFlow SavedModel that takes raw inputs and runs without mmzoo.

The serving graph runs the model's `mmzoo.data.Preprocessor`, the one `mmzoo.data.pipeline`
trains and evaluates with: image bytes decoded and resized, strings standardised and tokenised
with the vocabulary the model carries, waveforms centred and padded or cut to their loudest part; and turns the
outputs back into strings (the class names, the caption words).
"""

from __future__ import annotations

import json
import os
import sys

import keras
import tensorflow as tf

from mmzoo import contract
from mmzoo._version import __version__
from mmzoo.artifacts import aside_of, follow_umask, staging_folder, swap_in
from mmzoo.card import (card, metadata, public_source, publishing, run_record,
                        without_local_paths)
from mmzoo.data import load
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import InvalidValue, MmzooError, user_message
from mmzoo.portable import (as_numbers, check_request, file_runner, portable_files,
                            runtime_name)
from mmzoo.registry import get_spec, get_task
from mmzoo.run import (CARD, MARKER, METADATA, FolderLock, changed_files, command_line,
                       export_record, file_stats, is_export)

RAW_SPECS = {"image": tf.TensorSpec([None], tf.string, name="image"),
             "text": tf.TensorSpec([None], tf.string, name="text"),
             "question": tf.TensorSpec([None], tf.string, name="question"),
             "audio": tf.TensorSpec([None, None], tf.float32, name="audio"),
             "lengths": tf.TensorSpec([None], tf.int32, name="lengths")}


def serving_functions(model):
    """`(endpoints, resources)`: tf.functions over raw inputs for `model`, by endpoint name (the
    first is `serving_default`), and the Keras layers they use that hold resources. Raw inputs
    become model inputs through the model's `Preprocessor`, as in `mmzoo.data.pipeline`; what
    each endpoint returns is its task's (`Task.serving_functions`). A `metadata` endpoint
    returns `info` as JSON: the model, task, inputs, sample rate, answer, and the task's."""
    pre = Preprocessor(model)
    spec = get_spec(model.name)
    task = get_task(spec.task)
    bodies, extra = task.serving_functions(model, pre)
    info = {"model": model.name, "task": spec.task, "inputs": list(bodies["serve"][1]),
            "sample_rate": pre.sample_rate or 0, "answer": task.answer(model), **extra}
    endpoints = {name: _fn(body, names) for name, (body, names) in bodies.items()}
    metadata = json.dumps(info)
    endpoints["metadata"] = tf.function(lambda: {"json": tf.constant(metadata)},
                                        input_signature=[])
    # build the tokenizers of the texts served now, so the export tracks them as resources
    served = {name for _, names in bodies.values() for name in names}
    for name in sorted(served & set(contract.TEXT_INPUTS)):
        pre.text(name, tf.constant([""]))
    return endpoints, pre.resources()


def _fn(body, names):
    def call(inputs):
        return body(**inputs)

    return tf.function(call, input_signature=[{n: RAW_SPECS[n] for n in names}])


# What a SavedModel folder holds; a previous export holding anything else is not replaced.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb",
                       METADATA, CARD}


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
    record = export_record(path)
    written = record.get("files")
    if written is not None:  # every file the export wrote is recorded: anything else is not
        extra = sorted(set(_files(path)) - set(written) - {MARKER})
    if extra:
        raise InvalidValue(
            f"cannot export to {path}: it is a previous mmzoo export but also holds {extra}, "
            "which export did not write; move them, or choose another path")
    changed = changed_files(path, record.get("stats") or {})
    if changed:
        raise InvalidValue(
            f"cannot export to {path}: it is a previous mmzoo export, but its {changed} changed "
            "since export wrote them; move them (or the export), or choose another path")


def _files(folder):
    """The files under `folder`, as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, _, names in os.walk(folder) for n in names)


def export(model, path, format="saved_model", quantize=None, *, run=None, data=None,
           on_error=None, license=None, dataset_ids=None):
    """Export `model` to the folder `path`: a SavedModel taking RAW inputs (the reference), or
    ONNX / LiteRT files taking numbers; each with `metadata.json` and a model card `README.md`.

    **SavedModel** (`format="saved_model"`). `serving_default` takes a dict of batched raw
    inputs named as the model's: `image` tf.string (encoded PNG/JPEG/GIF/BMP bytes), `text` /
    `question` tf.string, `audio` float32 `[batch, samples]` at the model's sample rate (any
    length: centred and padded, or cut to its loudest part). It returns `label` (tf.string, the class as it was in
    the data) and `scores` for classifiers and VQA; `caption` (tf.string) for captioning,
    decoded with beam search as the bench reports it (`mmzoo.tasks.captioning.NUM_BEAMS`
    beams, GNMT length penalty `LENGTH_PENALTY`), with a second signature `greedy`;
    `transcript` (tf.string, words separated by single spaces; CTC beam search of width
    `mmzoo.tasks.transcription.BEAM_WIDTH`, and a `greedy` signature) for transcription,
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
    run's) drawn from every label in turn (`mmzoo.portable.calibration_set`).

    Nothing export did not write is ever removed. The export is written to a temporary
    folder beside `path` and moved into place once complete (its folders and files with the
    modes the user's umask gives). An existing `path` is replaced only when it is a previous
    mmzoo export holding nothing it did not write; an empty folder is used as it is; anything
    else fails naming `path` and what is in it. The previous export is moved aside (to
    `.NAME.mmzoo-previous`) only while the new one moves in: an export killed in between
    leaves it there, and the next export into `path` puts it back first.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from `.keras`).
        path: str. Destination folder: new, empty, or a previous mmzoo export.
        format: str. `saved_model`, `onnx` or `litert`.
        quantize: str or None. `float16` or `int8`, for `litert`.
        run: str or None. The training run `model` comes from: its record (data, figures that
            `mmzoo evaluate` wrote, training time) goes into the model card and metadata.
        data: str or None. A data source for int8 calibration and for the figures of a
            portable export, measured on its file at export on the test split (default: the
            run's; without data, a portable export's card reports no figures).
        on_error: str or None. Bad files in that data: `raise` or `skip` (default: the run's).
        license: str or None. The licence identifier for the card (`apache-2.0`, ...; default:
            the run's, as `mmzoo card --license` recorded it, else `unknown`, said so).
        dataset_ids: list or None. Hub ids of the training data for the card's `datasets`
            (default: the run's; else the card names none).

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
    recorded = (run_record(run) or {}).get("config") or {}
    data = data or recorded.get("data")
    check_request(format, quantize, data)
    published = publishing(run, license=license, dataset_ids=dataset_ids)   # checked first
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    # one export into a folder at a time: a second one fails naming this process
    lock = FolderLock(os.path.join(parent, f".{name}{LOCK_SUFFIX}"), path, command_line())
    lock.acquire()
    try:
        # a staging folder beside `path`, removed at the end (or, after a kill, by the next
        # export or artifact written here: `mmzoo.artifacts.sweep`)
        with staging_folder(parent, name) as staging:
            _recover(path, staging)   # what an export killed while moving into place left
            _check_replaceable(path)  # before the work, so a mistake costs nothing
            written = os.path.join(staging, "model")
            _write(model, written, format, quantize, run, data,
                   on_error or recorded.get("on_error") or "raise", published)
            follow_umask(written)     # as the user's umask makes folders and files
            _check_replaceable(path)  # again: something may have appeared there meanwhile
            swap_in(written, path, staging)   # a kill leaves the previous export or this one
    finally:
        lock.release()
    return path


LOCK_SUFFIX = ".mmzoo-lock"   # `.NAME.mmzoo-lock` beside an export folder NAME, while it is written


def _recover(path, staging):
    """An export killed between moving the previous export at `path` aside and moving its own
    in (`mmzoo.artifacts.swap_in`) left the previous at `aside_of(path)`: put it back when
    `path` is missing (or an empty folder), or, when the new export did arrive, remove it
    (moved into `staging`) if it holds only what export wrote, as export left it."""
    aside = aside_of(path)
    if not os.path.isdir(aside) or os.path.islink(aside) or not is_export(aside):
        return
    if not os.path.lexists(path) or (os.path.isdir(path) and not os.listdir(path)):
        os.replace(aside, path)
        print(f"mmzoo: put back the previous export at {path}, which an interrupted export "
              f"had moved to {aside}", file=sys.stderr)
        return
    if not is_export(path):       # something else arrived there: the check after this says so
        return
    try:
        _check_replaceable(aside)
    except InvalidValue:
        raise InvalidValue(
            f"cannot export to {path}: {aside} holds the export an interrupted export moved "
            "aside, and files export did not write (or changed since); move it away, or "
            "choose another path") from None
    os.rename(aside, os.path.join(staging, "previous"))


def _write(model, folder, fmt, quantize, run, data, on_error, published):
    """The files of an export of `model` in the new `folder`: the graphs, the model card and
    `metadata.json` (and a SavedModel's marker), each listing every file written. A portable
    export's figures are measured on its own file (`_measure`)."""
    graphs = measured = None
    if fmt == "saved_model":
        _write_saved_model(model, folder)
    else:
        os.makedirs(folder)
        graphs = portable_files(model, folder, fmt, quantize=quantize, data=data,
                                on_error=on_error)
        measured = _measure(model, folder, fmt, graphs, data, on_error)
    meta = metadata(model, fmt, quantize=quantize, graphs=graphs, run=run, measured=measured,
                    license=published["license"], dataset_ids=published["dataset_ids"])
    with open(os.path.join(folder, CARD), "w") as f:
        f.write(card(model, meta, run=run))
    meta["files"] = _files(folder) + [METADATA]
    # each file as written (the records themselves aside): a later export replaces the folder
    # only while they are so
    meta["stats"] = file_stats(folder, _files(folder))
    if fmt == "saved_model":
        os.makedirs(os.path.join(folder, "assets.extra"), exist_ok=True)
        with open(os.path.join(folder, MARKER), "w") as f:
            json.dump({"model": model.name, "mmzoo": __version__, "files": meta["files"],
                       "stats": meta["stats"]}, f)
    with open(os.path.join(folder, METADATA), "w") as f:
        json.dump(meta, f, indent=1)


def _measure(model, folder, fmt, graphs, data, on_error):
    """A portable export's own test figures: its `model` file run in its runtime on the test
    split of `data`, scored as `mmzoo evaluate` scores the Keras model (`Task.evaluate_file`):
    `{"evaluation", "file", "runtime"}`, or `{"why"}` they were not measured (no data, no
    test split, no runtime, or a task whose figures need more than one graph), said on
    stderr too when there was data."""
    spec = get_spec(model.name)
    graph = graphs.get("model")
    why = None
    if data is None:
        return {"why": "no data was given at export (`--data`, or a run recording its data)"}
    if graph is None:
        why = f"the {spec.task} task's figures need its {len(graphs)} files together"
    elif runtime_name(fmt) is None:
        why = "onnxruntime was not installed at export"
    if why is None:
        try:
            test = load(data, split="test", task=spec.task, on_error=on_error)
        except (MmzooError, OSError, ValueError) as e:
            why = f"its test split could not be read ({' '.join(str(e).split())[:200]})"
    result = None
    if why is None:
        try:
            result = _file_figures(model, os.path.join(folder, graph["file"]), fmt, test)
        except Exception as e:    # data this model cannot be scored on (other labels)
            said = user_message(e)
            if said is None:
                raise
            why = f"its test split could not be scored ({' '.join(said.split())[:200]})"
        if why is None and result is None:
            why = f"mmzoo measures no {spec.task} figures on one exported file"
    if why is not None:
        print(f"mmzoo: warning: the export's figures were not measured: {why}; its model card "
              "reports none", file=sys.stderr)
        return {"why": without_local_paths(why)}
    evaluation = {"model": model.name, "task": spec.task, **result,
                  "data": public_source(data), "split": "test"}
    return {"evaluation": evaluation, "file": graph["file"], "runtime": runtime_name(fmt)}


def _file_figures(model, path, fmt, test, batch_size=64):
    """The task's figures of the exported file `path` on `test`: each batch of the pipeline
    run in the file's runtime (`mmzoo.portable.file_runner`), scored by
    `Task.evaluate_file`; None for a task it cannot score so."""
    run = file_runner(path, fmt)
    return get_task(get_spec(model.name).task).evaluate_file(
        model, test, batch_size, lambda inputs: run(as_numbers(model, inputs)))


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
