"""Fit a registered model on a data source: Keras callbacks, resume after a kill, tf.distribute."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
import types
import warnings

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from mmzoo import contract
from mmzoo._version import __version__
from mmzoo.artifacts import artifacts
from mmzoo.card import machine
from mmzoo.card import write as write_card
from mmzoo.contract import front_ends
from mmzoo.data import adapt, open_source, pipeline, waveform
from mmzoo.data.base import SPLIT_RULE
from mmzoo.data.pipeline import CACHES, cache_bytes
from mmzoo.data.sources import absolute_source, default_source
from mmzoo.errors import InvalidValue
from mmzoo.evaluate import evaluate
from mmzoo.features import feature_model
from mmzoo.layers.mfcc import MFCC
from mmzoo.registry import build, get_spec, get_task
from mmzoo.run import MONITOR, RunFolder, best_epoch, read_history

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
        raise InvalidValue(f"cannot split the CPU into {n} logical devices once TensorFlow has "
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
            raise InvalidValue(
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
            raise InvalidValue(f"strategy 'tpu' needs a TPU, and none was found ({e}); use "
                               "--strategy default or mirrored here") from e
        return tf.distribute.TPUStrategy(resolver)
    raise InvalidValue(f"unknown strategy {kind!r}; use one of {list(STRATEGIES)}")


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
    """`(is_chief, index, workers, pipeline)` of this process in a multi-worker cluster: whether
    it is the chief, its task index, the number of workers (the chief included) and its input
    pipeline id (the chief, when the cluster has one, is pipeline 0); `(True, 0, 1, 0)`
    otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None) \
            or resolver.task_type is None:
        return True, 0, 1, 0
    spec = resolver.cluster_spec().as_dict()
    task_type, index = resolver.task_type, resolver.task_id or 0
    chiefs = len(spec.get("chief", ()))
    workers = max(1, len(spec.get("worker", ())) + chiefs)
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and not chiefs)
    pipeline = 0 if task_type == "chief" else index + chiefs
    return is_chief, index, workers, pipeline


class _Restore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that restores at the start of training but writes its backup only
    when `_Backup`, the last callback of each epoch, asks: so every other file of the epoch
    (history row, best model) is on disk before the backup says the epoch is done."""

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0

    def write(self):
        self._save_model()


class _Backup(keras.callbacks.Callback):
    """Writes the backup of `_Restore`, after the other callbacks of the epoch, then commits
    the epoch's best model (`_BestModel.commit`) and records in the run's ledger what the epoch
    wrote (`mmzoo.run.RunFolder.record`). `written`: the backups this process wrote."""

    def __init__(self, restore, best, folder):
        super().__init__()
        self.restore, self.best, self.folder = restore, best, folder
        self.written = 0

    def on_epoch_end(self, epoch, logs=None):
        self.restore.write()
        self.written += 1
        self.best.commit()
        self.folder.record(*RECORDED)


class _Writing(keras.callbacks.Callback):
    """Marks in the run's ledger what `fit` writes as being written (`RunFolder.writing`) before
    it writes it: at the start of training and of each epoch, until `_Backup` records it. So
    what a killed run leaves half-written is still mmzoo's for `--overwrite`."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_train_begin(self, logs=None):
        self.folder.writing(*RECORDED)

    def on_epoch_begin(self, epoch, logs=None):
        self.folder.writing(*RECORDED)


class _BestModel(keras.callbacks.Callback):
    """Keeps `model.keras` the best epoch by validation loss, committed together with the backup.

    `folder`: the run's `mmzoo.run.RunFolder` (each file is claimed there as it is written).
    `saved`: the model to save when it is not the one `fit` runs (frozen-feature training fits
    `mmzoo.features.feature_model`, which shares the whole model's weights).

    A better epoch's model is first written as `model.pending.keras` (and its epoch and value in
    `model.pending.json`); once the backup of that epoch is written, `commit` moves it onto
    `model.keras`. A kill before the backup leaves a pending model of an epoch the resumed run
    repeats, which `resolve` discards; a kill after it, one the backup counts, which `resolve`
    commits. So at any kill `model.keras` is the best of the epochs `history.csv` keeps.
    """

    def __init__(self, folder, saved=None):
        super().__init__()
        self.folder, self.saved = folder, saved
        self.path = folder.file("model.keras")
        self.pending = folder.file("model.pending.keras")
        self.pending_info = folder.file("model.pending.json")
        self.best = float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR)
        if value is None or not value < self.best:  # also skips NaN
            return
        self.best = float(value)
        self.folder.claim("model.pending.keras")
        self.folder.claim("model.pending.json")
        (self.saved or self.model).save(self.pending, overwrite=True)
        with open(self.pending_info, "w") as f:
            json.dump({"epoch": epoch, MONITOR: self.best}, f)

    def commit(self):
        if os.path.exists(self.pending_info):
            if os.path.exists(self.pending):  # gone if a kill came between these two lines
                self.folder.claim("model.keras")
                os.replace(self.pending, self.path)
            os.remove(self.pending_info)
            self.folder.record("model.keras", "model.pending.keras", "model.pending.json")

    def resolve(self, done):
        """After a restart with `done` finished epochs: commit a pending model of a finished
        epoch, discard one of an epoch that is trained again (or one whose description was
        never written: its save was interrupted)."""
        epoch = done
        if os.path.exists(self.pending_info):
            with open(self.pending_info) as f:
                epoch = json.load(f)["epoch"]
        if epoch < done:
            self.commit()
            return
        for leftover in (self.pending, self.pending_info):
            if os.path.exists(leftover):
                os.remove(leftover)


class _Resume(keras.callbacks.Callback):
    """After `_Restore` restored a run, trim `history.csv` to the finished epochs, settle a
    pending best model (`_BestModel.resolve`) and give it the best value so far, so that the
    resumed run neither repeats an epoch in the log nor overwrites a better model; says where
    it resumes. A fresh run (no backup) starts a fresh `history.csv`."""

    def __init__(self, history_path, best, epochs, verbose, plateau=None):
        super().__init__()
        self.history_path, self.best, self.plateau = history_path, best, plateau
        self.epochs, self.verbose = epochs, verbose
        self.resumed_from = 0

    def on_train_begin(self, logs=None):
        start = int(getattr(self.model, "_initial_epoch", 0) or 0)
        self.resumed_from = start
        self.best.resolve(start)
        if not start:
            if os.path.exists(self.history_path):
                os.remove(self.history_path)
            return
        rows = read_history(self.history_path)
        kept = [r for r in rows if int(r["epoch"]) < start]
        if len(kept) != len(rows):
            with open(self.history_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(kept)
        monitored = [float(r[MONITOR]) for r in kept if r.get(MONITOR) not in (None, "")]
        if monitored:
            self.best.best = min(monitored)
        if self.plateau is not None:
            _replay(self.plateau, monitored)
        if self.verbose:
            print(f"resuming from the backup: epochs 1-{start} of {self.epochs} are done, "
                  f"training epochs {start + 1}-{self.epochs}", file=sys.stderr, flush=True)


def _replay(plateau, values):
    """Give a `ReduceLROnPlateau` the state it had after the finished epochs' validation
    losses (the rate itself is in the backup): its best value and the epochs it has waited
    since, counted as it counts them (an improvement beats the best by `min_delta`; a
    reduction starts the wait again)."""
    best, wait = float("inf"), 0
    for value in values:
        if value < best - plateau.min_delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= plateau.patience:
                wait = 0
    plateau.best, plateau.wait = best, wait


def _recorded_config(cfg):
    """The model config as `config.json` records it: an adapted `vocabulary` (up to
    `MAX_TOKENS` words, carried by the model itself) as its size and SHA-256, so the record
    stays small and still tells two runs' vocabularies apart."""
    config = dataclasses.asdict(cfg)
    if isinstance(config.get("vocabulary"), (list, tuple)):
        tokens = list(config["vocabulary"])
        digest = hashlib.sha256("\n".join(tokens).encode()).hexdigest()
        config["vocabulary"] = {"size": len(tokens), "sha256": digest}
    return config


def _run_record(name, data, opts, overrides, config):
    """What `config.json` records of a run: the model, data and options, the config and the
    library versions."""
    return {"model": name, "data": data, "epochs": opts.epochs, "batch_size": opts.batch_size,
            "seed": opts.seed, "overrides": overrides, "strategy": opts.strategy,
            "mixed_precision": opts.mixed_precision, "jit_compile": opts.jit_compile,
            "augment": opts.augment, "config": config,
            "versions": {"mmzoo": __version__, "tensorflow": tf.__version__,
                         "keras": keras.__version__, "keras_hub": keras_hub.__version__,
                         "librosa": _version_of("librosa"), "numpy": np.__version__,
                         "python": sys.version.split()[0]}}


def _version_of(package):
    """The installed version of `package` (without importing it), or `unknown`."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def train(name, data=None, *, epochs=10, batch_size=64, out=None, seed=0,
          overrides=None, strategy="default", mixed_precision=False, jit_compile=False,
          augment=True, verbose=1, on_error="raise", callbacks=None, overwrite=False,
          cache="auto", feature_cache="auto"):
    """Train `name` on the `train` split of `data`, validating on `validation`.

    Sources without a validation split hold out 1 in 10 training examples
    (`mmzoo.data.fit_splits`). The vocabulary and class names are adapted on the training split
    (`mmzoo.data.adapt`); user `overrides` win over them.

    Writes, under `out`: `model.keras` (the best epoch by validation loss), `history.csv` (one
    row per epoch), TensorBoard logs in `logs/`, `config.json` (model, overrides, data, seed,
    strategy, library versions) and, while training, a `BackupAndRestore` backup in `backup/`:
    run the same command again after a kill and training goes on from the last finished epoch.
    A model whose config has `lr_patience` > 0 (the speech recognisers) also gets
    `keras.callbacks.ReduceLROnPlateau` on the validation loss (`lr_factor`,
    `min_learning_rate`); `history.csv` then records each epoch's rate, and a resumed run goes
    on with the rate and patience it had.

    Args:
        name: str. A registered model name.
        data: str or None. A data source for `mmzoo.data.load`; None: the bundled easy-VQA for
            the models it fits (image and text), else an error naming the sources that fit.
        epochs: int. Training epochs.
        batch_size: int. Global batch size (split across replicas by the strategy).
        out: str or None. Output folder (None: `runs/NAME`, as `mmzoo train` writes).
        seed: int. Seed of weights initialisation and shuffling.
        overrides: dict. Config overrides for `mmzoo.build`.
        strategy: str. `default`, `mirrored`, `multi_worker` or `tpu` (`make_strategy`).
        mixed_precision: bool. `mixed_float16` on GPU, `mixed_bfloat16` on CPU and TPU (for
            this call only: the global dtype policy is restored when it returns).
        jit_compile: bool. Compile the train and eval steps with XLA.
        augment: bool. Augment training waveforms (audio models).
        verbose: int. Keras verbosity (1: progress bars).
        on_error: str. `raise` or `skip` bad items of the data (`mmzoo.data.load`).
        callbacks: list of `keras.callbacks.Callback`. More callbacks for `fit` (they run
            before the best model and the backup are written in each epoch).
        overwrite: bool. Train again over a finished run in `out` (one with `model.keras` and no
            backup), removing the files a run writes and nothing else; without it such an `out`
            fails. An unfinished run (a backup in it) is resumed either way.
        cache: str. Where each split's prepared examples are kept after the first epoch
            (`mmzoo.data.pipeline`): `auto` (default: none for text alone; images and audio
            in memory when estimated at no more than 10% of the machine's memory and 2 GiB,
            else on disk), `memory`,
            `disk` (in `out/cache/`, removed when training ends; a killed run resumes with
            it), or `none`. What was chosen, and the disk cache's size, is written to
            `out/cache.json`.
        feature_cache: str. A model's fixed front ends (a frozen pretrained image backbone, the
            MFCC layer of an audio model: `mmzoo.contract.front_ends`) are computed
            once per example and the rest of the model trains on what they give (MFCCs are
            then augmented as MFCCs, `mmzoo.data.waveform.augment_mfcc`): `auto` (default)
            caches them as `cache` says, `memory` in memory, `disk` in `out/feature_cache/`
            (keyed by the front ends and the split, kept for later runs), `off` runs the whole
            model every step (and augments waveforms). The saved model is the whole graph
            either way.

    Returns:
        `(model, history)`: the best model (reloaded from `out/model.keras`) and the Keras
        History of this call (the epochs it ran), with `history.best` the best epoch of the
        whole run (`{"epoch", "epochs", "metrics"}`, resumed epochs included) and
        `history.resumed_from` the epochs a backup had already done.

    Examples:
    ```python
    model, history = mmzoo.train("vqa_cnn_lstm", "easy_vqa", epochs=2, out="runs/vqa")
    ```
    """
    out = os.path.join("runs", name) if out is None else out
    previous = keras.mixed_precision.global_policy()
    if mixed_precision:
        on_gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "mixed_bfloat16")
    try:
        return _train(name, data, epochs=epochs, batch_size=batch_size, out=out, seed=seed,
                      overrides=overrides, strategy=strategy, mixed_precision=mixed_precision,
                      jit_compile=jit_compile, augment=augment, verbose=verbose,
                      on_error=on_error, callbacks=callbacks, overwrite=overwrite,
                      cache=cache, feature_cache=feature_cache)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(name, data, *, epochs, batch_size, out, seed, overrides, strategy, mixed_precision,
           jit_compile, augment, verbose, on_error, callbacks, overwrite, cache, feature_cache):
    if cache not in CACHES:
        raise InvalidValue(f"cache must be one of {list(CACHES)}, got {cache!r}")
    if feature_cache not in FEATURE_CACHES:
        raise InvalidValue(f"feature_cache must be one of {list(FEATURE_CACHES)}, got "
                           f"{feature_cache!r}")
    for what, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValue(f"{what} must be a whole number of at least 1, got {value!r}")
    dist = make_strategy(strategy) if isinstance(strategy, str) else strategy
    strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
    spec = get_spec(name)
    data = data or default_source(spec)
    is_chief, index, workers, pipeline_id = _worker(dist)
    folder = out if isinstance(out, RunFolder) else RunFolder(out)
    if not is_chief:  # a cluster's other workers write their (identical) files to a scratch
        folder = RunFolder(os.path.join(folder.path, f".worker-{index}"))
    with folder.held():
        folder.refuse_foreign(RUN_FILES, fix="move them away, or choose another --out (mmzoo "
                                             "never writes over what it did not write)")
        _check_finished(folder, overwrite)  # before anything is read or written
        started = time.perf_counter()
        try:
            run = _prepare(folder, name, spec, data, dict(overrides or {}), locals_of(
                epochs=epochs, batch_size=batch_size, seed=seed, strategy=strategy_name,
                mixed_precision=mixed_precision, jit_compile=jit_compile, augment=augment,
                on_error=on_error, cache=cache, feature_cache=feature_cache, verbose=verbose,
                workers=workers, pipeline_id=pipeline_id), dist)
        except BaseException:
            # nothing trained: what this run wrote goes (its warnings, which the error may
            # point to, stay), and no name stays claimed
            folder.rollback(keep=("warnings.txt",))
            raise
        history = _fit(folder, run, epochs, verbose, callbacks)
        model = _finish(folder, run, history, is_chief, started, verbose)
    if not is_chief:
        shutil.rmtree(folder.path, ignore_errors=True)
    return model, history


def locals_of(**kwargs):
    """The options of a run, as a namespace."""
    return types.SimpleNamespace(**kwargs)


def _prepare(folder, name, spec, data, overrides, opts, dist):
    """Everything before `fit`: the data listed and checked, the config adapted to it, the run
    recorded (`config.json`), the model built and its pipelines made. Returns the run as a
    namespace."""
    keras.utils.set_random_seed(opts.seed)
    src = open_source(data, on_error=opts.on_error)
    task = get_task(spec.task)
    # every worker adapts on the whole training split (the same vocabulary and classes)...
    config = {**adapt(name, src.fit_splits(spec.task, decode=False)[0], config=overrides),
              **overrides}
    config = _clip_length(src, spec, config, overrides, opts.verbose)
    # ... and trains on its own shards of prepared data
    by_file, sharing = (_share(src, opts.workers, opts.pipeline_id)
                        if opts.strategy == "multi_worker" else (False, ""))
    train_raw, val_raw = src.fit_splits(spec.task)
    cfg = spec.make_config(**config)
    record = _run_record(name, absolute_source(data), opts, overrides, _recorded_config(cfg))
    record.update(on_error=opts.on_error, data_fingerprint=src.fingerprint(),
                  split_rule=SPLIT_RULE, module=spec.module)
    backup = folder.file("backup")
    done = _check_same_run(folder, backup, record)
    run_seed = opts.seed
    if not done:  # a fresh run never reads a cache it did not make
        _remove_caches(folder)
    else:  # a resumed run goes on with its random stream, not epoch 1's again
        run_seed = _resumed_seed(opts.seed, done)
        keras.utils.set_random_seed(run_seed)
    folder.write_json("config.json", record)
    if opts.verbose and opts.strategy != "default":
        print(f"strategy {opts.strategy}: {dist.num_replicas_in_sync} replicas in sync",
              file=sys.stderr, flush=True)
    with dist.scope():
        model = build(name, **config)
    if opts.verbose:
        _say_resampling(src, model)
        _say_cut(src, spec, model)
    fit_model, caches, cache_dir, fronts = _feature_training(folder, model, opts, dist)
    if opts.jit_compile:
        fit_model.jit_compile = True
    if cache_dir == folder.file("cache"):   # where a disk cache of examples would go
        folder.claim("cache")
    train_ds = pipeline(model, train_raw, batch_size=opts.batch_size, training=True,
                        seed=run_seed, augment=opts.augment, features=bool(fronts),
                        cache=caches["train"], cache_dir=cache_dir)
    val_ds = pipeline(model, val_raw, batch_size=opts.batch_size, features=bool(fronts),
                      cache=caches["validation"], cache_dir=cache_dir)
    cache_info = {"train": train_ds.cache_info, "validation": val_ds.cache_info}
    folder.record(*(n for n in ("cache", "feature_cache") if folder.ours(n)))  # what they hold
    if opts.verbose:
        print("cache: " + "; ".join(f"{split} {_described(info)}"
                                    for split, info in cache_info.items()),
              file=sys.stderr, flush=True)
    if opts.strategy == "multi_worker":
        train_ds, val_ds = _sharded(train_ds, val_ds, by_file, sharing, opts.verbose)
    return types.SimpleNamespace(
        spec=spec, task=task, src=src, cfg=cfg, model=model, fit_model=fit_model,
        train=train_ds, validation=val_ds, raw={"train": train_raw, "validation": val_raw},
        cache_info=cache_info, batch_size=opts.batch_size)


def _clip_length(src, spec, config, overrides, verbose):
    """`config` with the clip length of a model that takes fixed-length audio chosen from the
    training clips' lengths when the user gave none (`waveform.choose_clip_seconds`); says
    what it chose, and how many clips are cut (to their loudest part) with the `--set` that
    keeps them whole."""
    fields = {f.name: f.default for f in dataclasses.fields(spec.config)}
    seconds = src.audio_seconds("train") if "clip_seconds" in fields else []
    if not len(seconds):
        return config
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if verbose else \
        (lambda line: None)
    if "clip_seconds" not in overrides:
        clip = waveform.choose_clip_seconds(seconds)
        config = {**config, "clip_seconds": clip}
        held = sum(s <= clip + 1e-6 for s in seconds)
        say(f"audio: clip length {clip:g} s, chosen from the {len(seconds):,} training clips ("
            f"{_percent(held, len(seconds))} of them at most that long, the longest "
            f"{max(seconds):.2f} s; at most {waveform.MAX_CLIP_SECONDS:g} s); --set "
            "clip_seconds=S chooses another")
    line = waveform.cut_line(seconds, config.get("clip_seconds", fields["clip_seconds"]),
                             "training clips")
    if line:
        say(line)
    return config


def _say_cut(src, spec, model):
    """For a model of fixed-length audio whose length is its own (a pretrained encoder's
    second, no `clip_seconds` to set): how many training clips it cuts to their loudest part."""
    length = contract.input_shapes(model).get("audio", (None,))[0]
    if length is None or "clip_seconds" in {f.name for f in dataclasses.fields(spec.config)}:
        return
    line = waveform.cut_line(src.audio_seconds("train"), length / contract.sample_rate(model),
                             "training clips", fix=False)
    if line:
        print(f"{line} (the model's own clip length)", file=sys.stderr, flush=True)


def _percent(part, whole):
    """`part` of `whole` as a percentage that says 100% only when it is all."""
    share = 100.0 * part / whole
    return "100%" if part == whole else f"{min(share, 99.9):.1f}%"


def _feature_training(folder, model, opts, dist):
    """`(model to fit, cache of each split, cache folder, fixed front ends)`: with fixed front
    ends (`mmzoo.contract.front_ends`) and `feature_cache` not `off`, the feature model
    (`mmzoo.features.feature_model`) trains on their outputs, cached as `feature_cache` says
    (`disk`: in `feature_cache/`, kept for later runs)."""
    fronts = front_ends(model) if opts.feature_cache != "off" else {}
    caches = {"train": opts.cache, "validation": opts.cache}
    cache_dir = folder.file("cache")
    if not fronts:
        return model, caches, cache_dir, fronts
    with dist.scope():
        fit_model = feature_model(model, fronts)
    if opts.feature_cache == "disk":  # keyed by the data, the preprocessing and the front ends
        folder.claim("feature_cache")
        cache_dir = folder.file("feature_cache")
        caches = {split: "disk" for split in caches}
    elif opts.feature_cache == "memory":
        caches = {split: "memory" for split in caches}
    if opts.verbose:
        named = " and ".join({"image": "frozen image backbone"}.get(
            n, "MFCC" if isinstance(front, MFCC) else "frozen audio backbone")
            for n, front in fronts.items())
        print(f"{named}: computed once per example before the cache ("
              f"{opts.feature_cache if opts.feature_cache != 'auto' else opts.cache}); the rest "
              "of the model trains on them", file=sys.stderr, flush=True)
    return fit_model, caches, cache_dir, fronts


def _sharded(train_ds, val_ds, by_file, sharing, verbose):
    """The pipelines of a multi-worker run, each worker reading its share."""
    if verbose:
        print(f"multi_worker: each worker reads {sharing}", file=sys.stderr, flush=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if by_file    # the source shards itself
        else tf.data.experimental.AutoShardPolicy.DATA)
    return train_ds.with_options(options), val_ds.with_options(options)


def _fit(folder, run, epochs, verbose, callbacks):
    """`fit` with the run's callbacks: resume from a backup, the learning-rate schedule, the
    history, TensorBoard, the best model, the backup last in each epoch, and what was written
    recorded in the run's ledger at each epoch's end."""
    for name in ("history.csv", "logs", "backup"):
        folder.claim(name)
    restore = _Restore(folder.file("backup"))
    best = _BestModel(folder, saved=run.model)
    plateau = _plateau(run.cfg, verbose)
    resume = _Resume(folder.file("history.csv"), best, epochs, verbose, plateau=plateau)
    # Order matters: restore first; the learning-rate schedule before the log (which records
    # its rate) and before `_Resume` (which gives it the finished epochs); the backup last in
    # each epoch, so that a kill at any point leaves history.csv, model.keras and the backup
    # consistent (see _BestModel).
    backup = _Backup(restore, best, folder)
    callbacks = [_Writing(folder), restore, *([plateau] if plateau else []), resume,
                 keras.callbacks.CSVLogger(folder.file("history.csv"), append=True),
                 keras.callbacks.TensorBoard(folder.file("logs")), *(callbacks or ()),
                 best, backup]
    try:
        with warnings.catch_warnings():
            if run.train.cardinality() == tf.data.UNKNOWN_CARDINALITY:
                # Every caption is an example (captioning): Keras learns the epoch's length at
                # the end of the first epoch, which it reports as running out of data.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = run.fit_model.fit(run.train, validation_data=run.validation,
                                        epochs=epochs, verbose=verbose, callbacks=callbacks,
                                        shuffle=False)  # the pipeline shuffles
    except BaseException:
        if not backup.written and not resume.resumed_from:
            # nothing trained to keep (a data error at the first batch, an interrupt): what
            # this run wrote goes, as for a failure before training
            folder.rollback(keep=("warnings.txt",))
        raise
    finally:
        folder.record(*RECORDED)
    history.resumed_from = resume.resumed_from
    return history


def _finish(folder, run, history, is_chief, started, verbose):
    """After `fit`: the caches' sizes recorded and the example caches removed, the best model
    reloaded, what it learned checked, `training.json` and the model card written."""
    for info in run.cache_info.values():
        info["disk_bytes"] = cache_bytes(info)
    folder.write_json("cache.json", run.cache_info)
    _remove_caches(folder)  # kept only to resume
    model = keras.saving.load_model(folder.file("model.keras"))
    history.best = best_epoch(read_history(folder.file("history.csv")))  # the whole run's
    history.learned_nothing = None
    history.cache = run.cache_info
    if is_chief:
        history.learned_nothing = run.task.learned_nothing_after_training(
            model, run.src.fit_splits(run.spec.task,
                                      decode=run.task.validation_needs_decoding())[1],
            history.best, run.batch_size, _cause(history.best), evaluate)
        if history.learned_nothing and verbose:
            print(f"warning: {history.learned_nothing}", file=sys.stderr, flush=True)
        _write_training_record(folder, model, started, history, run.raw)
    return model


def _cause(best):
    epochs = best["epochs"] if best else "?"
    return (f"likely causes: too little training data or too few epochs ({epochs}); train "
            "longer with --epochs, or on more data")


def _write_training_record(folder, model, started, history, splits):
    """`training.json` (time, machine, epochs, examples per split) and the run's model card
    `README.md` (`mmzoo.card`), at the end of a run."""
    examples = {}
    for split, ds in splits.items():
        count = int(ds.cardinality())
        if count >= 0:  # a streamed source does not know it without reading it
            examples[split] = count
    record = {"seconds": round(time.perf_counter() - started, 1),
              "epochs_run": len(history.epoch), "resumed_from": history.resumed_from,
              "best_epoch": (history.best or {}).get("epoch"), "machine": machine(),
              "examples": examples,
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds")}
    folder.write_json("training.json", record)
    write_card(folder, model)


FEATURE_CACHES = ("auto", "memory", "disk", "off")


def _say_resampling(src, model):
    """One line per rate at which the source's audio is read and the model's differs: the
    pipeline resamples it (librosa), and `--set sample_rate=` would keep it."""
    if "audio" not in contract.input_shapes(model):
        return
    rate = contract.sample_rate(model)
    for read, count in sorted(src.audio_rates().items()):
        if read != rate:
            print(f"audio: {count:,} recording(s) at {read:,} Hz are resampled to the model's "
                  f"{rate:,} Hz; --set sample_rate={read} trains at their own rate",
                  file=sys.stderr, flush=True)


def _share(src, workers, pipeline):
    """How the workers share the data: `(True, description)` when `src` is prepared TFDS data
    (`mmzoo data SOURCE --prepare DIR`) with at least one shard per worker in each split read,
    which is then made to read only this worker's shards; else `(False, description)`: each
    worker reads everything and keeps its share (`AutoShardPolicy.DATA`)."""
    if hasattr(src, "read_by_worker"):
        splits = [s for s in ("train", "validation") if s in src.split_names()]
        shards = {split: src.shards(split) for split in splits}
        if shards and min(shards.values()) >= workers:
            src.read_by_worker(workers, pipeline)
            return True, (f"its own shards of the prepared files ({shards} shards, {workers} "
                          f"workers; this is worker {pipeline})")
        hint = (f"its splits have fewer shards than the {workers} workers; prepare with "
                f"--shards {workers} or more to shard it by file")
    else:
        hint = ("prepare it with `mmzoo data SOURCE --prepare DIR --shards N` (N at least "
                f"{workers}) to shard it by file")
    return False, f"everything and keeps 1/{workers} of the examples ({hint})"


def _plateau(cfg, verbose):
    """The learning-rate schedule a model's config asks for, or None: with `lr_patience` > 0,
    `keras.callbacks.ReduceLROnPlateau` multiplies the rate by `lr_factor` after `lr_patience`
    epochs without a lower validation loss, down to `min_learning_rate`."""
    patience = getattr(cfg, "lr_patience", 0)
    if not patience:
        return None
    return keras.callbacks.ReduceLROnPlateau(MONITOR, factor=cfg.lr_factor, patience=patience,
                                             min_lr=cfg.min_learning_rate,
                                             verbose=1 if verbose else 0)


def _described(info):
    """`memory (estimated 5.2 MB)`-style text of a pipeline's `cache_info`."""
    text = info["mode"]
    if info.get("estimate_bytes") is not None:
        text += f" (estimated {info['estimate_bytes'] / 1e6:,.1f} MB)"
    return text


# The names `train` writes in its output folder, each claimed in the run's ledger
# (`mmzoo.run.RunFolder`) when it is written: a user's file or folder of one of these names is
# refused before anything is written. `--overwrite` removes what is still as the run left it,
# with the `evaluation_*` files `mmzoo evaluate` wrote, and keeps `feature_cache/` (its keyed
# caches are read again only by a run on exactly the same data, preprocessing and front ends).
RUN_FILES = ("model.keras", "history.csv", "config.json", "warnings.txt", "logs", "backup",
             "model.pending.keras", "model.pending.json", "cache", "cache.json",
             "training.json", "README.md", "feature_cache")
# What `fit` changes as it goes, recorded at each epoch's end
RECORDED = ("history.csv", "logs", "backup", "model.keras", "model.pending.keras",
            "model.pending.json")


def _check_finished(folder, overwrite):
    """Refuse to train over a finished run unless `overwrite`; with it, remove what the run
    wrote (a finished or an unfinished one: what its ledger claims, still as it left it) and
    nothing else. An unfinished run (a backup in it) is otherwise resumed."""
    finished = (os.path.isfile(folder.file("model.keras"))
                and not os.path.isdir(folder.file("backup")))
    if overwrite:
        kept = folder.remove_ours(keep=("feature_cache",))
        if kept:
            raise InvalidValue(
                f"--overwrite removed the run in {folder.path} but not "
                + ", ".join(kept) + "; move them away (mmzoo removes only what is still as it "
                "wrote it), then train again")
        return
    if finished:
        raise InvalidValue(f"{folder.path} holds a finished run (model.keras, no backup to "
                           "resume); pass --overwrite (overwrite=True) to train it again from "
                           "scratch, or choose another --out")


def _remove_caches(folder):
    """Remove the run's example caches (mmzoo's artifacts in `cache/`), then `cache/` when it is
    left empty."""
    root = folder.file("cache")
    for name in artifacts(root, "examples"):
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    if folder.ours("cache") and not (os.path.isdir(root) and os.listdir(root)):
        if os.path.isdir(root):
            os.rmdir(root)
        folder.forget("cache")


def _resumed_seed(seed, done):
    """The seed of a run resumed after `done` epochs: another stream than the first process's,
    so the resumed epochs do not replay epoch 1's shuffling and augmentation."""
    return (int(seed) * 1_000_003 + int(done) * 7_919) % 2**31


def _check_same_run(folder, backup, record):
    """The epochs done by the unfinished run in `folder` that this command resumes (0 when
    there is none); a backup left by a different command, or of data that changed since, must
    not be resumed by this one."""
    path = folder.file("config.json")
    metadata = os.path.join(backup, "training_metadata.json")
    if not (os.path.exists(metadata) and os.path.exists(path)):
        return 0
    with open(path) as f:
        previous = json.load(f)
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    keys = ("model", "data", "on_error", "overrides", "seed", "batch_size", "config",
            "split_rule")
    changed = [k for k in keys if previous.get(k) != record.get(k)]
    if changed:
        raise InvalidValue(
            f"{backup} holds an unfinished run with different {changed} (see "
            f"{path}); run the same command to resume it, pass --overwrite to start again, or "
            "choose another --out")
    if previous.get("data_fingerprint") != record.get("data_fingerprint"):
        raise InvalidValue(
            f"{backup} holds an unfinished run on {record['data']} as it was before its files "
            "changed (their names, sizes or times differ); resuming would mix two data sets: "
            "pass --overwrite to train from scratch on the data as it is now, or choose "
            "another --out")
    try:
        with open(metadata) as f:
            return int(json.load(f).get("epoch", 0))
    except (OSError, ValueError, TypeError):
        return 0
