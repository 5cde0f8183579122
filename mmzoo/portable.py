"""Portable exports: ONNX and LiteRT files that take numbers and run on their runtimes alone.

A SavedModel (`mmzoo.export.export`) takes raw bytes and strings. ONNX Runtime and the LiteRT
interpreter have no string ops and no image decoders, so a portable export takes what a runtime
can make itself, and `metadata.json` says how to make it:

- `image`: decoded RGB pixels, uint8 `[batch, height, width, 3]` at the model's size (decoding
  and resizing are the caller's; the graph scales them as the model does);
- `audio`: a float32 waveform `[batch, samples]` at the model's sample rate, of any length: the
  graph centres each row on its samples and zero-pads or crops it to the model's length, as the
  SavedModel does (a speech recogniser takes any length as it is);
- `text` / `question`: int32 token ids `[batch, length]`, made by the standardisation, split and
  vocabulary that `metadata.json` spells out (`mmzoo.portable.text_preprocessing`).

The graphs use only ops both runtimes have without TensorFlow's Flex delegate: the audio front
end's STFT is a strided convolution with the DFT basis as constants (`mmzoo.layers.LogMel`),
and LiteRT files take one example per call (`batch` 1), so that recurrent layers become LiteRT's
builtin `WHILE` loop. Keras' own `model.export(format="onnx" | "litert")` writes the files
(tf2onnx; the TFLite converter restricted to builtin ops). int8 LiteRT files are converted here
(Keras' export has no selective quantization): post-training quantization calibrated on the
training data, with the audio front end kept in float and computed with the factored DFT.
Each file is run once in its runtime against the Keras graph (`verify`); a layer that cannot
be converted, or a file that does not run, fails naming the layer or the reason, never with a
converter's stack.

What each task exports (`graphs`):

- classification, VQA: `model` -> `scores` `[batch, classes]`, in the order of `labels`;
- retrieval: `text_encoder` -> `embedding` and `image_encoder` -> `embedding`, L2-normalised
  (a text-image match is their dot product; metadata gives the learned `scale` of the logits);
- transcription: `model` -> per-frame CTC log-probabilities `[batch, frames, classes]` (class 0
  the blank, 1 out of vocabulary, token `i` class `i + 2`; decoding in metadata's `ctc`);
- captioning: `image_encoder` -> `features`, and `caption_decoder` taking `features` and the
  caption so far as `ids` `[batch, max_length]` (`[start]` first, 0 after) -> next-word
  probabilities `probs` `[batch, max_length, ids]`: a runtime calls the decoder once per word
  (the word after position `t` is read at `probs[:, t]`), greedily or with beam search, as
  metadata's `captioning` says and `mmzoo.runtime.Runner.caption` does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from importlib import metadata as package_metadata

import keras
import numpy as np
import tensorflow as tf

from mmzoo import contract
from mmzoo.data import open_source, pipeline, waveform
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.data.text import NON_WORD
from mmzoo.errors import InvalidValue, MmzooError
from mmzoo.layers.mfcc import LogMel
from mmzoo.layers.vocab import OOV, PAD, hub_tokenizer, model_ngrams
from mmzoo.registry import task_of

FORMATS = ("saved_model", "onnx", "litert")
QUANTIZATIONS = ("float16", "int8")
FILE_SUFFIX = {"onnx": ".onnx", "litert": ".tflite"}
REPRESENTATIVE_EXAMPLES = 200   # training examples int8 calibration reads


class NotExportable(MmzooError, ValueError):
    """A model (or one of its layers) that a format cannot hold."""


@keras.saving.register_keras_serializable("mmzoo")
class FitLength(keras.layers.Layer):
    """Fit each waveform of a batch to `length` on its own samples: centred and zero-padded,
    or cut to its loudest `length` samples
    (`mmzoo.data.waveform.fit_length`, the SavedModel's and the pipeline's rule)."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, wave):
        return waveform.fit_length(wave, self.length)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self):
        return {**super().get_config(), "length": self.length}


def _numeric_inputs(model, batch):
    """`(inputs, feeds)`: Keras inputs of numbers for `model`'s inputs, and what the model
    takes from them."""
    inputs, feeds = {}, {}
    for name, shape in contract.input_shapes(model).items():
        if name == "image":
            inputs[name] = keras.Input(shape, batch_size=batch, dtype="uint8", name=name)
            feeds[name] = keras.ops.cast(inputs[name], "float32")
        elif name == "audio":
            inputs[name] = keras.Input((None,), batch_size=batch, dtype="float32", name=name)
            feeds[name] = (inputs[name] if shape[0] is None
                           else FitLength(shape[0], name="fit_length")(inputs[name]))
        else:
            inputs[name] = keras.Input(shape, batch_size=batch, dtype="int32", name=name)
            feeds[name] = inputs[name]
    return inputs, feeds


def graphs(model, *, batch=None):
    """The numbers-in Keras models a portable export holds, by file stem: `{"model": ...}`; for
    a dual encoder `{"text_encoder": ..., "image_encoder": ...}`; for a captioner
    `{"image_encoder": ..., "caption_decoder": ...}` (its task's `portable_graphs`). Each takes
    a dict of numeric inputs (see the module) and returns a dict of named outputs.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from its `.keras` file).
        batch: int or None. A fixed batch size (LiteRT: 1), or None for any.
    """
    return task_of(model).portable_graphs(model, _numeric_inputs, batch)


# --- the conversions ------------------------------------------------------------------------

def _layers_named(model):
    return {layer.name: layer for layer in contract.walk(model)}


def _explain(error, model, fmt):
    """A converter's failure as one line naming the layer (from the op's location in the
    graph, `model/.../layer/op`) and the op, or None when it names neither."""
    text = str(error)
    names = _layers_named(model)
    ops = re.findall(r"'tf\.(\w+)' op", text) or re.findall(r"fused\[\"(\w+):", text)
    layer = None
    for where in re.findall(r"fused\[\"\w+:\", \"([^\"]+)\"", text):
        hits = [part for part in where.split("/") if re.sub(r"_\d+$", "", part) in names]
        if hits:
            layer = names[re.sub(r"_\d+$", "", hits[-1])]
            break
    if not ops and layer is None:
        return None
    what = f"layer {layer.name!r} ({type(layer).__name__})" if layer is not None else "a layer"
    op = f" uses TensorFlow op {ops[0]}" if ops else ""
    return (f"model {model.name!r} cannot be exported to {fmt}: {what}{op}, which {fmt} has no "
            "builtin op for; export it with --format saved_model, or build the model without "
            "that layer")


@contextlib.contextmanager
def _quiet_converters():
    """tf2onnx and the TFLite converter log at INFO/WARNING through absl and Python logging."""
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation, np.object's future
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _signature(graph):
    return [{t.name: tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in graph.inputs}]


def convert(graph, path, fmt, *, quantize=None, representative=None, owner=None):
    """Write one numbers-in `graph` (from `graphs`) to `path` as `fmt` (`onnx`, `litert`).

    Args:
        graph: keras.Model. One of `graphs(model, batch=1 for litert)`.
        path: str. The file to write.
        fmt: str. `onnx` or `litert`.
        quantize: str or None. `float16` (weights in half precision) or `int8` (post-training
            quantization: int8 weights and activations where the runtime has int8 kernels,
            calibrated on `representative`); LiteRT only.
        representative: callable or None. For `int8`: yields input dicts (one example each).
        owner: keras.Model or None. The model `graph` wraps, whose layers an error names.

    Returns:
        str: how the file's numbers are stored (`float32`, `float16 weights`, or what int8
        quantization did).
    """
    owner = owner or graph
    check_request(fmt, quantize, representative, portable=True)
    try:
        with _quiet_converters():
            if fmt == "onnx":
                graph.export(path, format="onnx", verbose=False, input_signature=_signature(graph))
            elif fmt == "litert":
                kwargs = {}
                if quantize == "float16":
                    kwargs = {"optimizations": [tf.lite.Optimize.DEFAULT],
                              "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS],
                                              "supported_types": [tf.float16]}}
                elif quantize == "int8":
                    content, how = _int8(graph, representative, owner)
                    with open(path, "wb") as f:
                        f.write(content)
                    return how
                kwargs.setdefault("target_spec",
                                  {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
                graph.export(path, format="litert", verbose=False,
                             input_signature=_signature(graph), **kwargs)
    except MmzooError:
        raise
    except Exception as e:  # a converter's failure: name the layer and the op
        explained = _explain(e, owner, fmt)
        if explained is None:
            raise
        raise NotExportable(explained) from None
    return "float16 weights" if quantize == "float16" else "float32"


def _probe(graph):
    """A numeric input for `graph`: noise images, token ids 2, a second of low noise (its
    audio of any length: the sample rate's worth of samples, or the model's length plus a
    quarter, so that the graph's padding or cropping runs), features of standard noise."""
    rng = np.random.default_rng(0)
    out = {}
    for t in graph.inputs:
        shape = [1 if d is None else d for d in t.shape]
        if t.name == "features":
            out[t.name] = rng.standard_normal(shape).astype("float32")
        elif t.dtype == "uint8":
            out[t.name] = rng.integers(0, 256, shape).astype("uint8")
        elif "int" in str(t.dtype):
            out[t.name] = np.full(shape, 2, "int32")
        else:
            samples = next((layer.length for layer in graph.layers
                            if isinstance(layer, FitLength)), 4000)
            shape[-1] = samples + samples // 4
            out[t.name] = (0.1 * rng.standard_normal(shape)).astype("float32")
    return out


def _interpreter(path):
    """A LiteRT interpreter for `path`: ai-edge-litert's, else TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation
        warnings.simplefilter("ignore")
        return Interpreter(model_path=path)


def runtime_name(fmt):
    """The runtime that runs `fmt` files here (`onnxruntime 1.x`, `ai-edge-litert 2.x`, or
    TensorFlow's LiteRT interpreter), or None when none is installed (onnxruntime missing)."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return None
        return f"onnxruntime {onnxruntime.__version__}"
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return f"the LiteRT interpreter of TensorFlow {tf.__version__}"
    try:
        return f"ai-edge-litert {package_metadata.version('ai-edge-litert')}"
    except package_metadata.PackageNotFoundError:
        return "ai-edge-litert"


def file_runner(path, fmt):
    """A callable running the exported file `path` in its runtime on a dict of numeric
    inputs (a batch; LiteRT files one row at a time) and returning its outputs by name; None
    when the runtime is not installed (`runtime_name`)."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return None
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda inputs: dict(zip(names, session.run(None, inputs)))
    run = _interpreter(path).get_signature_runner()

    def rows(inputs):
        count = len(next(iter(inputs.values())))
        outs = [run(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(count)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    return rows


def verify(graph, path, fmt, *, exact=True, owner=None):
    """Run the written file on a probe input in its runtime (onnxruntime; ai-edge-litert's or
    TensorFlow's LiteRT interpreter) and compare with the Keras graph (within 1e-3 when
    `exact`): a file that fails to run, or computes something else, fails the export naming
    what went wrong. Returns what was checked, in words, for the model card: with no
    runtime installed (onnxruntime missing), that the file was not run, also said on stderr."""
    owner = owner or graph
    probe = _probe(graph)
    want = {k: np.asarray(v) for k, v in graph(probe, training=False).items()}
    runtime = runtime_name(fmt)
    if runtime is None:
        print(f"mmzoo: warning: {os.path.basename(path)} was not run at export: onnxruntime is "
              "not installed (pip install onnxruntime); the model card says so",
              file=sys.stderr)
        return ("not run at export: onnxruntime was not installed, so nothing checked that "
                "this file runs, nor what it computes")
    try:
        got = file_runner(path, fmt)(probe)
    except Exception as e:  # the runtime's refusal, in one line
        reason = " ".join(str(e).split())[:300]
        raise NotExportable(
            f"model {owner.name!r} cannot be exported to {fmt}: the converted file does not run "
            f"in its runtime on a {_described(probe)} ({reason}); export it with --format "
            "saved_model" + (" or onnx" if fmt == "litert" else "")) from None
    for name, value in want.items():
        if exact and (got[name].shape != value.shape
                      or not np.allclose(got[name], value, atol=1e-3, rtol=1e-3)):
            raise NotExportable(
                f"model {owner.name!r} cannot be exported to {fmt}: the converted file's "
                f"{name!r} differs from the Keras model's on a {_described(probe)}; export it "
                "with --format saved_model")
    agreed = ("its outputs equal the Keras model's within 1e-3" if exact else
              "it ran (quantized: its outputs are not compared with the float model's)")
    return f"run at export in {runtime} on a probe input: {agreed}"


def _described(probe):
    return "probe input: " + ", ".join(f"{k} of shape {list(v.shape)}" for k, v in probe.items())


def _front_ends(model):
    """The layers that turn waveforms into features (`LogMel`, `MFCC`, `FitLength`): int8
    quantization keeps them in float, where a log-power spectrum's 80 dB range lives."""
    return [layer for layer in contract.walk(model) if isinstance(layer, (LogMel, FitLength))]


@contextlib.contextmanager
def _factored(layers):
    """The `LogMel` layers compute with the factored DFT (few constants) while converting."""
    spectral = [layer for layer in layers if isinstance(layer, LogMel)]
    for layer in spectral:
        layer.dft = "factored"
    try:
        yield
    finally:
        for layer in spectral:
            layer.dft = "conv"


# The int8 conversion, run in a process of its own: TensorFlow's quantizer can crash the
# process (a segmentation fault on a masked LSTM's loop), which must not take the export with it.
_QUANTIZE = """
import json, sys
import numpy as np
import tensorflow as tf
saved, examples, keep, out = sys.argv[1:5]
data = np.load(examples)
names = sorted({k.split("/", 1)[1] for k in data.files})
count = len({k.split("/", 1)[0] for k in data.files})
def representative():
    for i in range(count):
        yield {n: data[f"{i}/{n}"] for n in names}
converter = tf.lite.TFLiteConverter.from_saved_model(saved)
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative
keep = json.load(open(keep))
if keep:
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep)
    result = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative,
        debug_options=options).get_nondebug_quantized_model()
else:
    result = converter.convert()
open(out, "wb").write(result)
"""


def _int8(graph, representative, owner):
    """`(bytes, how)`: LiteRT int8 bytes of `graph` and how they were quantized.

    Post-training quantization of weights and activations calibrated on `representative`
    (TFLite's converter, builtin ops only, in a process of its own), with the audio front end
    kept in float (`tf.lite.experimental.QuantizationDebugger`'s denylisted nodes, found by the
    front-end layers' names in the float file's tensors) and computing with the factored DFT,
    so the file keeps few float constants. When that conversion fails (TensorFlow's quantizer
    crashes on some recurrent loops), the weights alone are quantized (dynamic range: int8
    weights, activations quantized at run time), and `how` says so."""
    front = _front_ends(graph)    # the graph's own layers and its model's
    names = sorted({layer.name for layer in front})
    with _factored(front), tempfile.TemporaryDirectory() as work:
        saved = os.path.join(work, "saved")
        archive = keras.export.ExportArchive()
        archive.track(graph)
        archive.add_endpoint("serve", functools.partial(graph.__call__, training=False),
                             input_signature=_signature(graph))
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        keep = []
        if names:
            plain = _interpreter_from(converter.convert())
            scope = re.compile(r"(^|/)(" + "|".join(map(re.escape, names)) + r")(_\d+)?/")
            keep = [t["name"] for t in plain.get_tensor_details() if scope.search(t["name"])]
        examples = {f"{i}/{k}": v for i, example in enumerate(representative())
                    for k, v in example.items()}
        np.savez(os.path.join(work, "examples.npz"), **examples)
        with open(os.path.join(work, "keep.json"), "w") as f:
            json.dump(keep, f)
        out = os.path.join(work, "model.tflite")
        done = subprocess.run([sys.executable, "-c", _QUANTIZE, saved,
                               os.path.join(work, "examples.npz"),
                               os.path.join(work, "keep.json"), out],
                              capture_output=True, text=True)
        if done.returncode == 0:
            with open(out, "rb") as f:
                return f.read(), ("int8 weights and activations (post-training, calibrated on "
                                  "the training data)" + ("; the audio front end in float"
                                                          if keep else ""))
        reason = (f"signal {-done.returncode}" if done.returncode < 0
                  else " ".join(done.stderr.strip().splitlines()[-1:])[:200])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]      # weights only
        return converter.convert(), (f"int8 weights, activations quantized at run time "
                                     f"(dynamic range): TensorFlow's full-integer quantizer "
                                     f"failed on this model ({reason})")


def _interpreter_from(content):
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=content)


# --- what a runtime must know ----------------------------------------------------------------

def text_preprocessing(model, name):
    """How strings become the `name` input's token ids, for a runtime without mmzoo: a dict
    with the standardisation, split, n-grams, vocabulary, reserved ids and length."""
    length = contract.input_shapes(model)[name][0]
    hub = hub_tokenizer(model, name)
    if hub is not None:
        return hub_text_preprocessing(hub, length)
    return {
        "standardize": {"lowercase": "Unicode lower case (every script)",
                        "replace": NON_WORD, "with": " ", "strip": True,
                        "how": "lower-case the text, replace every run of characters other than "
                               "letters and digits (the regular expression, Unicode classes) "
                               "by one space, strip the ends"},
        "split": "whitespace",
        "ngrams": model_ngrams(model, name),
        "vocabulary": list(contract.vocabulary(model, name)),
        "ids": {PAD: 0, OOV: 1, "vocabulary[i]": "i + 2"},
        "length": length,
        "how": "split the standardised text on spaces"
               + (" and add each pair of neighbouring words joined by one space after the "
                  "words" if model_ngrams(model, name) > 1 else "")
               + "; look each token up in vocabulary (token i has id i + 2, any other 1); "
                 "keep the first `length` ids and pad with 0 at the end",
    }


def hub_text_preprocessing(layer, length):
    """How a KerasHub tokenizer (a `mmzoo.layers.HubTokenizer` layer) makes ids of `length`, for
    `metadata.json`: its class, config and vocabulary, and the start, end and padding ids it
    packs with (`mmzoo.runtime.tokenize` makes a WordPiece tokenizer's ids from them)."""
    tokenizer = layer.tokenizer
    ids = {"start": getattr(tokenizer, "start_token_id", None),
           "end": getattr(tokenizer, "end_token_id", None), "pad": layer.pad_id}
    return {"tokenizer": f"keras_hub.tokenizers.{type(tokenizer).__name__}",
            "config": _jsonable(tokenizer.get_config()),
            "vocabulary": list(tokenizer.get_vocabulary()), "length": length,
            "ids": {k: None if v is None else int(v) for k, v in ids.items()},
            "how": "the KerasHub tokenizer's ids (mmzoo/runtime.py's `tokenize` makes a "
                   "WordPiece tokenizer's), packed as [ids.start] + ids[:length - 2] + "
                   "[ids.end] and padded with ids.pad to length"}


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def input_metadata(model, fmt):
    """What each input of `model`'s export takes, by name, for `metadata.json`."""
    pre = Preprocessor(model)
    batch = 1 if fmt == "litert" else None
    out = {}
    for name, shape in contract.input_shapes(model).items():
        if name == "image":
            h, w = shape[:2]
            out[name] = ({"dtype": "string", "shape": [None],
                          "how": "encoded image files (JPEG, PNG, GIF, BMP); the graph decodes "
                                 f"them (grey and palette become RGB) and resizes to {h}x{w}"}
                         if fmt == "saved_model" else
                         {"dtype": "uint8", "shape": [batch, h, w, 3], "image_size": [h, w],
                          "how": "decode to RGB (grey and palette images become RGB, an "
                                 f"animation's first frame), resize to {h}x{w} with antialiased "
                                 "bilinear interpolation (tf.image.resize(antialias=True), "
                                 "PIL's Image.resize(BILINEAR) on a downscale), round to "
                                 "uint8; the graph scales the values"})
        elif name == "audio":
            samples = shape[0]
            rule = ("any length, as it is" if samples is None else
                    f"any length: the graph centres each row on its samples up to its last "
                    f"non-zero one and zero-pads or crops it to {samples} samples")
            out[name] = {"dtype": "float32",
                         "shape": [batch, None], "sample_rate": pre.sample_rate,
                         "samples": samples,
                         "how": f"a mono waveform in [-1, 1] at {pre.sample_rate} Hz (resample "
                                f"first), {rule}; rows of a batch zero-padded at the end"}
        else:
            if fmt == "saved_model":
                out[name] = {"dtype": "string", "shape": [None],
                             "how": "text; the graph standardises and tokenises it as "
                                    "`preprocessing` says"}
            else:
                out[name] = {"dtype": "int32", "shape": [batch, shape[0]],
                             "how": "token ids, made from text as `preprocessing` says"}
            out[name]["preprocessing"] = text_preprocessing(model, name)
    return out


def calibration_set(data, task, count=REPRESENTATIVE_EXAMPLES, *, on_error="raise"):
    """The raw training examples int8 calibration reads, as a `tf.data.Dataset`: `count` of
    the train split of `data` drawn from every label in turn (the labels sorted; within each
    label, its examples in the order of a SHA-256 of their position in the split: a stable
    order that is not the files'), so that no class is left out (a split listed class by
    class would otherwise give its first class alone). Examples without a `label` are drawn
    in that hash order alone. The labels are read first without decoding a file; the decoded
    split is then streamed, keeping only the examples drawn."""
    src = open_source(data, on_error=on_error)
    listed = src.dataset("train", task, decode=False)
    if "label" in listed.element_spec:
        labels = [v.item() if hasattr(v, "item") else v
                  for v in listed.map(lambda e: e["label"]).as_numpy_iterator()]
    else:
        labels = [None] * sum(1 for _ in listed.map(lambda e: 0).as_numpy_iterator())
    picked = tf.constant(calibration_positions(labels, count) or [-1], tf.int64)
    return (src.dataset("train", task).enumerate()
            .filter(lambda i, _: tf.reduce_any(tf.equal(i, picked)))
            .map(lambda _, example: example))


def calibration_positions(labels, count):
    """The sorted positions of `count` of the examples whose labels are `labels` (one per
    example; all None: no labels): round-robin over the labels in sorted order, each label's
    examples taken in the order of a SHA-256 of their position."""
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    queues = [sorted(positions, key=lambda i: hashlib.sha256(f"calibration:{i}".encode())
                     .digest()) for _, positions in sorted(groups.items(), key=lambda kv:
                                                          str(kv[0]))]
    picked = []
    for depth in range(max(map(len, queues), default=0)):
        picked += [queue[depth] for queue in queues if depth < len(queue)]
        if len(picked) >= count:
            break
    return sorted(picked[:count])


def representative_examples(model, data, count=REPRESENTATIVE_EXAMPLES, *, on_error="raise"):
    """A callable yielding `count` training examples of `data` as numeric input dicts (batch 1),
    for int8 calibration: those of `calibration_set` (every label's), as the model's
    `Preprocessor` makes them (images uint8, text ids, waveforms at the model's rate and
    length), and what else its task's graphs take (a captioner's decoder: the image
    `features` and the caption so far as `ids`)."""
    task = task_of(model)
    raw = task.calibration_data(model, calibration_set(data, task.name, count,
                                                       on_error=on_error))
    examples = []
    for inputs, *_ in pipeline(model, raw, batch_size=1, cache="none").as_numpy_iterator():
        example = as_numbers(model, inputs)
        example.update(task.calibration_inputs(model, inputs))
        examples.append(example)
        if len(examples) == count:
            break
    if not examples:
        raise InvalidValue(f"int8 quantization needs training examples to calibrate on; {data} "
                           "has none in its train split")

    def generate():
        yield from examples

    return generate


def as_numbers(model, inputs):
    """A batch of the pipeline's `inputs` for `model` as a portable export takes them: images
    rounded to uint8, waveforms float32, token ids int32."""
    example = {}
    for name in contract.input_shapes(model):
        value = np.asarray(inputs[name])
        if name == "image":
            value = np.clip(np.round(value), 0, 255).astype("uint8")
        elif name == "audio":
            value = value.astype("float32")
        else:
            value = value.astype("int32")
        example[name] = value
    return example


def check_request(fmt, quantize=None, data=None, *, portable=False):
    """Fail in one line unless `fmt` (`portable`: a portable one) and `quantize` go together,
    and int8 has `data` (a source, or representative examples) to calibrate on."""
    known = list(FILE_SUFFIX) if portable else list(FORMATS)
    if fmt not in known:
        raise InvalidValue(f"unknown export format {fmt!r}; use one of {known}")
    if quantize not in (None, *QUANTIZATIONS):
        raise InvalidValue(f"unknown quantization {quantize!r}; use one of {list(QUANTIZATIONS)}")
    if quantize is not None and fmt != "litert":
        raise InvalidValue(f"quantize={quantize} is for format litert (LiteRT's converter "
                           f"quantizes); {fmt} exports are written in float32")
    if quantize == "int8" and data is None:
        raise InvalidValue("--quantize int8 calibrates on training data: export a run (its "
                           "config.json names the data), or pass data=")


def portable_files(model, folder, fmt, *, quantize=None, data=None, on_error="raise"):
    """Write the portable graphs of `model` into `folder` (`model.onnx`, `text_encoder.tflite`
    ...); returns `{stem: {"file", "inputs", "outputs"}}` for `metadata.json`."""
    check_request(fmt, quantize, data, portable=True)
    batch = 1 if fmt == "litert" else None
    described = {}
    examples = (representative_examples(model, data, on_error=on_error)
                if quantize == "int8" else None)
    for stem, graph in graphs(model, batch=batch).items():
        representative = None
        if examples is not None:
            def representative(names=[t.name for t in graph.inputs]):
                for example in examples():
                    yield {n: example[n] for n in names}
        file = stem + FILE_SUFFIX[fmt]
        how = convert(graph, os.path.join(folder, file), fmt, quantize=quantize,
                      representative=representative, owner=model)
        checked = verify(graph, os.path.join(folder, file), fmt, exact=quantize is None,
                         owner=model)
        described[stem] = {
            "file": file, "numbers": how, "checked": checked,
            "inputs": {t.name: {"dtype": str(t.dtype), "shape": list(t.shape)}
                       for t in graph.inputs},
            "outputs": {k: {"dtype": "float32", "shape": list(t.shape)}
                        for k, t in graph.output.items()}}
    return described


__all__ = ["FORMATS", "FitLength", "NotExportable", "QUANTIZATIONS", "as_numbers",
           "calibration_positions", "calibration_set", "check_request", "convert", "graphs",
           "file_runner", "hub_text_preprocessing", "input_metadata", "portable_files",
           "representative_examples", "runtime_name", "text_preprocessing", "verify"]
