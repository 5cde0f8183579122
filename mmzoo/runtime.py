"""Run an mmzoo ONNX or LiteRT export with its runtime alone: numpy and onnxruntime or
ai-edge-litert, no TensorFlow, no mmzoo (this file imports neither, so it can be copied next
to an export, or run as a script: `python runtime.py EXPORT INPUTS.npz OUTPUTS.npz`).

`Runner(folder)` reads the export's `metadata.json` and opens each graph file in its runtime;
calling it with numeric inputs (named as `metadata.json`'s `inputs`) returns the outputs by
name. LiteRT files take one example per call: a batch is run one row at a time and stacked.
`tokenize` makes token ids from text as `metadata.json` says (mmzoo's standardisation, split,
n-grams and vocabulary, or a KerasHub WordPiece tokenizer's), for a runtime that has no
TensorFlow. `Runner.serve` takes raw inputs (image files' bytes, texts, waveforms) and answers
as the SavedModel's signatures do (`label` and `scores`, `caption`, `transcript`, embeddings
and `similarity`), decoding with the SavedModel's beam searches; `image_pixels` (Pillow) and
`read_audio` (librosa or soundfile) read files as the metadata says.

Examples:
```python
runner = Runner("exports/audio_onnx")
scores = runner(audio=waves)["scores"]                   # [batch, classes]
labels = [runner.metadata["labels"][i] for i in scores.argmax(-1)]
runner.serve(audio=waves)["label"]                       # the same, as the SavedModel says it
```
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import unicodedata

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

    def serve(self, endpoint="serving_default", **raw):
        """What the SavedModel's signature `endpoint` answers for `raw` inputs: `image` a list
        of encoded image files (bytes), `text` / `question` a list of str, `audio` float32
        waveforms `[batch, samples]` at the model's rate (zero-padded at the end). Endpoints
        as the SavedModel's: `serving_default`, `greedy` (a captioner's or recogniser's),
        `embed_text` and `embed_image` (a dual encoder's)."""
        meta = self.metadata
        inputs = {name: self.numbers(name, value) for name, value in raw.items()}
        answer = answer_of(meta)
        kind, output = answer["kind"], answer.get("output")
        method = "greedy" if endpoint == "greedy" else "beam"
        if kind == "labels":
            scores = self(**inputs)[answer["scores"]]
            labels = np.array(meta[answer["labels"]], object)
            return {"label": labels[scores.argmax(-1)], answer["scores"]: scores}
        if kind == "text" and output == "caption":
            return {output: np.array(self.caption(inputs["image"], method), object)}
        if kind == "text" and output == "transcript":
            return {output: np.array(self.transcribe(inputs["audio"], method), object)}
        if kind == "score" and output == "similarity":
            out = {}
            if "text" in inputs:
                out["text_embedding"] = self("text_encoder", text=inputs["text"])["embedding"]
            if "image" in inputs:
                out["image_embedding"] = self("image_encoder", image=inputs["image"])["embedding"]
            if endpoint in ("embed_text", "embed_image"):
                return {"embedding": out[endpoint.replace("embed_", "") + "_embedding"]}
            scale = (meta.get("similarity") or {}).get("scale", 1.0)
            out[output] = scale * out["text_embedding"] @ out["image_embedding"].T
            return out
        raise ValueError(f"this runtime does not serve an export whose answer is {answer}; call "
                         "its graphs with Runner(...)(graph, **inputs) and decode their outputs "
                         "as its metadata.json says")

    def numbers(self, name, value):
        """A raw input as its graphs take it: images decoded and resized (`image_pixels`), texts
        tokenized (`tokenize`), waveforms as float32."""
        spec = self.metadata["inputs"][name]
        if name == "image":
            return np.stack([image_pixels(data, spec["image_size"]) for data in value])
        if name == "audio":
            return np.asarray(value, "float32")
        return tokenize(list(value), spec["preprocessing"])

    def transcribe(self, audio, method="greedy"):
        """Transcripts (a list of str) of waveforms `[batch, samples]` (zero-padded at the end)
        from a speech recogniser's export: its per-frame CTC outputs decoded as `metadata.json`'s
        `ctc` says: `greedy` (best class per frame, repeats merged, blank and out-of-vocabulary
        dropped) or `beam` (`ctc_beam`, the SavedModel's beam search and width)."""
        frames = self(audio=audio)["frames"]
        if method == "greedy":
            return ctc_greedy(frames, self.metadata["ctc"])
        width = self.metadata["decoding"]["serving_default"]["beam_width"]
        return ctc_beam(frames, self.metadata["ctc"], width)

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


def answer_of(metadata, outputs=()):
    """What an export answers: its metadata's `answer` (its task's: `kind` `labels`, `text` or
    `score`, and the outputs it reads); for an export written before metadata said so, read from
    its metadata's sections and graphs, or the names of its `outputs`."""
    if "answer" in metadata:
        return metadata["answer"]
    graphs = metadata.get("graphs") or {}
    if "caption_decoder" in graphs or "caption" in outputs:
        return {"kind": "text", "output": "caption"}
    if "ctc" in metadata or "transcript" in outputs:
        return {"kind": "text", "output": "transcript"}
    if "text_encoder" in graphs or "similarity" in outputs:
        return {"kind": "score", "output": "similarity"}
    return {"kind": "labels", "scores": "scores", "labels": "labels"}


def _log_add(a, b):
    """log(exp(a) + exp(b)) in float32, as TensorFlow's CTC decoder adds log-probabilities."""
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return np.float32(a + np.log1p(np.exp(np.float32(b - a))))
    return np.float32(b + np.log1p(np.exp(np.float32(a - b))))


def ctc_beam(frames, ctc, width):
    """Beam-search CTC transcripts of per-frame outputs `[batch, frames, classes]` (class 0 the
    blank), as `tf.nn.ctc_beam_search_decoder` decodes them (what the SavedModel serves):
    TensorFlow's prefix beam search over `width` prefixes (`_CTCBeam`), the best prefix's
    tokens joined as `ctc["join"]` says. A frame past an utterance's end is a certain blank."""
    out = []
    for row in np.asarray(frames, "float32"):
        kept = [c for c in _CTCBeam(width).decode(row) if c > 1]
        text = ctc["join"].join(ctc["tokens"][c - 2] for c in kept)
        out.append(" ".join(text.split()))
    return out


class _Prefix:
    """A node of the prefix tree: its probabilities of ending in a blank and in its label, and
    their sum, at the previous frame (`old`) and this one (`new`)."""

    def __init__(self, parent, label):
        self.parent, self.label, self.children = parent, label, {}
        self.old = [-np.inf, -np.inf, -np.inf]
        self.new = [-np.inf, -np.inf, -np.inf]

    def child(self, label):
        if label not in self.children:
            self.children[label] = _Prefix(self, label)
        return self.children[label]

    @property
    def active(self):
        return self.new[2] != -np.inf

    def labels(self):
        out, node = [], self
        while node.parent is not None:
            out.append(node.label)
            node = node.parent
        return out[::-1]


class _CTCBeam:
    """TensorFlow's CTC beam search (`tensorflow/core/util/ctc/ctc_beam_search.h`), step by step:
    the beam's prefixes carried a frame further (a repeated label only from a blank), then new
    prefixes grown from the beam, best parents first, each entering when the beam has room or
    beats its worst (which leaves it), in float32. The order matters where the beam is full:
    this keeps TensorFlow's (`_Leaves`), so the transcripts are the SavedModel's."""

    def __init__(self, width):
        self.width = width

    def decode(self, log_probs):
        root = _Prefix(None, -1)
        root.new = [np.float32(0), -np.inf, np.float32(0)]
        self.leaves = _Leaves(self.width)
        self.leaves.push(root)
        for frame in log_probs:
            self.step(frame - frame.max())
        return max(self.leaves.items, key=lambda n: n.new[2]).labels()

    def step(self, frame):
        branches = self.leaves.extract()
        for b in branches:
            b.old = list(b.new)
        for b in branches:              # each prefix of the beam, a frame further
            if b.parent is not None:
                if b.parent.active:
                    previous = b.parent.old[0] if b.label == b.parent.label else b.parent.old[2]
                    b.new[1] = _log_add(b.new[1], previous)
                b.new[1] = np.float32(b.new[1] + frame[b.label])
            b.new[0] = np.float32(b.old[2] + frame[0])
            b.new[2] = _log_add(b.new[0], b.new[1])
            self.leaves.push(b)
        for b in branches:              # new prefixes, from the best parents first
            if not self.candidate(b.old[2]):
                continue
            for label in range(1, len(frame)):
                c = b.child(label)
                if c.active:
                    continue
                previous = b.old[0] if c.label == b.label else b.old[2]
                score = np.float32(frame[label] + previous)
                c.new = [-np.inf, score, score]
                if self.candidate(score):
                    if self.leaves.full:
                        self.leaves.bottom().new = [-np.inf, -np.inf, -np.inf]
                    self.leaves.push(c)
                else:
                    c.old = [-np.inf, -np.inf, -np.inf]
                    c.new = [-np.inf, -np.inf, -np.inf]

    def candidate(self, total):
        return total > -np.inf and (not self.leaves.full or total > self.leaves.bottom().new[2])


class _Leaves:
    """The beam: TensorFlow's `gtl::TopN` of prefixes by probability (at most `limit`; its
    worst known without sorting until it overflows, then a heap)."""

    def __init__(self, limit):
        self.limit, self.items, self.state = limit, [], "unordered"

    @property
    def full(self):
        return len(self.items) >= self.limit

    def push(self, node):
        items = self.items
        if self.state == "heap":
            if node.new[2] > items[0].new[2]:
                items[0] = node
                items.sort(key=lambda n: n.new[2])
            return
        items.append(node)
        if self.state == "bottom" and not node.new[2] > items[0].new[2]:
            items[0], items[-1] = items[-1], items[0]
        if len(items) == self.limit + 1:
            items.sort(key=lambda n: n.new[2])
            items.pop(0)
            self.state = "heap"

    def bottom(self):
        if self.state == "unordered":
            worst = 0
            for i in range(1, len(self.items)):
                if self.items[worst].new[2] > self.items[i].new[2]:
                    worst = i
            self.items[0], self.items[worst] = self.items[worst], self.items[0]
            self.state = "bottom"
        return self.items[0]

    def extract(self):
        out = sorted(self.items, key=lambda n: -n.new[2])
        self.items, self.state = [], "unordered"
        return out


def image_pixels(data, size):
    """uint8 `[height, width, 3]` of an encoded image file (bytes), as `metadata.json`'s `image`
    input says: decoded to RGB (grey and palette become RGB, an animation's first frame),
    resized to `size` (`[height, width]`) with antialiased bilinear interpolation (Pillow's
    `Image.resize(BILINEAR)`), rounded. Needs Pillow."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        rgb = image.convert("RGB")
    height, width = int(size[0]), int(size[1])
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.BILINEAR)
    return np.asarray(rgb, dtype="uint8")


def read_audio(path, rate):
    """A mono float32 waveform of an audio file at `rate` Hz (librosa's resampler when the
    file's rate differs, as mmzoo reads audio; soundfile alone when it matches)."""
    try:
        import librosa
    except ImportError:
        librosa = None
    if librosa is not None:
        wave, _ = librosa.load(path, sr=int(rate), mono=True)
        return wave.astype("float32")
    import soundfile

    wave, found = soundfile.read(path, dtype="float32", always_2d=True)
    if found != int(rate):
        raise ValueError(f"{path} is at {found} Hz and the model takes {rate} Hz; install "
                         "librosa to resample it")
    return wave.mean(axis=1)


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
        pattern = re.compile(r"[\W_]+")
    return pattern.sub(" ", text.lower()).strip()


def tokenize(texts, preprocessing):
    """Token ids `[len(texts), length]` (int32) of `texts`, as an input's `preprocessing` in
    `metadata.json` says: mmzoo's vocabulary (standardise, split on spaces, add word pairs for
    `ngrams` 2, look up: token `i` is id `i + 2`, unknown 1, cut or pad with 0 to `length`), or
    a KerasHub WordPiece tokenizer (`wordpiece`); any other tokenizer is refused in one line."""
    if "tokenizer" in preprocessing:
        return _hub_ids(texts, preprocessing)
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


# KerasHub's WordPiece tokenizers (BERT's and its kin: their config has these), tokenized as
# `keras_hub.tokenizers.WordPieceTokenizer` does in Python (its equivalent of tensorflow_text's)
WORDPIECE = ("suffix_indicator", "oov_token")
_WHITESPACE = r"[ \t\n\r\f]|\p{Cc}|\p{Cf}"
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = (r"[\u4E00-\u9FFF]|[\u3400-\u4DBF]|[\U00020000-\U0002A6DF]|[\U0002A700-\U0002B73F]"
        r"|[\U0002B740-\U0002B81F]|[\U0002B820-\U0002CEAF]|[\uF900-\uFAFF]"
        r"|[\U0002F800-\U0002FA1F]")
MAX_BYTES_PER_WORD = 100


def _hub_ids(texts, preprocessing):
    config = preprocessing.get("config", {})
    if not all(key in config for key in WORDPIECE) or "ids" not in preprocessing:
        raise ValueError(f"this runtime tokenizes mmzoo's vocabularies and KerasHub's WordPiece "
                         f"tokenizers, not {preprocessing['tokenizer']}; tokenize with it in "
                         "Python (keras_hub), or export a model with a WordPiece or mmzoo text "
                         "encoder")
    import regex

    vocabulary = preprocessing["vocabulary"]
    index = {token: i for i, token in enumerate(vocabulary)}
    ids = preprocessing["ids"]
    cjk = config.get("split_on_cjk", True)
    split = regex.compile("|".join([_WHITESPACE, _PUNCTUATION] + ([_CJK] if cjk else [])))
    keep = regex.compile("|".join([_PUNCTUATION] + ([_CJK] if cjk else [])))
    length = preprocessing["length"]
    out = np.full((len(texts), length), ids["pad"], "int32")
    for row, text in enumerate(texts):
        tokens = []
        for word in _pretokenize(text, config, split, keep):
            tokens += _wordpiece(word, index, config)
        packed = [index[t] for t in tokens][:length - (ids["start"] is not None)
                                              - (ids["end"] is not None)]
        packed = ([ids["start"]] if ids["start"] is not None else []) + packed + (
            [ids["end"]] if ids["end"] is not None else [])
        out[row, :len(packed)] = packed[:length]
    return out


def _pretokenize(text, config, split, keep):
    """KerasHub's `pretokenize_python`: accents stripped, split on whitespace and punctuation
    (punctuation and CJK kept as words), case folded (NFKC_Casefold)."""
    if config.get("strip_accents", False):
        text = unicodedata.normalize("NFD", text)
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words = [text]
    if config.get("split", True):
        words, position = [], 0
        for match in split.finditer(text):
            if match.start() > position:
                words.append(text[position:match.start()])
            if keep.fullmatch(match.group()):
                words.append(match.group())
            position = match.end()
        if position < len(text):
            words.append(text[position:])
    if config.get("lowercase", False):
        words = [_casefold(w) for w in words]
    return words


def _casefold(text):
    """Unicode NFKC_Casefold, as `tf_text.case_fold_utf8` (KerasHub's `casefold_utf8`)."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in text if not _ignorable(c))


# Unicode's Default_Ignorable_Code_Point, the ranges KerasHub drops when folding case
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
              (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
              (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))


def _ignorable(c):
    o = ord(c)
    return any(low <= o <= high for low, high in _IGNORABLE)


def _wordpiece(word, index, config):
    """Greedy longest-match-first WordPiece of one word (`suffix_indicator` before every piece
    but the first); a word that cannot be split, or longer than 100 bytes, is `oov_token`."""
    oov = config.get("oov_token", "[UNK]")
    suffix = config.get("suffix_indicator", "##")
    if not word:
        return []
    if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
        return [oov]
    tokens, start = [], 0
    while start < len(word):
        end, current = len(word), None
        while start < end:
            piece = (suffix if start else "") + word[start:end]
            if piece in index:
                current = piece
                break
            end -= 1
        if current is None:
            return [oov]
        tokens.append(current)
        start = end
    return tokens


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
