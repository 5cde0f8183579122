"""Run a trained model on raw inputs (files, folders, texts, a table's rows): `predict` and
`search`.

Both take what `mmzoo train` and `mmzoo export` write (`served`): a run folder (its
`model.keras`, served through the raw-input functions an export holds,
`mmzoo.export.serving_functions`), a SavedModel (TensorFlow alone), or an ONNX or LiteRT
export (its runtime alone, `mmzoo.runtime.Runner.serve`: this module imports no TensorFlow,
and neither does that path). Each answers as the SavedModel does, and `answers` reads the
answer as the model's task says in its metadata (`answer`: the top classes, a text, a score).
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from mmzoo import runtime
from mmzoo.checks import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, image_problem, wav_problem
from mmzoo.checks import read_audio as read_waveform
from mmzoo.errors import DataWarning, InvalidValue
from mmzoo.run import kind_of

BATCH = 32  # inputs served at a time
MEDIA = ("image", "audio")


class Served:
    """A model as its export serves it: `info` (its metadata: model, task, inputs, labels,
    sample rate, answer) and `call(endpoint, **inputs)` on raw inputs (encoded image files,
    texts, waveforms `[batch, samples]`), returning numpy outputs by name."""

    info = {}

    def call(self, endpoint, **inputs):
        raise NotImplementedError

    @property
    def inputs(self):
        """The raw inputs it is served (metadata.json's `serve`; a SavedModel's `inputs`)."""
        return list(self.info.get("serve") or self.info.get("inputs") or [])


class _Portable(Served):
    """An ONNX or LiteRT export, through `mmzoo.runtime.Runner.serve`."""

    def __init__(self, path):
        self.runner = runtime.Runner(path)
        self.info = self.runner.metadata

    def call(self, endpoint, **inputs):
        return self.runner.serve(endpoint, **inputs)


class _SavedModel(Served):
    """A SavedModel (`tf.saved_model.load`), called through its signatures."""

    def __init__(self, path):
        import tensorflow as tf  # heavy: only a SavedModel or a run needs it

        self._tf = tf
        self._loaded = tf.saved_model.load(path)  # kept: its signatures reference its variables
        self.functions = dict(self._loaded.signatures)
        self.info = (json.loads(self.functions["metadata"]()["json"].numpy())
                     if "metadata" in self.functions else {})

    def call(self, endpoint, **inputs):
        feed = {k: self._tf.constant(v) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in self.functions[endpoint](**feed).items()}


class _Run(Served):
    """A run folder or `.keras` file: its model through the export's raw-input functions."""

    def __init__(self, path):
        import tensorflow as tf

        from mmzoo.export import serving_functions
        from mmzoo.run import open_model

        self._tf = tf
        self.model, _ = open_model(path)
        self.functions, _ = serving_functions(self.model)
        self.functions["serving_default"] = self.functions.pop("serve")
        self.info = json.loads(self.functions["metadata"]()["json"].numpy())

    def call(self, endpoint, **inputs):
        feed = {k: self._tf.constant(v) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in self.functions[endpoint](feed).items()}


def served(path):
    """The `Served` model at `path`: a run, a `.keras` file, a SavedModel, an ONNX or LiteRT
    export (`mmzoo.run.kind_of`)."""
    kind = kind_of(path)
    if kind in ("onnx", "litert"):
        return _Portable(path)
    if kind == "saved_model":
        return _SavedModel(path)
    return _Run(path)


# --- inputs -----------------------------------------------------------------------------------

def expand(name, values):
    """The files of `--image` / `--audio` values (a folder: its files of that kind, sorted)."""
    extensions = IMAGE_EXTENSIONS if name == "image" else AUDIO_EXTENSIONS
    files = []
    for value in values:
        if os.path.isdir(value):
            found = sorted(os.path.join(value, f) for f in os.listdir(value)
                           if f.lower().endswith(extensions) and not f.startswith("."))
            if not found:
                raise InvalidValue(f"--{name} {value}: no {name} files "
                                   f"({', '.join(extensions)}) in this folder")
            files += found
        else:
            files.append(value)
    return files


def read_image(value):
    """The bytes of an image file (or `value` itself when it is bytes: a table's image cell);
    a file that is not a readable image (`mmzoo.checks.image_problem`, or a body that does not
    decode) fails naming it."""
    if isinstance(value, bytes):
        data = value
    else:
        problem = image_problem(value)
        if problem:
            raise InvalidValue(f"--image {value}: not a readable image: {problem}")
        with open(value, "rb") as f:
            data = f.read()
    try:
        runtime.image_pixels(data, (1, 1))
    except Exception as e:  # a corrupt body behind a good header: Pillow names what it found
        raise InvalidValue(f"--image {_name(value)}: not a readable image: cannot be decoded "
                           f"({' '.join(str(e).split())[:200] or type(e).__name__})") from None
    return data


def read_audio(value, rate):
    """A waveform at `rate` of an audio file (or of a table's audio cell: bytes), read as
    training reads it (`mmzoo.checks.read_audio`); a file that is not readable, complete
    audio fails naming it."""
    if isinstance(value, bytes):
        return read_waveform(value, rate, inline=True)[0]
    problem = wav_problem(value)
    if problem:
        raise InvalidValue(f"--audio {value}: not a readable audio file: {problem}")
    return read_waveform(value, rate)[0]


def _name(value):
    return "(bytes)" if isinstance(value, bytes) else value


def table_inputs(source, names):
    """`(columns, rows)`: the inputs `names` of every good row of a table (`csv:PATH`,
    `jsonl:PATH`, `parquet:PATH`, with the column options of those sources; every row checked
    as training checks it), name -> list of values (file paths or bytes for `image` and
    `audio`, strings for texts), and what names each row (`SOURCE row N`)."""
    from mmzoo.data import open_source
    from mmzoo.data.table import BAD

    src = open_source(source)
    if not hasattr(src, "roles"):
        raise InvalidValue(f"--table {source}: not a table; give csv:PATH, jsonl:PATH or "
                           "parquet:PATH")
    keys = {n: n if n in src.roles else ("text" if n == "question" else "question")
            for n in names}
    missing = [n for n, k in keys.items() if k not in src.roles]
    if missing:
        raise InvalidValue(f"--table {source}: no column for the model's input(s) {missing}; "
                           f"the table has {sorted(src.roles)}; name them with options, e.g. "
                           "csv:PATH?image=photo&text=title")
    columns, rows = {n: [] for n in names}, []
    for i, _, fields, _ in src._parse():
        if src.parts[i] == BAD or fields is None:
            continue
        rows.append(f"{source} row {i + 1}")
        for name, key in keys.items():
            value = fields[key]
            columns[name].append(value[0] if name in MEDIA else
                                 " ".join(value) if isinstance(value, list) else value)
    return columns, rows


def _shown(name, value):
    """How an input is named in a result: its path or its text, or what bytes it is."""
    return f"({name} bytes)" if isinstance(value, bytes) else value


# --- answers ----------------------------------------------------------------------------------

def answers(outputs, info, top=3):
    """What the model says of each example of a served batch, as its task's `answer` (in the
    export's metadata, `mmzoo.runtime.answer_of`) reads the outputs: `top` classes with their
    scores, a text (a caption, a transcript), or a score (a text-image similarity)."""
    answer = runtime.answer_of(info, outputs)
    kind, output = answer["kind"], answer.get("output")
    if kind not in ("labels", "text", "score"):
        raise InvalidValue(f"the export's metadata asks for an answer of kind {kind!r}, which "
                           "this mmzoo does not read; upgrade mmzoo")
    out = []
    for i in range(len(next(iter(outputs.values())))):
        if kind == "labels":
            scores = np.asarray(outputs[answer["scores"]][i])
            labels = info.get(answer["labels"])
            out.append({"top": [{"label": labels[j] if labels else int(j),
                                 "score": float(scores[j])} for j in np.argsort(-scores)[:top]]})
        elif kind == "text":
            value = outputs[output][i]
            out.append({output: value.decode() if isinstance(value, bytes) else str(value)})
        else:
            out.append({output: float(outputs[output][i, i])})
    return out


def predict(path, inputs, top=3, table=None, on_error="raise"):
    """The model at `path` (a run or an export of any format) on `inputs` (name -> list of
    values: files or folders for `image` and `audio`, strings for `text` and `question`) and the
    rows of `table` (a table source: the inputs no flag gives); each input given once, or as
    many times as the others (one value is used with each of the others'). Returns one dict per
    example: `input` (what names it: its files, texts, or table row; never bytes), and what the
    model says (`answers`).

    Args:
        path: str. A run folder, a `.keras` file, or an export folder.
        inputs: dict. Input name -> list of values.
        top: int. Classes shown with their scores.
        table: str or None. A table source (`csv:PATH`, `jsonl:PATH`, `parquet:PATH`).
        on_error: str. An unreadable input: `raise` (fail naming it) or `skip` (name it in a
            warning and go on with the others).

    Examples:
    ```python
    mmzoo.predict.predict("runs/shapes", {"image": ["photos/"]})
    ```
    """
    if on_error not in ("raise", "skip"):
        raise InvalidValue(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    model = served(path)
    expected = model.inputs
    given = {k: expand(k, v) if k in MEDIA else list(v) for k, v in inputs.items() if v}
    rows = None
    if table is not None:
        columns, rows = table_inputs(table, [n for n in expected if n not in given])
        given.update(columns)
    if sorted(given) != sorted(expected):
        raise InvalidValue(f"this model takes {expected} (give "
                           + " ".join(f"--{k}" for k in expected) + f"); got {sorted(given)}")
    sizes = {k: len(v) for k, v in given.items()}
    n = max(sizes.values())
    uneven = {k: s for k, s in sizes.items() if s not in (1, n)}
    if uneven:
        raise InvalidValue("inputs must come once or as many times as the others; got "
                           + ", ".join(f"{s} --{k}" for k, s in sizes.items()))
    given = {k: v * n if len(v) == 1 else v for k, v in given.items()}
    rate = model.info.get("sample_rate") or 8000
    results, skipped = [], []
    # audio one clip at a time (clips differ in length), the rest `BATCH` at a time
    step = 1 if "audio" in given else BATCH
    for start in range(0, n, step):
        chunk = {k: v[start:start + step] for k, v in given.items()}
        names = [{k: _shown(k, v[i]) for k, v in chunk.items()}
                 for i in range(len(next(iter(chunk.values()))))]
        if rows is not None:
            for i, named in enumerate(names):
                named["row"] = rows[start + i]
        feed, kept = _read(chunk, rate, on_error, skipped, names)
        if not kept:
            continue
        out = model.call("serving_default", **feed)
        for named, said in zip((names[i] for i in kept), answers(out, model.info, top)):
            results.append({"input": named, **said})
    if skipped:
        warnings.warn(DataWarning(f"{len(skipped)} input(s) could not be read and were skipped "
                                  "(--on-error skip)", skipped), stacklevel=2)
    return results


def _read(chunk, rate, on_error, skipped, names):
    """`(feed, kept)`: the readable examples of `chunk` as the served model takes them, and
    their positions; an unreadable one fails (`raise`) or is named in `skipped`."""
    values = {k: [] for k in chunk}
    kept = []
    for i in range(len(next(iter(chunk.values())))):
        try:
            example = {}
            for name, items in chunk.items():
                value = items[i]
                example[name] = (read_image(value) if name == "image" else
                                 read_audio(value, rate) if name == "audio" else value)
        except InvalidValue as e:
            if on_error == "raise":
                raise
            where = f" ({names[i]['row']})" if "row" in names[i] else ""
            skipped.append(f"{e}{where}")
            continue
        kept.append(i)
        for name, value in example.items():
            values[name].append(value)
    feed = {name: np.stack(items).astype("float32") if name == "audio" and items
            else np.array(items, dtype=object) for name, items in values.items()}
    return feed, kept


def lines(results):
    """`predict`'s results as lines: each example's inputs, then what the model says."""
    out = []
    for row in results:
        shown = " + ".join(str(v) if k in MEDIA or k == "row" else repr(_short(v))
                           for k, v in row["input"].items())
        if "top" in row:
            said = ", ".join(f"{t['label']} {t['score']:.3f}" for t in row["top"])
        else:
            key = next(k for k in row if k != "input")
            said = f"{key} {row[key]:.4f}" if isinstance(row[key], float) else row[key]
        out.append(f"{shown}: {said}")
    return out


def _short(text):
    return text if len(text) <= 40 else text[:37] + "..."


def search(path, text, images, top=5):
    """The `top` photos among `images` (files or folders) that the retrieval model at `path`
    (an export of any format, or a run of `dual_encoder`) matches best with `text`: `[(score,
    path)]`, best first. Photos are embedded `BATCH` at a time.

    Examples:
    ```python
    mmzoo.predict.search("runs/dual_encoder", "a dog runs on the beach", ["photos/"])
    ```
    """
    model = served(path)
    if runtime.answer_of(model.info)["kind"] != "score":
        raise InvalidValue(f"{path} is a {model.info.get('task')} model "
                           f"({model.info.get('model')}); search takes a model that embeds texts "
                           "and images (a dual encoder)")
    files = expand("image", images)
    query = model.call("embed_text", text=np.array([text], dtype=object))["embedding"]
    scores = []
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        pictures = model.call("embed_image", image=np.array([read_image(p) for p in batch],
                                                             dtype=object))["embedding"]
        scores.append(query @ pictures.T)
    scores = np.concatenate(scores, axis=1)[0]
    best = np.argsort(-scores)[:top]
    return [(float(scores[i]), files[i]) for i in best]


__all__ = ["BATCH", "Served", "answers", "expand", "lines", "predict", "read_audio",
           "read_image", "search", "served", "table_inputs"]
