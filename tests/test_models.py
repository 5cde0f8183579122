"""The generic test: every registered model goes through the same checks (timm's habit)."""


import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.layers.vocab import model_labels, model_vocabulary
from mmzoo.registry import get_spec

BATCH = 8


def random_batch(model, spec, rng):
    """A tiny batch of valid inputs and targets for `model`."""
    x = {}
    for t in model.inputs:
        shape = (BATCH,) + tuple(t.shape[1:])
        if shape == (BATCH, None):  # audio of any length (transcription)
            shape = (BATCH, 4000)
        if t.name == "image":
            x["image"] = rng.uniform(0, 255, shape).astype("float32")
        elif t.name == "audio":
            # tones of different pitch, so examples differ in their MFCCs as real speech does
            t_axis = np.arange(shape[1]) / shape[1]
            freqs = rng.uniform(5, 200, (BATCH, 1))
            x["audio"] = (0.5 * np.sin(2 * np.pi * freqs * t_axis * 10)
                          + 0.01 * rng.standard_normal(shape)).astype("float32")
            if spec.task == "transcription":  # utterances of unequal length, zero-padded
                x["audio"][1, 2500:] = 0.0
                x["audio"][2, 1200:] = 0.0
        else:
            size = len(model_vocabulary(model, t.name)) + 2
            ids = rng.integers(2, size, shape).astype("int32")
            lengths = rng.integers(1, shape[1] + 1, BATCH)
            lengths[0] = 0  # a text with no words (empty, or punctuation only): all padding
            ids[np.arange(shape[1])[None, :] >= lengths[:, None]] = 0
            x[t.name] = ids
    if spec.task in ("classification", "vqa"):
        y = rng.integers(0, len(model_labels(model)), BATCH).astype("int32")
    elif spec.task == "captioning":
        y = np.concatenate([x["text"][:, 1:], np.zeros((BATCH, 1), "int32")], axis=1)
    elif spec.task == "transcription":  # CTC targets: token ids, zero-padded
        from mmzoo.tasks.transcription import parts as transcriber

        y = rng.integers(2, len(transcriber(model).tokens) + 2, (BATCH, 3)).astype("int32")
        y[np.arange(3)[None, :] >= rng.integers(1, 4, BATCH)[:, None]] = 0
    else:
        y = np.zeros(BATCH, "int32")
    return x, y


def as_arrays(outputs):
    if isinstance(outputs, dict):
        return [np.asarray(v) for _, v in sorted(outputs.items())]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v) for v in outputs]
    return [np.asarray(outputs)]


@pytest.mark.parametrize("name", mmzoo.list_models())
def test_model(name, tmp_path):
    spec = get_spec(name)
    model = mmzoo.build(name, **spec.test_config)
    assert type(model).__name__ == "Functional", f"{name} must be a functional model"
    assert model.name == name
    assert {t.name for t in model.inputs} == set(spec.inputs)
    assert model.optimizer is not None and model.loss is not None, "build() must compile"

    x, y = random_batch(model, spec, np.random.default_rng(0))
    # the same finite outputs eagerly and compiled, also for the text with no words (row 0)
    eager, compiled = as_arrays(model(x, training=False)), as_arrays(model.predict(x, verbose=0))
    for a, b in zip(eager, compiled):
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), f"{name}: {a[:2]} {b[:2]}"
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    before = [np.array(w) for w in model.trainable_weights]
    model.train_on_batch(x, y)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(np.asarray(w), b)]
    assert not unchanged, f"{name}: trainable weights not updated by a step: {unchanged}"

    losses = model.fit(x, y, batch_size=BATCH, epochs=12, verbose=0, shuffle=False) \
        .history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], f"{name}: loss did not fall on a repeated batch: {losses}"

    # saved here, loaded by another process (test_every_saved_model_reloads_in_a_fresh_process)
    model.save(EXPORTS / f"{name}.keras")
    np.savez(EXPORTS / f"{name}.keras.npz", **{f"in_{k}": v for k, v in x.items()},
             **{f"out_{i}": v for i, v in enumerate(as_arrays(model.predict(x, verbose=0)))})

    export_dir = mmzoo.export(model, EXPORTS / name)
    raw, want = raw_request(model, spec, x)
    np.savez(EXPORTS / f"{name}.npz", **{f"in_{k}": v for k, v in raw.items()},
             **{f"out_{k}": v for k, v in want.items()})
    reloaded = tf.saved_model.load(export_dir)  # keep a reference while calling it
    served = reloaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    assert_outputs_equal(name, want, served)
    if spec.task in ("captioning", "transcription"):  # greedy: a second signature
        _, greedy = raw_request(model, spec, x, "greedy")
        served = reloaded.signatures["greedy"](**{k: tf.constant(v) for k, v in raw.items()})
        assert_outputs_equal(name, greedy, served)


EXPORTS = None  # set by the session fixture below


@pytest.fixture(scope="module", autouse=True)
def _exports(tmp_path_factory):
    global EXPORTS
    EXPORTS = tmp_path_factory.mktemp("exports")
    return EXPORTS


def raw_request(model, spec, x, method="beam"):
    """The raw inputs that stand for the numeric batch `x` (PNG bytes, strings, waveforms)
    and the outputs the exported model must give for them (captions and transcripts decoded
    with `method`: beam search, as `serving_default` serves them)."""
    from mmzoo.data import Preprocessor
    from mmzoo.layers.vocab import OOV, PAD, model_ngrams
    from mmzoo.tasks.captioning import generate
    from mmzoo.tasks.retrieval import encoders

    raw = {}
    for name in spec.inputs:
        if name == "image":
            pixels = np.round(x["image"]).astype("uint8")
            x["image"] = pixels.astype("float32")
            raw["image"] = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
        elif name == "audio":
            raw["audio"] = x["audio"]
        elif spec.task != "captioning":
            words = [PAD, OOV] + model_vocabulary(model, name)
            ids = np.where(x[name] == 1, 2, x[name])  # no out-of-vocabulary ids in a string
            x[name] = ids
            # a text with no words reaches the model as "?!": standardised to nothing
            raw[name] = np.array([" ".join(words[i] for i in row if i) or "?!" for row in ids],
                                 dtype=object)
            if model_ngrams(model, name) > 1:  # the text's word pairs are ids of their own
                x[name] = Preprocessor(model).text(name, tf.constant(raw[name])).numpy()
    if spec.task in ("classification", "vqa"):
        scores = model.predict(x, verbose=0)
        labels = np.array(model_labels(model), dtype=object)
        return raw, {"scores": scores, "label": labels[np.argmax(scores, axis=-1)]}
    if spec.task == "captioning":
        # served: beam search (`serving_default`), as the bench reports it
        return raw, {"caption": np.array(generate(model, x["image"], method), dtype=object)}
    if spec.task == "transcription":
        from mmzoo.tasks.transcription import transcribe

        return raw, {"transcript": np.array(transcribe(model, x["audio"], method),
                                            dtype=object)}
    text_encoder, image_encoder = encoders(model)
    return raw, {"similarity": model.predict(x, verbose=0),
                 "text_embedding": text_encoder.predict(x["text"], verbose=0),
                 "image_embedding": image_encoder.predict(x["image"], verbose=0)}


def assert_outputs_equal(name, want, got):
    assert set(got) == set(want), (name, sorted(got))
    for key, value in want.items():
        out = np.asarray(got[key])
        if value.dtype == object:
            out = np.array([v.decode() if isinstance(v, bytes) else v for v in out], dtype=object)
            assert list(out) == list(value), (name, key, out, value)
        else:
            np.testing.assert_allclose(out, value, rtol=1e-4, atol=1e-5, err_msg=f"{name} {key}")


def _fresh_python(code):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd="/", timeout=600)


def test_every_saved_model_reloads_in_a_fresh_process():
    """Each `.keras` file saved by test_model, loaded by a new Python process that only ran
    `import mmzoo` (every custom layer, loss and metric registered by it), predicts what the
    model that saved it predicted; `mmzoo.models` is reachable without a `build` first."""
    names = mmzoo.list_models()
    for name in [n for n in names if not (EXPORTS / f"{n}.keras").exists()]:  # run alone
        spec = get_spec(name)
        model = mmzoo.build(name, **spec.test_config)
        x, _ = random_batch(model, spec, np.random.default_rng(0))
        model.save(EXPORTS / f"{name}.keras")
        np.savez(EXPORTS / f"{name}.keras.npz", **{f"in_{k}": v for k, v in x.items()},
                 **{f"out_{i}": v for i, v in enumerate(as_arrays(model.predict(x, verbose=0)))})
    code = f"""
import numpy as np
import keras
import mmzoo
assert callable(mmzoo.tasks.captioning.generate) and callable(mmzoo.tasks.retrieval.encoders)
for name in {names!r}:
    data = np.load(f"{EXPORTS}/{{name}}.keras.npz")
    model = keras.saving.load_model(f"{EXPORTS}/{{name}}.keras")
    out = model.predict({{k[3:]: v for k, v in data.items() if k.startswith("in_")}}, verbose=0)
    out = [np.asarray(v) for _, v in sorted(out.items())] if isinstance(out, dict) else [out]
    for i, value in enumerate(out):
        np.testing.assert_allclose(value, data[f"out_{{i}}"], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
print("ok")
"""
    out = _fresh_python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_every_export_runs_in_a_process_without_mmzoo():
    """Each SavedModel written above, loaded and called with raw inputs by a Python process in
    which importing mmzoo or keras_hub fails, gives the outputs of the model it came from."""
    names = mmzoo.list_models()
    missing = [n for n in names if not (EXPORTS / n).is_dir()]
    for name in missing:  # when this test runs alone
        spec = get_spec(name)
        model = mmzoo.build(name, **spec.test_config)
        x, _ = random_batch(model, spec, np.random.default_rng(0))
        mmzoo.export(model, EXPORTS / name)
        raw, want = raw_request(model, spec, x)
        np.savez(EXPORTS / f"{name}.npz", **{f"in_{k}": v for k, v in raw.items()},
                 **{f"out_{k}": v for k, v in want.items()})
    code = f"""
import sys
sys.modules["mmzoo"] = None
sys.modules["keras_hub"] = None
import numpy as np, tensorflow as tf
for name in {names!r}:
    data = np.load(f"{EXPORTS}/{{name}}.npz", allow_pickle=True)
    served = tf.saved_model.load(f"{EXPORTS}/{{name}}")
    inputs = {{k[3:]: tf.constant(list(v) if v.dtype == object else v)
              for k, v in data.items() if k.startswith("in_")}}
    out = served.signatures["serving_default"](**inputs)
    np.savez(f"{EXPORTS}/{{name}}.served.npz",
             **{{k: np.array([s.decode() for s in v.numpy()], dtype=object)
                if v.dtype == tf.string else v.numpy() for k, v in out.items()}})
print("ok")
"""
    out = _fresh_python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
    for name in names:
        data = np.load(EXPORTS / f"{name}.npz", allow_pickle=True)
        want = {k[4:]: v for k, v in data.items() if k.startswith("out_")}
        got = dict(np.load(EXPORTS / f"{name}.served.npz", allow_pickle=True))
        assert_outputs_equal(name, want, got)
