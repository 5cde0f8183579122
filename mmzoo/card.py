"""Model cards: a `README.md` with YAML front matter (as Hugging Face and Kaggle read it) and a
`metadata.json` for runtimes, written with every run and every export.

The card says what the model does, what it takes (dtypes, shapes, how to make each input), its
labels in score order, the data it learned from (source, fingerprint, examples per split), its
configuration, the test figures `mmzoo evaluate` printed for the run (`evaluation_test.json`),
training time and machine, versions, and the limits known for that model.

Examples:
```python
mmzoo.card.write("runs/audio_mfcc_cnn")      # runs/audio_mfcc_cnn/README.md
```
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys

import keras
import tensorflow as tf

from mmzoo import contract
from mmzoo._version import __version__
from mmzoo.evaluate import table
from mmzoo.errors import InvalidValue
from mmzoo.portable import input_metadata
from mmzoo.registry import get_spec, get_task
from mmzoo.run import CARD, RunFolder, open_model, open_run, read_history


def _read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_record(run):
    """What a run folder recorded: `config` (config.json), `training` (training.json),
    `evaluation` (evaluation_test.json, as `mmzoo evaluate` wrote it: a file of that name that
    mmzoo did not write is not read), `history` rows; `{}` entries when `run` is None or lacks
    them."""
    if run is None:
        return {}
    folder = RunFolder(run)
    return {"config": _read_json(folder.file("config.json")) or {},
            "training": _read_json(folder.file("training.json")) or {},
            "evaluation": (_read_json(folder.file(EVALUATION)) if folder.ours(EVALUATION)
                           else None),
            "history": read_history(folder.file("history.csv")),
            "publishing": (_read_json(folder.file(PUBLISHING)) if folder.ours(PUBLISHING)
                           else None) or {}}


EVALUATION = "evaluation_test.json"   # the evaluation a card shows
PUBLISHING = "card.json"   # a run's licence and hub dataset ids, as `mmzoo card` was given them
UNKNOWN = "unknown"        # the licence of a card not given one (a value the hubs read)
# `library_name` by format: what loads the files. Hugging Face names libraries and file
# formats by these keys: `keras` (a Keras 3 `.keras` file, `keras.saving.load_model`); a
# SavedModel from `keras.export.ExportArchive` is no Keras model (Keras 3 reloads it only as a
# `TFSMLayer`), but a TensorFlow one: `tf`, the hub's key for TensorFlow; `onnx` for ONNX
# files; `tflite` for LiteRT files (the hub's key for `.tflite`, shown as TF Lite / LiteRT).
LIBRARY = {None: "keras", "saved_model": "tf", "onnx": "onnx", "litert": "tflite"}
FORMAT_TAGS = {None: ("keras", "tensorflow"), "saved_model": ("tensorflow",), "onnx": ("onnx",),
               "litert": ("tflite", "litert")}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_LICENSE = re.compile(r"^[A-Za-z0-9][\w.+-]*$")


def publishing(run=None, *, license=None, dataset_ids=None):
    """`{"license", "dataset_ids"}` for a card: those given, else the run's (`card.json`, as
    `mmzoo card RUN --license ...` recorded them), else the licence `unknown` and no dataset
    ids. A licence is an identifier (`apache-2.0`, `mit`, `cc-by-4.0`, `other`); a dataset id
    a hub's `name` or `owner/name`: anything else fails naming it."""
    recorded = run_record(run).get("publishing") or {}
    license = license if license is not None else recorded.get("license")
    ids = list(dataset_ids) if dataset_ids else list(recorded.get("dataset_ids") or [])
    if license is not None and not _LICENSE.match(str(license)):
        raise InvalidValue(f"--license {license!r} is not a licence identifier; give one as the "
                           "hubs spell it: apache-2.0, mit, cc-by-sa-4.0, other")
    for name in ids:
        if not _HUB_ID.match(str(name)):
            raise InvalidValue(f"--dataset-id {name!r} is not a hub dataset id; give the id the "
                               "data has on a hub, as NAME or OWNER/NAME (e.g. "
                               "Jakobovski/free-spoken-digit-dataset), or leave it out")
    return {"license": license or UNKNOWN, "dataset_ids": ids}


def versions():
    """The versions an export was written with."""
    out = {"mmzoo": __version__, "keras": keras.__version__,
           "tensorflow": tf.__version__, "python": sys.version.split()[0]}
    try:
        import tf2onnx

        out["tf2onnx"] = tf2onnx.__version__
    except ImportError:  # pragma: no cover - tf2onnx is a dependency
        pass
    return out


def metadata(model, fmt="saved_model", *, quantize=None, graphs=None, run=None, measured=None,
             license=None, dataset_ids=None):
    """`metadata.json` for an export of `model` (or a run, `fmt` None): the model and task,
    its graphs (files, input and output dtypes and shapes), how to make each input, `labels` in
    score order, `sample_rate` / `image_size`, decoding, the training record and versions.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from its `.keras` file).
        fmt: str. `saved_model`, `onnx` or `litert`.
        quantize: str or None. The quantization of a LiteRT file.
        graphs: dict or None. What `mmzoo.portable.portable_files` wrote.
        run: str or None. The run folder the model comes from.
        measured: dict or None. A portable export's own figures, measured on its file at
            export (`mmzoo.export`): `evaluation`, `file`, `runtime`; or `why` they are not.
        license: str or None. The licence identifier (default: the run's, else `unknown`).
        dataset_ids: list or None. Hub ids of the training data (default: the run's, else
            none).

    `test` holds the figures the card's `model-index` reports, and `test_measured` says on
    what: a portable export's only when measured on its own file; a SavedModel's (the Keras
    model's graph and weights) and a run's those of `mmzoo evaluate` of the run.
    """
    spec = get_spec(model.name)
    task = get_task(spec.task)
    shapes = contract.input_shapes(model)
    out = {"exported_by": "mmzoo", "model": model.name, "task": spec.task, "format": fmt,
           "quantize": quantize, "inputs": input_metadata(model, fmt or "saved_model")}
    if graphs is not None:
        out["graphs"] = graphs
    if "image" in shapes:
        out["image_size"] = list(shapes["image"][:2])
    if "audio" in shapes:
        out["sample_rate"] = contract.sample_rate(model)
    out.update(task.metadata(model))
    out["answer"] = task.answer(model)
    out["serve"] = task.served_inputs(model)
    record = run_record(run)
    out.update(publishing(run, license=license, dataset_ids=dataset_ids))
    if record.get("config"):
        config = record["config"]
        out["training"] = {k: config.get(k) for k in ("data", "data_fingerprint", "epochs",
                                                      "batch_size", "seed", "overrides")}
        out["training"]["data"] = public_source(config.get("data"))
    out.update(_test_figures(fmt, record.get("evaluation"), measured))
    out["versions"] = versions()
    return out


def _test_figures(fmt, evaluation, measured):
    """`test` (the figures `model-index` reports), `test_measured` (on what), and for a
    portable export `keras_test` (the run's Keras model's, for comparison only)."""
    out = {}
    if fmt in LIBRARY and fmt not in (None, "saved_model"):     # a portable export
        if evaluation:
            out["keras_test"] = _figures(evaluation)
        if measured and measured.get("evaluation"):
            result = measured["evaluation"]
            out["test"] = _figures(result)
            out["test_measured"] = {
                "on": measured["file"], "at": "export", "runtime": measured["runtime"],
                "data": result.get("data"), "split": result.get("split"),
                "how": f"{measured['file']} run in {measured['runtime']} at export on the "
                       f"{result.get('split')} split of {result.get('data')}"}
            out["test_evaluation"] = result
        else:
            out["test_measured"] = {"on": None, "why": (measured or {}).get(
                "why", "no data was given at export")}
    elif evaluation:
        out["test"] = _figures(evaluation)
        out["test_measured"] = {
            "on": "the run's Keras model", "at": "mmzoo evaluate",
            "data": public_source(evaluation.get("data")), "split": evaluation.get("split"),
            "how": "`mmzoo evaluate` of the run's Keras model"
                   + ("; this SavedModel serves the same graph and weights"
                      if fmt == "saved_model" else "")}
    return out


def _figures(evaluation):
    """The headline test figures of an `mmzoo evaluate` result, `{metric: value}`."""
    keep = {}
    for key, value in evaluation.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in (
                "examples", "seconds"):
            keep[key] = value
        elif key in ("greedy", "beam") and isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    keep[f"{key}.{k}"] = v
    return keep


def _yaml(value, indent=0):
    """A small YAML writer for the front matter (lists, dicts, strings, numbers)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_yaml(v, indent + 2))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, dict):
                inner = _yaml(v, indent + 2).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_scalar(v)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if v is None or v == [] or v == {}:
        return "[]" if v == [] else "{}" if v == {} else "null"
    return json.dumps(str(v))  # a JSON string is a YAML string


def public_source(data):
    """A data source as a card may say it: its kind and the base name of its path, with its
    options (`csv:news.csv`, not `csv:/home/me/data/news.csv`); None for None."""
    if not data:
        return None
    kind, sep, rest = str(data).partition(":")
    if not sep:
        return kind
    path, q, query = rest.partition("?")
    name = os.path.basename(path.rstrip("/\\")) or path
    return f"{kind}:{name}{q}{query}"


# an absolute local path in text: `/a/b` (a folder and a name at least: not `2,018 / 232` nor
# `/float`), `~/a`, `C:\a` (not a URL's `//host/...`)
_PART = r"[^\s`'\"|,;:()\[\]/\\]+"
_ABSOLUTE = re.compile(rf"(?<![\w/.~-])(?:(?:~/|[A-Za-z]:\\)(?:{_PART}[/\\])*|/(?!/)"
                       rf"(?:{_PART}/)+){_PART}?")


def without_local_paths(text):
    """`text` with every absolute local path replaced by its base name."""
    return _ABSOLUTE.sub(lambda m: re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1] or ".",
                         text)


def front_matter(meta, spec):
    """The YAML front matter's fields for `metadata` `meta`: the library that loads it (by
    format, `LIBRARY`), licence, tags, pipeline tag, hub dataset ids (only as given), and the
    test figures in `model-index` (only those measured on what the folder holds)."""
    inputs = list(spec.inputs)
    task = get_task(spec.task)
    tag = task.pipeline_tag(inputs)
    fmt = meta.get("format")
    fields = {"library_name": LIBRARY.get(fmt, "keras"), "license": meta.get("license", UNKNOWN),
              "tags": ["mmzoo", *FORMAT_TAGS.get(fmt, ()), *task.tags(inputs)]}
    if tag:
        fields["pipeline_tag"] = tag
    datasets = meta.get("dataset_ids") or []
    if datasets:
        fields["datasets"] = list(datasets)
    figures = meta.get("test") or {}
    if figures:
        measured = meta.get("test_measured") or {}
        name = datasets[0] if datasets else (measured.get("data") or "test data")
        fields["metrics"] = sorted({k.split(".")[-1] for k in figures})
        fields["model-index"] = [{
            "name": meta["model"],
            "results": [{"task": {"type": tag or spec.task},
                         "dataset": {"name": name, "type": datasets[0] if datasets else "custom",
                                     "split": measured.get("split") or "test"},
                         "metrics": [{"type": k, "value": round(float(v), 6)}
                                     for k, v in figures.items()]}]}]
    return fields


def _table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def card(model, meta, *, run=None):
    """The model card (str): YAML front matter, then the sections. `meta` is `metadata`'s. No
    absolute local path appears in it (`without_local_paths`): data sources are named by kind
    and base name."""
    spec = get_spec(model.name)
    task = get_task(spec.task)
    record = run_record(run)
    config, training = record.get("config") or {}, record.get("training") or {}
    lines = ["---", _yaml(front_matter(meta, spec)), "---", "",
             f"# {model.name}" + (f" ({os.path.basename(os.path.abspath(run))})" if run else ""),
             "", spec.summary or "", "",
             f"Task: **{spec.task}**. Made with mmzoo, a Keras 3 model zoo; "
             + _format_line(meta), ""]
    lines += ["## Use it", "", "```python", *_usage(meta), "```", ""]
    lines += ["## Inputs", "",
              _table([(name, info["dtype"], info["shape"], info["how"])
                      for name, info in meta["inputs"].items()],
                     ["input", "dtype", "shape", "what to give"]), ""]
    for name, info in meta["inputs"].items():
        pre = info.get("preprocessing")
        if pre and "vocabulary" in pre:
            lines += [f"`{name}` text: {pre.get('how', '')}; {len(pre['vocabulary'])} "
                      "tokens (the vocabulary is in metadata.json).", ""]
    for stem, graph in (meta.get("graphs") or {}).items():
        outputs = ", ".join(f"`{k}` {v['dtype']} {v['shape']}" for k, v in graph["outputs"].items())
        numbers = f" ({graph['numbers']})" if graph.get("numbers") else ""
        checked = f" Checked: {graph['checked']}." if graph.get("checked") else ""
        lines += [f"`{graph['file']}`{numbers} gives {outputs}.{checked}", ""]
    lines += task.card_lines(meta)
    lines += _training_lines(config, training)
    lines += ["## Test figures", "", *_figure_lines(meta, record.get("evaluation"))]
    if training:
        lines += ["## Training", "",
                  f"{training.get('seconds', 0):,.0f} s for {training.get('epochs_run')} epochs "
                  f"(best epoch {training.get('best_epoch')}) on {training.get('machine')}, "
                  f"finished {training.get('finished')}.", ""]
    lines += ["## Licence", "", _licence_line(meta), ""]
    lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
    limits = list(spec.limits) + list(task.limits)
    lines += ["## Intended use and limits", "", task.intended_use, ""]
    lines += [f"- {limit}" for limit in limits] + [""]
    return without_local_paths("\n".join(lines))


def _training_lines(config, training):
    lines = ["## Training data", ""]
    if config:
        lines += [f"- source: `{public_source(config.get('data'))}`",
                  f"- fingerprint: `{config.get('data_fingerprint')}`"]
        for split, n in (training.get("examples") or {}).items():
            lines.append(f"- {split}: {n:,} examples")
    else:
        lines.append("Not recorded: this export was made from a model, not from a run folder.")
    lines += [""]
    if config:
        lines += ["## Configuration", "",
                  f"{config.get('epochs')} epochs, batch size {config.get('batch_size')}, seed "
                  f"{config.get('seed')}, overrides `{json.dumps(config.get('overrides') or {})}`"
                  ".", ""]
        lines += [f"- `{k}`: `{json.dumps(v, default=str)}`"
                  for k, v in (config.get("config") or {}).items()
                  if not (k == "labels" and isinstance(v, list) and len(v) > 20)] + [""]
    return lines


def _shown(evaluation):
    """An evaluation's table, its data named as a card names it."""
    return ["```", table({**evaluation, "data": public_source(evaluation.get("data"))}), "```",
            ""]


def _figure_lines(meta, evaluation):
    """The test figures: those `model-index` reports and on what they were measured; for a
    portable export, the run's Keras model's too, said to be not this file's."""
    measured = meta.get("test_measured") or {}
    portable = meta.get("format") in ("onnx", "litert")
    lines = []
    if portable and meta.get("test_evaluation"):
        lines += [f"Measured on this file at export ({measured['how']}); these are the figures "
                  "of `model-index`:", "", *_shown(meta["test_evaluation"])]
    elif portable:
        lines += [f"Not measured on this file: {measured.get('why')}. `model-index` holds no "
                  "figures (export with `--data SOURCE` to measure them on the file).", ""]
    elif evaluation:
        lines += [f"As `mmzoo evaluate` printed them for this run (data "
                  f"`{public_source(evaluation.get('data'))}`, split "
                  f"`{evaluation.get('split', 'test')}`)"
                  + ("; this SavedModel serves the Keras model's graph and weights"
                     if meta.get("format") == "saved_model" else "") + ":", "",
                  *_shown(evaluation)]
    else:
        lines += ["None yet: run `mmzoo evaluate RUN`, then `mmzoo card RUN` (or export again).",
                  ""]
    if portable and evaluation:
        lines += ["The run's Keras model, as `mmzoo evaluate` printed them (for comparison: "
                  "not this file's figures):", "", *_shown(evaluation)]
    return lines


def _licence_line(meta):
    license = meta.get("license", UNKNOWN)
    if license == UNKNOWN:
        return ("Not given: the licence is unknown (`license: unknown`). Give it with `mmzoo "
                "export ... --license ID` or `mmzoo card RUN --license ID` (e.g. apache-2.0); "
                "mind the training data's own licence.")
    return (f"`{license}`, as given to mmzoo. Mind the training data's own licence too.")


def _usage(meta):
    """Python that loads this folder's format and calls it."""
    fmt, inputs = meta.get("format"), meta.get("serve") or list(meta["inputs"])
    rate = meta.get("sample_rate") or 16000
    raw = {"image": 'open("photo.jpg", "rb").read()', "text": '"a short text"',
           "question": '"what shape is in the image?"', "audio": f"np.zeros({rate}, 'float32')"}
    if fmt is None:
        return ["import keras, mmzoo  # mmzoo registers the layers model.keras uses",
                'model = keras.saving.load_model("model.keras")',
                "# raw inputs in, answers out: mmzoo.predict.predict(RUN, {...}), or "
                "`mmzoo predict RUN`"]
    if fmt == "saved_model":
        tensors = {"image": 'tf.io.read_file("photo.jpg")[None]', "text": 'tf.constant(["a short '
                   'text"])', "question": 'tf.constant(["what shape is in the image?"])',
                   "audio": f"tf.zeros([1, {rate}])  # float32 waveforms at {rate} Hz"}
        return ["import tensorflow as tf  # and nothing of mmzoo's",
                'served = tf.saved_model.load(".")  # this folder',
                'served.signatures["serving_default"](' + ", ".join(
                    f"{n}={tensors[n]}" for n in inputs if n in tensors) + ")"]
    graph = next(iter(meta["graphs"].values()))
    fed = ", ".join(f"{n}={n}" for n in graph["inputs"])
    lines = ["import numpy as np"] + [
        f"{n} = np.zeros({[d or 1 for d in v['shape']]}, {v['dtype']!r})  # as metadata.json "
        "says" for n, v in graph["inputs"].items()]
    if fmt == "onnx":
        lines += ["import onnxruntime",
                  f'session = onnxruntime.InferenceSession("{graph["file"]}")',
                  f"outputs = session.run(None, dict({fed}))"]
    else:
        lines += ["from ai_edge_litert.interpreter import Interpreter",
                  f'run = Interpreter(model_path="{graph["file"]}").get_signature_runner()',
                  f"outputs = run({fed})  # one example a call"]
    return [*lines, "# raw inputs in, answers out: mmzoo/runtime.py copied here (it needs numpy "
            "and the runtime only)", "from runtime import Runner",
            'Runner(".").serve(' + ", ".join(f"{n}=[{raw[n]}]" for n in inputs if n in raw)
            + ")"]


def _format_line(meta):
    fmt = meta.get("format")
    if fmt == "saved_model":
        return ("this folder is a TensorFlow SavedModel taking raw inputs (image files, text, "
                "waveforms); `metadata.json` describes its inputs and outputs.")
    if fmt in ("onnx", "litert"):
        runtime = "ONNX Runtime" if fmt == "onnx" else "the LiteRT interpreter (batch 1)"
        quant = f", quantized {meta['quantize']}" if meta.get("quantize") else ""
        return (f"this folder holds {fmt} files{quant} for {runtime}, taking numbers (decoded "
                "pixels, waveforms, token ids); `metadata.json` says how to make them.")
    return "this folder is a training run (`model.keras`)."


def machine():
    """This machine in words: CPU, cores and any GPU TensorFlow sees."""
    gpus = tf.config.list_physical_devices("GPU")
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores"
            + (f", {len(gpus)} GPU(s)" if gpus else ", no GPU"))


def write(run, model=None, *, license=None, dataset_ids=None):
    """Write `run/README.md`, the card of a training run (`mmzoo card RUN`); returns its path.
    A licence or dataset ids given are recorded in `run/card.json`, for the run's later cards
    and exports.

    Args:
        run: str or mmzoo.run.RunFolder. A folder written by `mmzoo train`.
        model: keras.Model or None. The run's model (read from `run/model.keras` when None).
        license: str or None. The licence identifier (default: the run's, else `unknown`).
        dataset_ids: list or None. Hub ids of the training data (default: the run's).
    """
    folder = run if isinstance(run, RunFolder) else open_run(run, "a model card")
    if model is None:
        model, _ = open_model(folder.path)
    given = publishing(folder.path, license=license, dataset_ids=dataset_ids)
    if license is not None or dataset_ids:
        folder.write_json(PUBLISHING, given)
    meta = metadata(model, None, run=folder.path)
    return folder.write_text(CARD, card(model, meta, run=folder.path))


__all__ = ["LIBRARY", "card", "front_matter", "machine", "metadata", "public_source",
           "publishing", "run_record", "versions", "without_local_paths", "write"]
