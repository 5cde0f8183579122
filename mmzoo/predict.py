"""Run a trained model on raw inputs (files, folders, texts): `predict` and `search`.

Both take an export (`mmzoo export`: a SavedModel served by TensorFlow alone) or a run folder
(`mmzoo train`: its `model.keras`, served through the same raw-input functions an export
holds, `mmzoo.export.serving_functions`).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from mmzoo.data.folders import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from mmzoo.errors import InvalidValue, MissingFile

BATCH = 32  # inputs served at a time


class Served:
    """The raw-input functions of an export or a run: `call(endpoint, **inputs)` and `info`
    (model, task, inputs, labels, sample rate)."""

    def __init__(self, path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            loaded = tf.saved_model.load(path)
            self._loaded = loaded
            self.functions = dict(loaded.signatures)
            self.info = json.loads(self.functions["metadata"]()["json"].numpy()) \
                if "metadata" in self.functions else {}
            self._dict_inputs = False
        else:
            import keras

            from mmzoo.export import serving_functions

            file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
            if not os.path.isfile(file):
                raise MissingFile(f"no export or trained model at {path}; give a folder "
                                  "written by `mmzoo export` or `mmzoo train` (or a .keras file)")
            self.model = keras.saving.load_model(file)
            self.functions, _ = serving_functions(self.model)
            self.functions["serving_default"] = self.functions.pop("serve")
            self.info = json.loads(self.functions["metadata"]()["json"].numpy())
            self._dict_inputs = True

    def call(self, endpoint, **inputs):
        fn = self.functions[endpoint]
        out = fn(inputs) if self._dict_inputs else fn(**inputs)
        return {k: v.numpy() for k, v in out.items()}


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


def read_image(path):
    """The bytes of an image file (or `path` itself when it is bytes: a table's image cell), or
    an `InvalidValue` naming the file and why it is not one."""
    from mmzoo.data.checks import image_problem
    from mmzoo.data.preprocessor import decode_image

    if isinstance(path, bytes):
        return path
    problem = image_problem(path)
    if problem is None:
        with open(path, "rb") as f:
            data = f.read()
        try:
            decode_image(tf.constant(data))
        except tf.errors.OpError as e:  # a corrupt body behind a good header and end marker
            problem = f"cannot be decoded ({e.message.splitlines()[0]})"
    if problem:
        raise InvalidValue(f"--image {path}: not a readable image: {problem}")
    return data


def read_audio(path, sample_rate):
    """A waveform at `sample_rate` (of a file, or of a table's audio cell: bytes), or an
    `InvalidValue` naming the file and why it is not one."""
    from mmzoo.data.checks import read_audio as read
    from mmzoo.data.checks import wav_problem

    if isinstance(path, bytes):
        return read(path, sample_rate, inline=True)[0]
    problem = wav_problem(path)
    if problem:
        raise InvalidValue(f"--audio {path}: not a readable audio file: {problem}")
    return read(path, sample_rate)[0]


def table_inputs(source, names):
    """The inputs `names` of every row of a table (`csv:PATH`, `jsonl:PATH`, `parquet:PATH`,
    with the column options of those sources; every row checked as training checks it): name ->
    list of values (file paths or bytes for `image` and `audio`, strings for texts)."""
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
    columns = {n: [] for n in names}
    for i, _, fields, _ in src._parse():
        if src.parts[i] == BAD or fields is None:
            continue
        for name, key in keys.items():
            value = fields[key]
            columns[name].append(value[0] if name in ("image", "audio") else
                                 " ".join(value) if isinstance(value, list) else value)
    return columns


def _shown(name, value):
    if isinstance(value, bytes):
        return f"({name} bytes)"
    if name in ("image", "audio"):
        return value
    return repr(value if len(value) <= 40 else value[:37] + "...")


def predict(path, inputs, top=3, table=None):
    """The model at `path` (an export or a run) on `inputs` (name -> list of values: files or
    folders for `image` and `audio`, strings for `text` and `question`) and the rows of
    `table` (a table source: the inputs no flag gives); each input given once, or as many times
    as the others (one value is used with each of the others'). Returns one
    dict per example: `input` (what it was), and the `top` classes with their scores, the
    caption, the transcript, or the similarity.

    Examples:
    ```python
    mmzoo.predict.predict("runs/shapes", {"image": ["photos/"]})
    ```
    """
    served = Served(path)
    expected = served.info.get("inputs", [])
    given = {k: expand(k, v) if k in ("image", "audio") else list(v)
             for k, v in inputs.items() if v}
    if table is not None:
        given.update(table_inputs(table, [n for n in expected if n not in given]))
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
    labels = served.info.get("labels")
    rate = served.info.get("sample_rate") or 8000
    results = []
    # audio one clip at a time (clips differ in length), the rest `BATCH` at a time
    step = 1 if "audio" in given else BATCH
    for start in range(0, n, step):
        chunk = {k: v[start:start + step] for k, v in given.items()}
        feed = {}
        for name, values in chunk.items():
            if name == "image":
                feed[name] = tf.constant([read_image(p) for p in values])
            elif name == "audio":
                feed[name] = tf.constant(np.stack([read_audio(p, rate) for p in values]))
            else:
                feed[name] = tf.constant(values)
        out = served.call("serving_default", **feed)
        for i in range(len(next(iter(chunk.values())))):
            row = {"input": {k: v[i] for k, v in chunk.items()}}
            if "scores" in out:
                scores = out["scores"][i]
                best = np.argsort(-scores)[:top]
                row["top"] = [{"label": labels[j] if labels else int(j),
                               "score": float(scores[j])} for j in best]
            elif "caption" in out:
                row["caption"] = out["caption"][i].decode()
            elif "transcript" in out:
                row["transcript"] = out["transcript"][i].decode()
            else:
                row["similarity"] = float(out["similarity"][i, i])
            results.append(row)
    return results


def lines(results):
    """`predict`'s results as lines: each example's inputs, then what the model says."""
    out = []
    for row in results:
        shown = " + ".join(_shown(k, v) for k, v in row["input"].items())
        if "top" in row:
            said = ", ".join(f"{t['label']} {t['score']:.3f}" for t in row["top"])
        else:
            said = next(f"{k} {row[k]:.4f}" if k == "similarity" else row[k]
                        for k in ("caption", "transcript", "similarity") if k in row)
        out.append(f"{shown}: {said}")
    return out


def search(path, text, images, top=5):
    """The `top` photos among `images` (files or folders) that the retrieval model at `path`
    (an export or a run of `dual_encoder`) matches best with `text`: `[(score, path)]`, best
    first. Photos are embedded `BATCH` at a time.

    Examples:
    ```python
    mmzoo.predict.search("runs/dual_encoder", "a dog runs on the beach", ["photos/"])
    ```
    """
    served = Served(path)
    if served.info.get("task") != "retrieval":
        raise InvalidValue(f"{path} is a {served.info.get('task')} model "
                           f"({served.info.get('model')}); search takes a retrieval model "
                           "(dual_encoder)")
    files = expand("image", images)
    query = served.call("embed_text", text=tf.constant([text]))["embedding"]
    scores = []
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        pictures = served.call("embed_image",
                               image=tf.constant([read_image(p) for p in batch]))["embedding"]
        scores.append(query @ pictures.T)
    scores = np.concatenate(scores, axis=1)[0]
    best = np.argsort(-scores)[:top]
    return [(float(scores[i]), files[i]) for i in best]
