"""Fit a registered model on a data source: Keras callbacks, resume after a kill, tf.distribute."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def configure_cpu_devices(n):
    """Split the CPU into `n` logical devices (before TensorFlow starts), so `mirrored` can run
    data-parallel on a machine without GPUs. No-op when `n` is None or 1."""
    if not n or n == 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
        raise RuntimeError(f"cannot split the CPU into {n} logical devices once TensorFlow has "
                           f"started ({e}); do it first thing in the process") from e


def make_strategy(kind="default"):
    """The `tf.distribute.Strategy` named `kind`.

    - `default`: no distribution (one device).
    - `mirrored`: `MirroredStrategy` over all GPUs, or all logical CPU devices when there is no
      GPU (see `configure_cpu_devices`).
    - `multi_worker`: `MultiWorkerMirroredStrategy`, the cluster read from `TF_CONFIG`.
    - `tpu`: `TPUStrategy` on the TPU this process can reach; fails clearly when there is none.
    """
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment "
                "variable, which is not set; e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
                "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", "
                "\"index\": 0}}' on the first worker")
        return _MultiWorkerStrategy()
    if kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise ValueError(f"strategy 'tpu' needs a TPU, and none was found ({e}); use "
                             "--strategy default or mirrored here") from e
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {kind!r}; use one of {list(STRATEGIES)}")


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's `fit` gives it.

    Keras 3 (3.15) calls `strategy.reduce` with a nested batch of data (its symbolic build, for
    a model with dict inputs) and with scalar metric values along `axis=0` (each step's logs);
    the collective strategy takes neither (keras-team/keras#20329, open). This reduces each
    leaf of a nest separately and a scalar across replicas without an axis. The metrics are
    summed across workers when they update, so the logged values are the global ones.
    """

    def reduce(self, reduce_op, value, axis):
        base = super().reduce

        def one(v):
            rank = self.experimental_local_results(v)[0].shape.rank
            return base(reduce_op, v, axis=None if rank == 0 else axis)

        return tf.nest.map_structure(one, value)


def _worker(strategy):
    """`(is_chief, index)` of this process in a multi-worker cluster (`(True, 0)` otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None):
        return True, 0
    spec = resolver.cluster_spec().as_dict()
    task_type, index = resolver.task_type, resolver.task_id or 0
    if task_type is None:
        return True, 0
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0
                                         and "chief" not in spec)
    return is_chief, index


class _Resume(keras.callbacks.Callback):
    """After `BackupAndRestore` restored a run, trim `history.csv` to the finished epochs and
    give `ModelCheckpoint` the best value so far, so that the resumed run neither repeats an
    epoch in the log nor overwrites a better model; says where it resumes."""

    def __init__(self, history_path, checkpoint, epochs, verbose):
        super().__init__()
        self.history_path, self.checkpoint = history_path, checkpoint
        self.epochs, self.verbose = epochs, verbose
        self.resumed_from = 0

    def on_train_begin(self, logs=None):
        start = int(getattr(self.model, "_initial_epoch", 0) or 0)
        self.resumed_from = start
        if not start:
            if os.path.exists(self.history_path):
                os.remove(self.history_path)
            return
        rows = []
        if os.path.exists(self.history_path):
            with open(self.history_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < start]
            with open(self.history_path, "w", newline="") as f:
                if rows:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
        monitored = [float(r[self.checkpoint.monitor]) for r in rows
                     if r.get(self.checkpoint.monitor) not in (None, "")]
        if monitored:
            self.checkpoint.best = min(monitored)
        if self.verbose:
            print(f"resuming from the backup: epochs 1-{start} of {self.epochs} are done, "
                  f"training epochs {start + 1}-{self.epochs}", file=sys.stderr, flush=True)


def _run_record(name, data, epochs, batch_size, seed, overrides, strategy, mixed_precision,
                jit_compile, augment, config):
    import keras_hub
    import librosa
    import numpy as np

    import mmzoo

    return {"model": name, "data": data, "epochs": epochs, "batch_size": batch_size,
            "seed": seed, "overrides": overrides, "strategy": strategy,
            "mixed_precision": mixed_precision, "jit_compile": jit_compile, "augment": augment,
            "config": config,
            "versions": {"mmzoo": mmzoo.__version__, "tensorflow": tf.__version__,
                         "keras": keras.__version__, "keras_hub": keras_hub.__version__,
                         "librosa": librosa.__version__, "numpy": np.__version__,
                         "python": sys.version.split()[0]}}


def train(name, data="easy_vqa", *, epochs=10, batch_size=64, out="runs/model", seed=0,
          overrides=None, strategy="default", mixed_precision=False, jit_compile=False,
          augment=True, verbose=1, on_error="raise"):
    """Train `name` on the `train` split of `data`, validating on `validation`.

    Sources without a validation split hold out every 10th training example
    (`mmzoo.data.fit_splits`). The vocabulary and class names are adapted on the training split
    (`mmzoo.data.adapt`); user `overrides` win over them.

    Writes, under `out`: `model.keras` (the best epoch by validation loss), `history.csv` (one
    row per epoch), TensorBoard logs in `logs/`, `config.json` (model, overrides, data, seed,
    strategy, library versions) and, while training, a `BackupAndRestore` backup in `backup/`:
    run the same command again after a kill and training goes on from the last finished epoch.

    Args:
        name: str. A registered model name.
        data: str. A data source for `mmzoo.data.load`.
        epochs: int. Training epochs.
        batch_size: int. Global batch size (split across replicas by the strategy).
        out: str. Output folder.
        seed: int. Seed of weights initialisation and shuffling.
        overrides: dict. Config overrides for `mmzoo.build`.
        strategy: str. `default`, `mirrored`, `multi_worker` or `tpu` (`make_strategy`).
        mixed_precision: bool. `mixed_float16` on GPU, `mixed_bfloat16` on CPU and TPU.
        jit_compile: bool. Compile the train and eval steps with XLA.
        augment: bool. Augment training waveforms (audio models).
        verbose: int. Keras verbosity (1: progress bars).
        on_error: str. `raise` or `skip` bad items of the data (`mmzoo.data.load`).

    Returns:
        `(model, history)`: the best model (reloaded from `out/model.keras`) and the Keras
        History of this call (the epochs it ran).

    Examples:
    ```python
    model, history = mmzoo.train("vqa_cnn_lstm", "easy_vqa", epochs=2, out="runs/vqa")
    ```
    """
    from mmzoo.data import adapt, open_source, pipeline
    from mmzoo.registry import build, get_spec

    dist = make_strategy(strategy) if isinstance(strategy, str) else strategy
    strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
    spec = get_spec(name)
    overrides = dict(overrides or {})
    keras.utils.set_random_seed(seed)
    if mixed_precision:
        on_gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "mixed_bfloat16")
    src = open_source(data, on_error=on_error)
    train_raw, val_raw = src.fit_splits(spec.task)
    config = {**adapt(name, src.fit_splits(spec.task, decode=False)[0]), **overrides}

    is_chief, index = _worker(dist)
    # Non-chief workers of a cluster write their (identical) files to a scratch folder.
    work = out if is_chief else os.path.join(out, f".worker-{index}")
    os.makedirs(work, exist_ok=True)
    record = _run_record(name, data, epochs, batch_size, seed, overrides, strategy_name,
                         mixed_precision, jit_compile, augment,
                         dataclasses.asdict(spec.make_config(**config)))
    backup = os.path.join(work, "backup")
    _check_same_run(work, backup, record)
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(record, f, indent=2)

    if verbose and strategy_name != "default":
        print(f"strategy {strategy_name}: {dist.num_replicas_in_sync} replicas in sync",
              file=sys.stderr, flush=True)
    with dist.scope():
        model = build(name, **config)
    if jit_compile:
        model.jit_compile = True
    train_ds = pipeline(model, train_raw, batch_size=batch_size, training=True, seed=seed,
                        augment=augment)
    val_ds = pipeline(model, val_raw, batch_size=batch_size)
    if strategy_name == "multi_worker":
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)

    path = os.path.join(work, "model.keras")
    history_path = os.path.join(work, "history.csv")
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    resume = _Resume(history_path, checkpoint, epochs, verbose)
    callbacks = [keras.callbacks.BackupAndRestore(backup), resume,
                 keras.callbacks.CSVLogger(history_path, append=True), checkpoint,
                 keras.callbacks.TensorBoard(os.path.join(work, "logs"))]
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, shuffle=False)  # the pipeline shuffles
    best = keras.saving.load_model(path)
    if not is_chief:
        shutil.rmtree(work, ignore_errors=True)
    history.resumed_from = resume.resumed_from
    return best, history


def _check_same_run(work, backup, record):
    """A backup left by a different command must not be resumed by this one."""
    path = os.path.join(work, "config.json")
    if not (os.path.exists(os.path.join(backup, "training_metadata.json"))
            and os.path.exists(path)):
        return
    with open(path) as f:
        previous = json.load(f)
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    keys = ("model", "data", "overrides", "seed", "batch_size", "config")
    changed = [k for k in keys if previous.get(k) != record.get(k)]
    if changed:
        raise ValueError(
            f"{backup} holds an unfinished run with different {changed} (see "
            f"{path}); run the same command to resume it, or choose another --out")
