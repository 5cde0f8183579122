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
import sys

import keras
import tensorflow as tf

from mmzoo import contract
from mmzoo._version import __version__
from mmzoo.evaluate import table
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
            "history": read_history(folder.file("history.csv"))}


EVALUATION = "evaluation_test.json"   # the evaluation a card shows


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


def metadata(model, fmt="saved_model", *, quantize=None, graphs=None, run=None):
    """`metadata.json` for an export of `model` (or a run, `fmt` None): the model and task,
    its graphs (files, input and output dtypes and shapes), how to make each input, `labels` in
    score order, `sample_rate` / `image_size`, decoding, the training record and versions.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from its `.keras` file).
        fmt: str. `saved_model`, `onnx` or `litert`.
        quantize: str or None. The quantization of a LiteRT file.
        graphs: dict or None. What `mmzoo.portable.portable_files` wrote.
        run: str or None. The run folder the model comes from.
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
    if record.get("config"):
        config = record["config"]
        out["training"] = {k: config.get(k) for k in ("data", "data_fingerprint", "epochs",
                                                      "batch_size", "seed", "overrides")}
    if record.get("evaluation"):
        out["test"] = _figures(record["evaluation"])
    out["versions"] = versions()
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


def _dataset_name(data):
    if not data:
        return None
    kind, _, rest = str(data).partition(":")
    if not rest:
        return kind
    return f"{kind}:{os.path.basename(rest.split('?')[0].rstrip('/')) or rest}"


def front_matter(meta, spec):
    """The YAML front matter's fields for `metadata` `meta`."""
    inputs = list(spec.inputs)
    task = get_task(spec.task)
    tag = task.pipeline_tag(inputs)
    fields = {"library_name": "keras", "tags": ["mmzoo", "keras", "tensorflow",
                                                *task.tags(inputs)]}
    if tag:
        fields["pipeline_tag"] = tag
    training = meta.get("training") or {}
    dataset = _dataset_name(training.get("data"))
    if dataset:
        fields["datasets"] = [dataset]
    figures = meta.get("test") or {}
    if figures:
        fields["metrics"] = sorted({k.split(".")[-1] for k in figures})
        fields["model-index"] = [{
            "name": meta["model"],
            "results": [{"task": {"type": tag or spec.task},
                         "dataset": {"name": dataset or "test data", "type": dataset or "custom",
                                     "split": "test"},
                         "metrics": [{"type": k, "value": round(float(v), 6)}
                                     for k, v in figures.items()]}]}]
    return fields


def _table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def card(model, meta, *, run=None):
    """The model card (str): YAML front matter, then the sections. `meta` is `metadata`'s."""
    spec = get_spec(model.name)
    task = get_task(spec.task)
    record = run_record(run)
    config, training = record.get("config") or {}, record.get("training") or {}
    lines = ["---", _yaml(front_matter(meta, spec)), "---", "",
             f"# {model.name}" + (f" ({os.path.basename(os.path.abspath(run))})" if run else ""),
             "", spec.summary or "", "",
             f"Task: **{spec.task}**. Made with mmzoo, a Keras 3 model zoo; "
             + _format_line(meta), ""]
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
        lines += [f"`{graph['file']}`{numbers} gives {outputs}.", ""]
    lines += task.card_lines(meta)
    lines += ["## Training data", ""]
    if config:
        lines += [f"- source: `{config.get('data')}`",
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
    lines += ["## Test figures", ""]
    if record.get("evaluation"):
        lines += ["As `mmzoo evaluate` printed them for this run "
                  f"(data `{record['evaluation'].get('data')}`, split "
                  f"`{record['evaluation'].get('split', 'test')}`):", "", "```",
                  table(record["evaluation"]), "```", ""]
    else:
        lines += ["None yet: run `mmzoo evaluate RUN`, then `mmzoo card RUN` (or export again).",
                  ""]
    if training:
        lines += ["## Training", "",
                  f"{training.get('seconds', 0):,.0f} s for {training.get('epochs_run')} epochs "
                  f"(best epoch {training.get('best_epoch')}) on {training.get('machine')}, "
                  f"finished {training.get('finished')}.", ""]
    lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
    limits = list(spec.limits) + list(task.limits)
    lines += ["## Intended use and limits", "", task.intended_use, ""]
    lines += [f"- {limit}" for limit in limits] + [""]
    return "\n".join(lines)


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


def write(run, model=None):
    """Write `run/README.md`, the card of a training run (`mmzoo card RUN`); returns its path.

    Args:
        run: str or mmzoo.run.RunFolder. A folder written by `mmzoo train`.
        model: keras.Model or None. The run's model (read from `run/model.keras` when None).
    """
    folder = run if isinstance(run, RunFolder) else open_run(run, "a model card")
    if model is None:
        model, _ = open_model(folder.path)
    meta = metadata(model, None, run=folder.path)
    return folder.write_text(CARD, card(model, meta, run=folder.path))


__all__ = ["card", "machine", "metadata", "run_record", "versions", "write"]
