"""ONNX and LiteRT exports of every registered model, run by onnxruntime and the LiteRT
interpreter in a process without TensorFlow, give the Keras model's outputs; a model a format
cannot hold fails naming why; the portable audio front end equals librosa."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mmzoo
from mmzoo import contract
from mmzoo.portable import NotExportable, graphs
from mmzoo.registry import get_spec

RUNTIME = os.path.join(os.path.dirname(mmzoo.__file__), "runtime.py")
# Keras and the runtimes add in other orders: outputs agree within this (float32 rounding)
TOLERANCE = 1e-4
# what a format cannot hold, and the reason an export says
NOT_PORTABLE = {("speech_ctc_transformer", "litert"): "does not run in its runtime"}


def numeric_batch(model, rng, rows=3):
    """Numbers as a runtime gives them: uint8 images, token ids, waveforms of other lengths
    than the model's (so that the graph's centring, padding and cutting to the loudest part
    run)."""
    out = {}
    for name, shape in contract.input_shapes(model).items():
        if name == "image":
            out[name] = rng.integers(0, 256, (rows, *shape)).astype("uint8")
        elif name == "audio":
            samples = shape[0] or 4000
            out[name] = (0.1 * rng.standard_normal((rows, 3 * samples))).astype("float32")
            out[name][0, samples // 2:] = 0.0          # a short clip, zero-padded
            # a voice note: a sound in its first part, then quiet: cut to its loudest part
            out[name][1, samples // 2:] *= 1e-3
        else:
            out[name] = rng.integers(0, 12, (rows, *shape)).astype("int32")
    return out


def run_without_tensorflow(jobs):
    """Run each `(export folder, inputs .npz, outputs .npz, graph)` with `mmzoo/runtime.py` in
    one Python process that cannot import TensorFlow or mmzoo; returns what it imported."""
    code = f"""
import json, runpy, sys
sys.modules["tensorflow"] = None
sys.modules["mmzoo"] = None
runtime = runpy.run_path({RUNTIME!r})
for folder, inputs, outputs, graph in {jobs!r}:
    runtime["main"]([folder, inputs, outputs, graph])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_every_model_runs_on_onnxruntime_and_litert_as_in_keras(tmp_path):
    rng = np.random.default_rng(0)
    jobs, want = [], {}
    for name in mmzoo.list_models():
        model = mmzoo.build(name, **get_spec(name).test_config)
        x = numeric_batch(model, rng)
        for fmt in ("onnx", "litert"):
            folder = tmp_path / f"{name}.{fmt}"
            if (name, fmt) in NOT_PORTABLE:
                with pytest.raises(NotExportable, match=NOT_PORTABLE[name, fmt]):
                    mmzoo.export(model, folder, format=fmt)
                assert not folder.exists()
                continue
            mmzoo.export(model, folder, format=fmt)
            meta = json.loads((folder / "metadata.json").read_text())
            assert meta["model"] == name and meta["format"] == fmt
            for stem, graph in graphs(model).items():
                names = [t.name for t in graph.inputs]
                if "features" in names:  # a caption decoder: the encoder's features, a prefix
                    x["features"] = want[name, fmt, "image_encoder"]["features"]
                    x["ids"] = rng.integers(0, 8, (len(x["features"]), *graph.input["ids"]
                                                   .shape[1:])).astype("int32")
                np.savez(tmp_path / f"{name}.{fmt}.{stem}.in.npz", **{n: x[n] for n in names})
                want[name, fmt, stem] = {k: np.asarray(v) for k, v in
                                         graph({n: x[n] for n in names}, training=False).items()}
                jobs.append((str(folder), str(tmp_path / f"{name}.{fmt}.{stem}.in.npz"),
                             str(tmp_path / f"{name}.{fmt}.{stem}.out.npz"), stem))
                if "labels" in meta:
                    assert meta["labels"] == list(contract.labels(model))
    imported = run_without_tensorflow(jobs)
    assert imported and all(i == {"tensorflow": False, "mmzoo": False} for i in imported)
    portable = {(n, f) for n, f, _ in want}
    assert len(portable) == 2 * len(mmzoo.list_models()) - len(NOT_PORTABLE)
    for (name, fmt, stem), outputs in want.items():
        got = np.load(tmp_path / f"{name}.{fmt}.{stem}.out.npz")
        for key, value in outputs.items():
            assert got[key].shape == value.shape, (name, fmt, key)
            np.testing.assert_allclose(got[key], value, atol=TOLERANCE,
                                       err_msg=f"{name} {fmt} {stem} {key}")


def test_the_portable_front_end_equals_the_stft_and_librosa(data_dir):
    """LogMel's STFT is a strided convolution with the DFT basis as constants: within 1e-4
    of `keras.ops.stft` relative to each clip's dynamic range, and as close to librosa's
    float64 log-mel as the FFT is; its factored form (int8 files) within 2e-3 dB of it."""
    import librosa
    from keras import ops

    from mmzoo.layers import LogMel

    layer = LogMel(8000, n_fft=256, hop_length=80, n_mels=40)
    folder = os.path.join(data_dir, "fsdd", "recordings")
    clips = [librosa.load(os.path.join(folder, f), sr=8000)[0]
             for f in sorted(os.listdir(folder))[::100]]
    worst_stft = worst_conv = 0.0
    for y in clips:
        ref = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y.astype("float64"), sr=8000, n_fft=256, hop_length=80, n_mels=40,
            pad_mode="constant"), top_db=80.0).T
        ours = np.asarray(layer(y[None]))[0]
        padded = ops.pad(y[None], [[0, 0], [128, 128]])
        real, imag = ops.stft(padded, 256, 80, 256, window="hann", center=False)
        mel = np.asarray(ops.matmul(real * real + imag * imag, layer._mel_t))[0]
        stft = 10 * np.log10(np.maximum(mel, 1e-10))
        stft = np.maximum(stft, stft.max() - 80.0)
        span = ref.max() - ref.min()
        assert np.abs(ours - stft).max() / span < 1e-4
        layer.dft = "factored"                         # what an int8 LiteRT file computes
        factored = np.asarray(layer(y[None]))[0]
        layer.dft = "conv"
        assert np.abs(factored - ours).max() < 2e-3
        worst_conv = max(worst_conv, np.abs(ours - ref).max())
        worst_stft = max(worst_stft, np.abs(stft - ref).max())
    assert worst_conv < 1e-3 and worst_conv <= 2 * worst_stft, (worst_conv, worst_stft)


def test_a_litert_file_holds_only_builtin_ops(tmp_path):
    """No Flex (TensorFlow) op in a converted audio model: the front end and the LSTM loop
    are LiteRT builtins, so the file runs on the interpreter alone."""
    model = mmzoo.build("audio_mfcc_lstm", **get_spec("audio_mfcc_lstm").test_config)
    folder = mmzoo.export(model, tmp_path / "lite", format="litert")
    ops_used = _ops(os.path.join(folder, "model.tflite"))
    assert ops_used and not any(op.startswith("Flex") or op == "CUSTOM" for op in ops_used), \
        ops_used
    assert {"CONV_2D", "WHILE"} <= ops_used, ops_used


def _ops(path):
    """The operator names a .tflite file uses (its flatbuffer's operator codes)."""
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(f.read(), 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return {names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
            if c.customCode is None else c.customCode.decode() for c in model.operatorCodes}


def test_int8_keeps_the_audio_front_end_in_float_and_its_weights_small(data_dir, tmp_path):
    """An int8 LiteRT audio classifier: convolution and dense weights int8, the front end
    (framing, DFT, mel, log) float, so its scores on real clips stay near the float file's;
    and the file is under half the float one (bench/portable.py measures a full-size model's
    ratio: tiny ones are mostly the float front end's mel matrix)."""
    from mmzoo.runtime import Runner

    config = {**get_spec("audio_mfcc_cnn").test_config, "audio_filters": (32, 32),
              "hidden_units": (64,)}
    model = mmzoo.build("audio_mfcc_cnn", **config)
    source = f"fsdd:{data_dir}/fsdd"
    int8 = mmzoo.export(model, tmp_path / "int8", format="litert", quantize="int8", data=source)
    plain = mmzoo.export(model, tmp_path / "float", format="litert")
    card = open(os.path.join(int8, "README.md")).read()   # FSDD's digits are not its labels:
    assert "Not measured on this file: its test split could not be scored" in card
    assert "model-index:" not in card                       # no figures of another model
    kinds = _tensor_kinds(os.path.join(int8, "model.tflite"))
    assert "int8" in kinds["conv"] and "float32" in kinds["log"], kinds
    size = os.path.getsize(os.path.join(int8, "model.tflite"))
    assert size < 0.5 * os.path.getsize(os.path.join(plain, "model.tflite"))
    clips = [e["audio"] for e in mmzoo.data.load(f"{source}?sample_rate=4000", split="test")
             .take(8).as_numpy_iterator()]
    quantized, exact = Runner(int8), Runner(plain)
    for clip in clips:
        np.testing.assert_allclose(quantized(audio=clip[None])["scores"],
                                   exact(audio=clip[None])["scores"], atol=0.05)


def _tensor_kinds(path):
    """The dtypes of a .tflite file's convolution weights and of its log ops' outputs."""
    from ai_edge_litert.interpreter import Interpreter

    kinds = {"conv": set(), "log": set()}
    for t in Interpreter(model_path=path).get_tensor_details():
        name = t["name"]
        if "conv1" in name and name.endswith("convolution"):
            kinds["conv"].add(np.dtype(t["dtype"]).name)
        if "Log" in name:
            kinds["log"].add(np.dtype(t["dtype"]).name)
    return kinds


def test_int8_calibration_draws_from_every_label(data_dir):
    """FSDD's train split is listed digit by digit: its first 200 examples are all zeros.
    Calibration takes the labels in turn (each label's examples in a stable hash order), so
    200 examples are 20 of each digit, and 10 are one of each; the same ones every time."""
    from mmzoo.portable import calibration_positions, calibration_set

    source = f"fsdd:{data_dir}/fsdd"
    first = [int(e["label"]) for e in mmzoo.data.load(source, split="train").take(200)
             .as_numpy_iterator()]
    assert set(first) == {0}
    drawn = calibration_set(source, "classification", 200)
    labels = [int(e["label"]) for e in drawn.as_numpy_iterator()]
    assert sorted(labels) == sorted(list(range(10)) * 20)
    few = [int(e["label"]) for e in calibration_set(source, "classification", 10)
           .as_numpy_iterator()]
    assert sorted(few) == list(range(10))
    picked = calibration_positions(["b"] * 5 + ["a"] * 3 + [None] * 2, 6)
    assert picked == calibration_positions(["b"] * 5 + ["a"] * 3 + [None] * 2, 6)
    assert sum(p < 5 for p in picked) == 2 and sum(5 <= p < 8 for p in picked) == 2
    assert len(calibration_positions([None] * 50, 7)) == 7
