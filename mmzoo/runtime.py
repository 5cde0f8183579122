"""Run an mmzoo ONNX or LiteRT export with its runtime alone: numpy and onnxruntime or
ai-edge-litert, no TensorFlow, no mmzoo (this file imports neither, so it can be copied next
to an export, or run as a script: `python runtime.py EXPORT INPUTS.npz OUTPUTS.npz`).

`Runner(folder)` reads the export's `metadata.json` and opens each graph file in its runtime;
calling it with numeric inputs (named as `metadata.json`'s `inputs`) returns the outputs by
name. LiteRT files take one example per call: a batch is run one row at a time and stacked.
`tokenize` makes token ids from text as `metadata.json` says (the standardisation, split,
n-grams and vocabulary), for a runtime that has no TensorFlow.

Examples:
```python
runner = Runner("exports/audio_onnx")
scores = runner(audio=waves)["scores"]                   # [batch, classes]
labels = [runner.metadata["labels"][i] for i in scores.argmax(-1)]
```
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


class Runner:
    """The graphs of an ONNX / LiteRT export, run by onnxruntime or the LiteRT interpreter.

    Args:
        folder: str. A folder written by `mmzoo export --format onnx|litert`.
        threads: int or None. Intra-op threads of the runtime (None: its default).
    """

    def __init__(self, folder, threads=None):
        with open(os.path.join(folder, "metadata.json")) as f:
            self.metadata = json.load(f)
        self.format = self.metadata["format"]
        self.graphs = {}
        for stem, graph in self.metadata["graphs"].items():
            path = os.path.join(folder, graph["file"])
            if self.format == "onnx":
                import onnxruntime

                options = onnxruntime.SessionOptions()
                if threads:
                    options.intra_op_num_threads = threads
                session = onnxruntime.InferenceSession(path, options,
                                                       providers=["CPUExecutionProvider"])
                self.graphs[stem] = _OnnxGraph(session)
            elif self.format == "litert":
                from ai_edge_litert.interpreter import Interpreter

                interpreter = Interpreter(model_path=path, num_threads=threads)
                self.graphs[stem] = _LiteRTGraph(interpreter)
            else:
                raise ValueError(f"{folder} is a {self.format} export; Runner runs onnx and "
                                 "litert exports")

    def __call__(self, graph="model", **inputs):
        """Run `graph` (a dual encoder: `text_encoder` or `image_encoder`) on `inputs`."""
        wanted = self.metadata["graphs"][graph]["inputs"]
        arrays = {name: np.asarray(inputs[name], dtype=spec["dtype"])
                  for name, spec in wanted.items()}
        return self.graphs[graph](arrays)


    def transcribe(self, audio):
        """Transcripts (a list of str) of waveforms `[batch, samples]` (zero-padded at the end)
        from a speech recogniser's export: its per-frame CTC outputs decoded greedily as
        `metadata.json`'s `ctc` says (best class per frame, repeats merged, blank and
        out-of-vocabulary dropped)."""
        return ctc_greedy(self(audio=audio)["frames"], self.metadata["ctc"])

    def caption(self, image, method="beam"):
        """Captions (a list of str) of uint8 images `[batch, height, width, 3]` from a
        captioner's export: its `image_encoder`, then its `caption_decoder` once per word,
        greedily or with beam search, as `metadata.json`'s `captioning` says (the SavedModel's
        `greedy` signature and `serving_default` decode the same way)."""
        spec = self.metadata["captioning"]
        features = self("image_encoder", image=image)["features"]
        out = []
        for row in features:
            ids = (self._greedy(row[None], spec) if method == "greedy"
                   else self._beam(row[None], spec))
            out.append(_words(ids, spec))
        return out

    def _next_log_probs(self, features, ids, index, spec):
        probs = self("caption_decoder", features=features, ids=ids)["probs"][:, index - 1]
        logits = np.log(probs + 1e-9)
        ended = np.any(ids[:, 1:] == spec["end_id"], axis=1)
        logits[ended] = np.where(np.arange(logits.shape[-1]) == 0, 0.0, -1e9)
        logits = logits - logits.max(axis=-1, keepdims=True)     # softmax, then its log
        with np.errstate(divide="ignore"):
            return np.log(np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True))

    def _greedy(self, features, spec):
        ids = np.zeros((1, spec["max_length"]), "int32")
        ids[0, 0] = spec["start_id"]
        for index in range(1, spec["max_length"]):
            if np.any(ids[0, 1:index] == spec["end_id"]):
                break
            ids[0, index] = np.argmax(self._next_log_probs(features, ids, index, spec)[0])
        return ids[0, 1:]

    def _beam(self, features, spec):
        beams, length = spec["num_beams"], spec["max_length"]
        ids = np.zeros((beams, length), "int32")
        ids[:, 0] = spec["start_id"]
        features = np.repeat(features, beams, axis=0)
        scores = np.array([0.0] + [-1e9] * (beams - 1), "float32")
        for index in range(1, length):
            if np.all(np.any(ids[:, 1:index] == spec["end_id"], axis=1)):
                break
            total = (self._next_log_probs(features, ids, index, spec)
                     + scores[:, None]).reshape(-1)
            best = np.argsort(-total, kind="stable")[:beams]
            vocab = total.size // beams
            ids, features = ids[best // vocab].copy(), features[best // vocab]
            ids[:, index], scores = best % vocab, total[best].astype("float32")
        words = ids[:, 1:]
        stop = (words == spec["end_id"]) | (words == 0)
        lengths = np.where(stop.any(-1), stop.argmax(-1), words.shape[-1]) + 1
        penalty = ((5.0 + lengths) / 6.0) ** spec["length_penalty"]
        return words[np.argmax(scores / penalty)]


def ctc_greedy(frames, ctc):
    """Greedy CTC transcripts of per-frame outputs `[batch, frames, classes]`, as `ctc` (from
    `metadata.json`) says: the best class per frame, repeats merged, blank (0) and
    out-of-vocabulary (1) dropped, tokens joined (words by single spaces)."""
    out = []
    for best in np.asarray(frames).argmax(-1):
        kept = [c for i, c in enumerate(best) if c > 1 and (i == 0 or c != best[i - 1])]
        text = ctc["join"].join(ctc["tokens"][c - 2] for c in kept)
        out.append(" ".join(text.split()))
    return out


def _words(ids, spec):
    words = []
    for i in ids:
        if i == spec["end_id"] or i == 0:
            break
        words.append(spec["vocabulary"][i - 2] if i > 1 else "[UNK]")
    return " ".join(words)


class _OnnxGraph:
    def __init__(self, session):
        self.session = session
        self.names = [o.name for o in session.get_outputs()]

    def __call__(self, inputs):
        return dict(zip(self.names, self.session.run(None, inputs)))


class _LiteRTGraph:
    def __init__(self, interpreter):
        self.run = interpreter.get_signature_runner()

    def __call__(self, inputs):
        rows = len(next(iter(inputs.values())))
        outs = [self.run(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(rows)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def standardize(text):
    """Lower case, every run of characters other than letters and digits one space, stripped:
    `metadata.json`'s `standardize` (the `regex` module has the Unicode classes it names;
    without it, Python's `\\W` with `_` stands in for them)."""
    try:
        import regex

        pattern = regex.compile(r"[^\p{L}\p{N}]+")
    except ImportError:  # pragma: no cover - regex comes with nltk
        import re

        pattern = re.compile(r"[\W_]+")
    return pattern.sub(" ", text.lower()).strip()


def tokenize(texts, preprocessing):
    """Token ids `[len(texts), length]` (int32) of `texts`, as an input's `preprocessing` in
    `metadata.json` says: standardise, split on spaces, add word pairs for `ngrams` 2, look up
    (token `i` is id `i + 2`, unknown 1), cut or pad with 0 to `length`."""
    index = {token: i + 2 for i, token in enumerate(preprocessing["vocabulary"])}
    length = preprocessing["length"]
    out = np.zeros((len(texts), length), "int32")
    for row, text in enumerate(texts):
        words = standardize(text).split()
        tokens = list(words)
        if preprocessing.get("ngrams", 1) > 1:
            tokens += [f"{a} {b}" for a, b in zip(words, words[1:])]
        ids = [index.get(t, 1) for t in tokens][:length]
        out[row, :len(ids)] = ids
    return out


def main(argv=None):
    """`python runtime.py EXPORT INPUTS.npz OUTPUTS.npz [GRAPH]`: run the export on the arrays of
    INPUTS.npz (named as its inputs) and save its outputs; prints the modules that ran it."""
    argv = sys.argv[1:] if argv is None else argv
    folder, inputs, outputs = argv[:3]
    graph = argv[3] if len(argv) > 3 else "model"
    runner = Runner(folder)
    out = runner(graph, **dict(np.load(inputs)))
    np.savez(outputs, **out)
    print(json.dumps({name: sys.modules.get(name) is not None  # imported, not just blocked
                      for name in ("tensorflow", "mmzoo")}))


if __name__ == "__main__":
    main()
