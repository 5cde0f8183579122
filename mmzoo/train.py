"""Fit a registered model on a data source: Keras callbacks, resume after a kill, tf.distribute."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import time
import warnings

import keras
import tensorflow as tf

from mmzoo.errors import InvalidValue

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


MONITOR = "val_loss"


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
    the epoch's best model (`_BestModel.commit`)."""

    def __init__(self, restore, best):
        super().__init__()
        self.restore, self.best = restore, best

    def on_epoch_end(self, epoch, logs=None):
        self.restore.write()
        self.best.commit()


class _BestModel(keras.callbacks.Callback):
    """Keeps `model.keras` the best epoch by validation loss, committed together with the backup.

    `saved`: the model to save when it is not the one `fit` runs (frozen-feature training fits
    `mmzoo.models.features.feature_model`, which shares the whole model's weights).

    A better epoch's model is first written as `model.pending.keras` (and its epoch and value in
    `model.pending.json`); once the backup of that epoch is written, `commit` moves it onto
    `model.keras`. A kill before the backup leaves a pending model of an epoch the resumed run
    repeats, which `resolve` discards; a kill after it, one the backup counts, which `resolve`
    commits. So at any kill `model.keras` is the best of the epochs `history.csv` keeps.
    """

    def __init__(self, path, saved=None):
        super().__init__()
        self.path, self.saved = path, saved
        self.pending = path.replace(".keras", ".pending.keras")
        self.pending_info = path.replace(".keras", ".pending.json")
        self.best = float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR)
        if value is None or not value < self.best:  # also skips NaN
            return
        self.best = float(value)
        (self.saved or self.model).save(self.pending, overwrite=True)
        with open(self.pending_info, "w") as f:
            json.dump({"epoch": epoch, MONITOR: self.best}, f)

    def commit(self):
        if os.path.exists(self.pending_info):
            if os.path.exists(self.pending):  # gone if a kill came between these two lines
                os.replace(self.pending, self.path)
            os.remove(self.pending_info)

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


def read_history(path):
    """The rows of a `history.csv` (dicts of strings), or [] when there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def best_epoch(rows):
    """`{"epoch": 1-based, "epochs": n, "metrics": {...}}` of the row with the lowest
    validation loss, or None for no rows."""
    if not rows:
        return None
    values = [float(r[MONITOR]) if r.get(MONITOR) else float("inf") for r in rows]
    i = min(range(len(rows)), key=values.__getitem__)
    return {"epoch": i + 1, "epochs": len(rows),
            "metrics": {k: _rounded(k, v) for k, v in rows[i].items() if k != "epoch"}}


def _rounded(key, value):
    """A history value for display: 4 decimals, a learning rate 3 significant digits."""
    value = float(value)
    return float(f"{value:.3g}") if key == "learning_rate" else round(value, 4)


def _recorded_config(cfg):
    """The model config as `config.json` records it: an adapted `vocabulary` (up to
    `MAX_TOKENS` words, carried by the model itself) as its size and SHA-256, so the record
    stays small and still tells two runs' vocabularies apart."""
    import hashlib

    config = dataclasses.asdict(cfg)
    if isinstance(config.get("vocabulary"), (list, tuple)):
        tokens = list(config["vocabulary"])
        digest = hashlib.sha256("\n".join(tokens).encode()).hexdigest()
        config["vocabulary"] = {"size": len(tokens), "sha256": digest}
    return config


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
            MFCC layer of an audio model: `mmzoo.models.features.front_ends`) are computed
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
    from mmzoo.data import adapt, open_source, pipeline
    from mmzoo.artifacts import Ledger
    from mmzoo.data.pipeline import CACHES, cache_bytes
    from mmzoo.data.sources import absolute_source, default_source
    from mmzoo.models.features import feature_model, front_ends
    from mmzoo.registry import build, get_spec

    if cache not in CACHES:
        raise InvalidValue(f"cache must be one of {list(CACHES)}, got {cache!r}")
    if feature_cache not in FEATURE_CACHES:
        raise InvalidValue(f"feature_cache must be one of {list(FEATURE_CACHES)}, got "
                           f"{feature_cache!r}")
    dist = make_strategy(strategy) if isinstance(strategy, str) else strategy
    strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
    spec = get_spec(name)
    data = data or default_source(spec)
    overrides = dict(overrides or {})
    is_chief, index, workers, pipeline_id = _worker(dist)
    # Non-chief workers of a cluster write their (identical) files to a scratch folder.
    work = out if is_chief else os.path.join(out, f".worker-{index}")
    _check_finished(work, overwrite)  # before anything is read or written
    Ledger(work).claim(*RUN_FILES)  # what this run writes: all that --overwrite removes
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    src = open_source(data, on_error=on_error)
    # every worker adapts on the whole training split (the same vocabulary and classes)...
    config = {**adapt(name, src.fit_splits(spec.task, decode=False)[0], config=overrides),
              **overrides}
    # ... and trains on its own shards of prepared data
    if strategy_name == "multi_worker":
        by_file, sharing = _share(src, workers, pipeline_id)
    train_raw, val_raw = src.fit_splits(spec.task)
    cfg = spec.make_config(**config)
    record = _run_record(name, absolute_source(data), epochs, batch_size, seed, overrides,
                         strategy_name, mixed_precision, jit_compile, augment,
                         _recorded_config(cfg))
    record["on_error"] = on_error
    record["data_fingerprint"] = src.fingerprint()
    backup = os.path.join(work, "backup")
    done = _check_same_run(work, backup, record)
    cache_root = os.path.join(work, "cache")
    run_seed = seed
    if not done:  # a fresh run never reads a cache it did not make
        _remove_caches(cache_root)
    else:  # a resumed run goes on with its random stream, not epoch 1's again
        run_seed = _resumed_seed(seed, done)
        keras.utils.set_random_seed(run_seed)
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(record, f, indent=2)

    if verbose and strategy_name != "default":
        print(f"strategy {strategy_name}: {dist.num_replicas_in_sync} replicas in sync",
              file=sys.stderr, flush=True)
    with dist.scope():
        model = build(name, **config)
    if verbose:
        _say_resampling(src, model)
    fronts = front_ends(model) if feature_cache != "off" else {}
    caches = {"train": cache, "validation": cache}
    cache_dir = cache_root
    fit_model = model
    if fronts:
        with dist.scope():
            fit_model = feature_model(model, fronts)
        if feature_cache == "disk":  # keyed by the data, the preprocessing and the front ends
            cache_dir = os.path.join(work, "feature_cache")
            caches = {split: "disk" for split in caches}
        elif feature_cache == "memory":
            caches = {split: "memory" for split in caches}
        if verbose:
            named = " and ".join({"image": "frozen image backbone", "audio": "MFCC"}[n]
                                 for n in fronts)
            print(f"{named}: computed once per example before the cache ("
                  f"{feature_cache if feature_cache != 'auto' else cache}); the rest of the "
                  "model trains on them", file=sys.stderr, flush=True)
    if jit_compile:
        fit_model.jit_compile = True
    features = bool(fronts)
    train_ds = pipeline(model, train_raw, batch_size=batch_size, training=True,
                        seed=run_seed, augment=augment, features=features,
                        cache=caches["train"], cache_dir=cache_dir)
    val_ds = pipeline(model, val_raw, batch_size=batch_size, features=features,
                      cache=caches["validation"], cache_dir=cache_dir)
    cache_info = {"train": train_ds.cache_info, "validation": val_ds.cache_info}
    if verbose:
        print("cache: " + "; ".join(f"{split} {_described(info)}"
                                    for split, info in cache_info.items()),
              file=sys.stderr, flush=True)
    if strategy_name == "multi_worker":
        if verbose:
            print(f"multi_worker: each worker reads {sharing}", file=sys.stderr, flush=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF if by_file    # the source shards itself
            else tf.data.experimental.AutoShardPolicy.DATA)
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)

    path = os.path.join(work, "model.keras")
    history_path = os.path.join(work, "history.csv")
    restore, best = _Restore(backup), _BestModel(path, saved=model)
    plateau = _plateau(cfg, verbose)
    resume = _Resume(history_path, best, epochs, verbose, plateau=plateau)
    # Order matters: restore first; the learning-rate schedule before the log (which records
    # its rate) and before `_Resume` (which gives it the finished epochs); the backup last in
    # each epoch, so that a kill at any point leaves history.csv, model.keras and the backup
    # consistent (see _BestModel).
    callbacks = [restore, *([plateau] if plateau else []), resume,
                 keras.callbacks.CSVLogger(history_path, append=True),
                 keras.callbacks.TensorBoard(os.path.join(work, "logs")), *(callbacks or ()),
                 best, _Backup(restore, best)]
    with warnings.catch_warnings():
        if train_ds.cardinality() == tf.data.UNKNOWN_CARDINALITY:
            # Every caption is an example (captioning): Keras learns the epoch's length at the
            # end of the first epoch, which it reports as running out of data.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = fit_model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                                verbose=verbose, callbacks=callbacks,
                                shuffle=False)  # the pipeline shuffles
    for info in cache_info.values():
        info["disk_bytes"] = cache_bytes(info)
    with open(os.path.join(work, "cache.json"), "w") as f:
        json.dump(cache_info, f, indent=2)
    _remove_caches(cache_root)  # kept only to resume
    model = keras.saving.load_model(path)
    history.best = best_epoch(read_history(history_path))  # this process's own log
    history.learned_nothing = None
    if is_chief:
        history.learned_nothing = _learned_nothing(model, spec, src, history.best, batch_size)
        if history.learned_nothing and verbose:
            print(f"warning: {history.learned_nothing}", file=sys.stderr, flush=True)
    history.cache = cache_info
    if is_chief:
        _write_training_record(work, model, started, history, resume.resumed_from,
                               {"train": train_raw, "validation": val_raw})
    if not is_chief:
        shutil.rmtree(work, ignore_errors=True)
    history.resumed_from = resume.resumed_from
    return model, history


def _write_training_record(work, model, started, history, resumed_from, splits):
    """`training.json` (time, machine, epochs, examples per split) and the run's model card
    `README.md` (`mmzoo.card`), at the end of a run."""
    import datetime

    from mmzoo.card import machine, write

    examples = {}
    for split, ds in splits.items():
        count = int(ds.cardinality())
        if count >= 0:  # a streamed source does not know it without reading it
            examples[split] = count
    record = {"seconds": round(time.perf_counter() - started, 1),
              "epochs_run": len(history.epoch), "resumed_from": resumed_from,
              "best_epoch": (history.best or {}).get("epoch"), "machine": machine(),
              "examples": examples,
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds")}
    with open(os.path.join(work, "training.json"), "w") as f:
        json.dump(record, f, indent=2)
    write(work, model)


FEATURE_CACHES = ("auto", "memory", "disk", "off")
CHECKED_EXAMPLES = 64  # validation examples a captioner or recogniser is tried on after training


def _learned_nothing(model, spec, src, best, batch_size):
    """One line when the trained model learned nothing (`mmzoo.evaluate.learned_nothing`),
    else None: a classifier's best validation accuracy no better than the validation split's
    most frequent class (its labels read without decoding), a captioner or recogniser tried
    on the first `CHECKED_EXAMPLES` validation examples."""
    import numpy as np

    from mmzoo.evaluate import evaluate, learned_nothing

    epochs = best["epochs"] if best else "?"
    cause = (f"likely causes: too little training data or too few epochs ({epochs}); train "
             "longer with --epochs, or on more data")
    val = src.fit_splits(spec.task, decode=spec.task not in ("classification", "vqa"))[1]
    if spec.task in ("classification", "vqa"):
        accuracy = (best or {}).get("metrics", {}).get("val_accuracy")
        if accuracy is None:
            return None
        from mmzoo.data.preprocessor import Preprocessor

        names = Preprocessor.label_string(np.concatenate(
            [b for b in val.map(lambda e: e["label"]).batch(4096).as_numpy_iterator()]))
        labels, counts = np.unique(names.numpy(), return_counts=True)
        result = {"task": spec.task, "model": model.name, "examples": int(counts.sum()),
                  "accuracy": accuracy, "labels": [v.decode() for v in labels],
                  "confusion_matrix": [[int(c)] for c in counts]}
        return learned_nothing(result, cause, split="validation")
    if spec.task in ("captioning", "transcription"):
        return learned_nothing(evaluate(model, val.take(CHECKED_EXAMPLES),
                                        batch_size=batch_size), cause)
    return None


def _say_resampling(src, model):
    """One line per rate at which the source's audio is read and the model's differs: the
    pipeline resamples it (librosa), and `--set sample_rate=` would keep it."""
    from mmzoo import contract

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


# Files `train` writes in its output folder (claimed in its `mmzoo.artifacts.Ledger` when they
# do not exist yet): what `overwrite=True` removes, with the `evaluation_*` files `mmzoo evaluate`
# claims, and nothing else. `feature_cache/` is kept: its keyed caches are read again only by a
# run on exactly the same data, preprocessing and front ends (a retrain with other head settings).
RUN_FILES = ("model.keras", "history.csv", "config.json", "warnings.txt", "logs", "backup",
             "model.pending.keras", "model.pending.json", "cache", "cache.json",
             "training.json", "README.md")


def _check_finished(work, overwrite):
    """Refuse to train over a finished run unless `overwrite`; with it, remove what the run
    wrote (a finished or an unfinished one: the files its ledger claims) and nothing else. An
    unfinished run (a backup in it) is otherwise resumed."""
    from mmzoo.artifacts import Ledger

    finished = (os.path.isfile(os.path.join(work, "model.keras"))
                and not os.path.isdir(os.path.join(work, "backup")))
    if overwrite:
        Ledger(work).remove()
        return
    if finished:
        raise InvalidValue(f"{work} holds a finished run (model.keras, no backup to resume); "
                           "pass --overwrite (overwrite=True) to train it again from scratch, "
                           "or choose another --out")


def _remove_caches(folder):
    """Remove the example caches in `folder` (mmzoo's artifacts only), then the folder when
    this run made it and it is left empty."""
    from mmzoo.artifacts import Ledger, artifacts

    for name in artifacts(folder, "examples"):
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    work, base = os.path.split(folder)
    if os.path.isdir(folder) and not os.listdir(folder) and base in Ledger(work).claimed():
        os.rmdir(folder)


def _resumed_seed(seed, done):
    """The seed of a run resumed after `done` epochs: another stream than the first process's,
    so the resumed epochs do not replay epoch 1's shuffling and augmentation."""
    return (int(seed) * 1_000_003 + int(done) * 7_919) % 2**31


def _check_same_run(work, backup, record):
    """The epochs done by the unfinished run in `work` that this command resumes (0 when there
    is none); a backup left by a different command, or of data that changed since, must not be
    resumed by this one."""
    path = os.path.join(work, "config.json")
    metadata = os.path.join(backup, "training_metadata.json")
    if not (os.path.exists(metadata) and os.path.exists(path)):
        return 0
    with open(path) as f:
        previous = json.load(f)
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    keys = ("model", "data", "on_error", "overrides", "seed", "batch_size", "config")
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
