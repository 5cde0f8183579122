"""Fit a registered model on a data source with Keras callbacks."""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from mmzoo.data import adapt, fit_splits, pipeline
from mmzoo.registry import build, get_spec


def train(name, data="easy_vqa", *, epochs=10, batch_size=64, out="runs/model", seed=0,
          overrides=None, verbose=1, on_error="raise"):
    """Train `name` on the `train` split of `data`, validating on `validation`.

    Sources without a validation split hold out every 10th training example
    (`mmzoo.data.fit_splits`).

    The vocabulary and class names are adapted on the training split (`mmzoo.data.adapt`); user
    `overrides` win over them. Writes `out/model.keras` (the best epoch by validation loss) and
    `out/config.json`.

    Args:
        name: str. A registered model name.
        data: str. A data source for `mmzoo.data.load`.
        epochs: int. Training epochs.
        batch_size: int. Batch size.
        out: str. Output folder.
        seed: int. Seed of weights initialisation and shuffling.
        overrides: dict. Config overrides for `mmzoo.build`.
        verbose: int. Keras verbosity (1: progress bars).
        on_error: str. `raise` or `skip` bad items of the data (`mmzoo.data.load`).

    Returns:
        `(model, history)`: the best model (reloaded from `out/model.keras`) and the Keras History.

    Examples:
    ```python
    model, history = mmzoo.train.train("vqa_cnn_lstm", "easy_vqa", epochs=2, out="runs/vqa")
    ```
    """
    spec = get_spec(name)
    keras.utils.set_random_seed(seed)
    train_ds, val_ds = fit_splits(data, task=spec.task, on_error=on_error)
    config = {**adapt(name, train_ds), **(overrides or {})}
    model = build(name, **config)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.keras")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model": name, "data": data, "epochs": epochs, "batch_size": batch_size,
                   "seed": seed, "overrides": overrides or {},
                   "config": dataclasses.asdict(spec.make_config(**config)),
                   "versions": {"keras": keras.__version__}}, f, indent=2)
    history = model.fit(
        pipeline(model, train_ds, batch_size=batch_size, training=True, seed=seed),
        validation_data=pipeline(model, val_ds, batch_size=batch_size),
        epochs=epochs, verbose=verbose, shuffle=False,  # the pipeline shuffles
        callbacks=[keras.callbacks.ModelCheckpoint(path, monitor="val_loss",
                                                   save_best_only=True)])
    return keras.saving.load_model(path), history
