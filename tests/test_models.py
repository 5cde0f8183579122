"""The generic test: every registered model goes through the same checks (timm's habit)."""


import keras
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
        if t.name == "image":
            x["image"] = rng.uniform(0, 255, shape).astype("float32")
        elif t.name == "audio":
            # tones of different pitch, so examples differ in their MFCCs as real speech does
            t_axis = np.arange(shape[1]) / shape[1]
            freqs = rng.uniform(5, 200, (BATCH, 1))
            x["audio"] = (0.5 * np.sin(2 * np.pi * freqs * t_axis * 10)
                          + 0.01 * rng.standard_normal(shape)).astype("float32")
        else:
            size = len(model_vocabulary(model, t.name)) + 2
            ids = rng.integers(2, size, shape).astype("int32")
            lengths = rng.integers(1, shape[1] + 1, BATCH)
            ids[np.arange(shape[1])[None, :] >= lengths[:, None]] = 0
            x[t.name] = ids
    if spec.task in ("classification", "vqa"):
        y = rng.integers(0, len(model_labels(model)), BATCH).astype("int32")
    elif spec.task == "captioning":
        y = np.concatenate([x["text"][:, 1:], np.zeros((BATCH, 1), "int32")], axis=1)
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
    before = [np.array(w) for w in model.trainable_weights]
    model.train_on_batch(x, y)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(np.asarray(w), b)]
    assert not unchanged, f"{name}: trainable weights not updated by a step: {unchanged}"

    losses = model.fit(x, y, batch_size=BATCH, epochs=12, verbose=0, shuffle=False) \
        .history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], f"{name}: loss did not fall on a repeated batch: {losses}"

    expected = as_arrays(model.predict(x, verbose=0))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(expected, as_arrays(loaded.predict(x, verbose=0))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    export_dir = mmzoo.export(loaded, tmp_path / "saved_model")
    reloaded = tf.saved_model.load(export_dir)  # keep a reference while calling it
    served = reloaded.serve({k: tf.constant(v) for k, v in x.items()})
    for a, b in zip(expected, as_arrays(served)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
