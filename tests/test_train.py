"""`mmzoo.train`: resume cannot lose an epoch, and each flag does what it says.

A kill at any point of an epoch's end leaves `history.csv`, the best model and the backup
consistent, and training the same run again completes it.

A kill is simulated in-process by an exception that skips the rest of the epoch's callbacks,
raised just before one of the three writes of the epoch: the history row, the best model, the
backup. (tests/test_cli.py also kills a real `mmzoo train` with SIGKILL.)
"""

import csv
import json
import os
import sys

import keras
import numpy as np
import pytest

import mmzoo
from conftest import news_rows

ROWS = 240


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def news(data_dir, tmp_path_factory):
    """The first 240 AG News rows: a quick, real text-classification source."""
    return f"csv:{news_rows(data_dir, tmp_path_factory.mktemp('news'), ROWS)}"


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_training(news, run, epochs=4):
    config = {**mmzoo.registry.get_spec("text_word_vector_mlp").test_config,
              "learning_rate": 3e-2}
    config.pop("labels")
    return mmzoo.train("text_word_vector_mlp", news, epochs=epochs, batch_size=16, out=str(run),
                       overrides=config, verbose=0)


def kill_before(monkeypatch, target, name, epoch):
    """Make `target.name` raise `Killed` when called at the end of `epoch` (0-based)."""
    original = getattr(target, name)
    calls = []

    def wrapper(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == epoch + 1:
            raise Killed()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def killed_then_resumed(monkeypatch, epoch, train):
    """`train()` killed before its history row of `epoch` (0-based), then run again: what the
    second call returns."""
    with monkeypatch.context() as patch:
        kill_before(patch, keras.callbacks.CSVLogger, "on_epoch_end", epoch=epoch)
        with pytest.raises(Killed):
            train()
    return train()


WRITES = {
    "history row": (keras.callbacks.CSVLogger, "on_epoch_end"),
    "best model": (keras.Model, "save"),
    "backup": (keras.callbacks.BackupAndRestore, "_save_model"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_kill_before_any_write_of_an_epoch_loses_nothing(write, news, tmp_path, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        kill_before(patch, *WRITES[write], epoch=1)
        with pytest.raises(Killed):
            run_training(news, run)
    done = [int(r["epoch"]) for r in history(run)]
    assert done in ([0], [0, 1])      # epoch 0 logged; epoch 1 at most up to the kill

    model, result = run_training(news, run)
    assert result.resumed_from == 1   # the backup says epoch 0 is done, and only epoch 0
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # every epoch once
    assert not os.path.exists(run / "backup")
    assert sorted(f for f in os.listdir(run) if "pending" in f) == []
    # the saved model is the best epoch of the history
    _, val = mmzoo.data.fit_splits(news)
    val_loss = model.evaluate(mmzoo.data.pipeline(model, val, batch_size=16), verbose=0)[0]
    assert val_loss == pytest.approx(min(float(r["val_loss"]) for r in rows), abs=1e-4)
    assert result.best["epoch"] == 1 + int(np.argmin([float(r["val_loss"]) for r in rows]))


def test_a_kill_after_the_backup_keeps_the_epoch(news, tmp_path, monkeypatch):
    """Killed after epoch 1's backup but before its best model was moved into place: the
    resumed run counts epoch 1 and keeps its model."""
    run = tmp_path / "run"
    from mmzoo.train import _BestModel

    with monkeypatch.context() as patch:
        kill_before(patch, _BestModel, "commit", epoch=1)
        with pytest.raises(Killed):
            run_training(news, run)
    model, result = run_training(news, run)
    assert result.resumed_from == 2
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    _, val = mmzoo.data.fit_splits(news)
    val_loss = model.evaluate(mmzoo.data.pipeline(model, val, batch_size=16), verbose=0)[0]
    assert val_loss == pytest.approx(min(float(r["val_loss"]) for r in rows), abs=1e-4)


def run_speech(data_dir, run, epochs=5):
    """A tiny `speech_ctc` whose validation loss cannot improve (a rate of 1e-9 moves it by far
    less than `ReduceLROnPlateau`'s min_delta), so its schedule halves the rate after every
    second epoch (`lr_patience=2`). Per-utterance normalisation: no `BatchNormalization`, whose
    moving statistics would move the loss whatever the rate."""
    config = {**mmzoo.registry.get_spec("speech_ctc").test_config, "learning_rate": 1e-9,
              "lr_patience": 2, "min_learning_rate": 1e-12, "normalization": "utterance"}
    data = f"digit_sequences:{data_dir}/fsdd?train=8&validation=4&test=1&max_digits=2"
    return mmzoo.train("speech_ctc", data, epochs=epochs, batch_size=4, out=str(run),
                       overrides=config, verbose=0)


def test_the_learning_rate_schedule_a_model_asks_for_survives_a_kill(data_dir, tmp_path,
                                                                     monkeypatch):
    """`lr_patience` in a model's config: `ReduceLROnPlateau` halves the rate, `history.csv`
    records it, and a run killed and resumed goes on with the rate and the patience it had
    (killed in epoch 2, after the schedule halved the rate but before the backup: the resumed
    run must halve it again at the end of epoch 2, not wait two more epochs)."""
    rates = [1e-9, 1e-9, 1e-9, 5e-10, 5e-10]  # the rate each epoch ran at
    whole = tmp_path / "whole"
    run_speech(data_dir, whole)
    assert [float(r["learning_rate"]) for r in history(whole)] == pytest.approx(rates)

    killed = tmp_path / "killed"
    _, result = killed_then_resumed(monkeypatch, 2, lambda: run_speech(data_dir, killed))
    assert result.resumed_from == 2
    assert [float(r["learning_rate"]) for r in history(killed)] == pytest.approx(rates)


# --- the flags of `mmzoo train`, each checked for what it does --------------------------------

@pytest.fixture(scope="module")
def fsdd_small(data_dir, tmp_path_factory):
    """40 FSDD recordings (4 per digit): a quick, real audio source."""
    root = tmp_path_factory.mktemp("fsdd_small")
    names = sorted(os.listdir(os.path.join(data_dir, "fsdd", "recordings")))
    for name in names[::62][:40]:
        os.symlink(os.path.join(data_dir, "fsdd", "recordings", name), root / name)
    return f"fsdd:{root}"


def audio_overrides():
    config = dict(mmzoo.registry.get_spec("audio_mfcc_cnn").test_config)
    config.pop("labels")
    return config


def test_mixed_precision_trains_in_bfloat16_on_cpu_and_restores_the_policy(fsdd_small, tmp_path):
    model, _ = mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8,
                           out=str(tmp_path / "run"), overrides=audio_overrides(),
                           mixed_precision=True, verbose=0)
    assert model.get_layer("audio_conv1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("audio_mfcc").compute_dtype == "float32"   # log-power stays float32
    assert model.outputs[0].dtype == "float32"                        # so do the scores
    assert keras.mixed_precision.global_policy().name == "float32"   # for this call only
    import json
    assert json.load(open(tmp_path / "run" / "config.json"))["mixed_precision"] is True


def test_jit_compile_compiles_the_steps_with_xla(fsdd_small, tmp_path):
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["jit_compile"] = self.model.jit_compile

    mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8, out=str(tmp_path / "a"),
                overrides=audio_overrides(), jit_compile=True, verbose=0, callbacks=[Probe()])
    assert seen["jit_compile"] is True
    mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8, out=str(tmp_path / "b"),
                overrides=audio_overrides(), verbose=0, callbacks=[Probe()])
    assert seen["jit_compile"] is not True


def test_no_augment_trains_on_the_audio_as_read(fsdd_small, tmp_path, monkeypatch):
    calls = []
    for name in ("augment", "augment_mfcc"):
        original = getattr(mmzoo.data.waveform, name)
        monkeypatch.setattr(mmzoo.data.waveform, name,
                            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8, out=str(tmp_path / "a"),
                overrides=audio_overrides(), augment=False, verbose=0)
    assert calls == []
    mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8, out=str(tmp_path / "b"),
                overrides=audio_overrides(), verbose=0)
    assert calls == ["augment_mfcc"]  # cached MFCCs are augmented as MFCCs, once when traced
    mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=1, batch_size=8, out=str(tmp_path / "c"),
                overrides=audio_overrides(), feature_cache="off", verbose=0)
    assert calls == ["augment_mfcc", "augment"]  # the whole model: waveforms are augmented


def manifests(folder):
    """`{artifact name: manifest}` of the keyed artifacts in `folder`."""
    from mmzoo.artifacts import MANIFEST, artifacts

    return {name: json.load(open(os.path.join(folder, name, MANIFEST)))
            for name in artifacts(folder)}


def test_a_disk_cache_lives_in_the_run_while_it_trains(fsdd_small, tmp_path):
    from mmzoo.data.base import HELD_IN, HELD_OUT

    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(manifests(tmp_path / "run" / "cache"))

    _, history = mmzoo.train("audio_mfcc_cnn", fsdd_small, epochs=2, batch_size=8,
                             out=str(tmp_path / "run"), overrides=audio_overrides(),
                             cache="disk", verbose=0, callbacks=[Probe()])
    # one artifact per split, named by what it was made from, which its manifest says
    assert sorted(m["parts"]["data"]["split"] for m in seen[0].values()) == [HELD_IN, HELD_OUT]
    assert all(name.startswith("examples-") for name in seen[0]) and seen[0] == seen[1]
    # removed once training ended, and the folder with them
    assert not os.path.exists(tmp_path / "run" / "cache")
    recorded = json.load(open(tmp_path / "run" / "cache.json"))
    assert recorded == history.cache
    # the cache holds the MFCCs (16 frames x 13 coefficients, float32) of the training clips
    assert recorded["train"]["mode"] == "disk"
    assert recorded["train"]["disk_bytes"] > 20 * 16 * 13 * 4


def rotate_labels(path):
    """Rewrite a CSV with each label replaced by the next (1 -> 2, ..., 4 -> 1)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        row[0] = str(int(row[0]) % 4 + 1)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_an_interrupted_run_never_goes_on_with_other_data(news, tmp_path, monkeypatch):
    """The review's reproduction: a run killed once its first epoch (and disk cache) is done,
    then the same command after the data changed (labels rotated). Resuming would train on
    the old data: it is refused; `overwrite` trains from scratch on the new data, with a cache
    made from it, never the old one."""
    data = tmp_path / "news.csv"
    data.write_bytes(open(news.split(":", 1)[1], "rb").read())
    run = tmp_path / "run"
    config = {**mmzoo.registry.get_spec("text_word_vector_mlp").test_config}
    config.pop("labels")

    def train(**kwargs):
        return mmzoo.train("text_word_vector_mlp", f"csv:{data}", epochs=2, batch_size=16,
                           out=str(run), overrides=config, verbose=0, cache="disk", **kwargs)

    caches = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            caches.append(manifests(run / "cache"))

    with monkeypatch.context() as patch:
        kill_before(patch, keras.callbacks.BackupAndRestore, "_save_model", epoch=1)
        with pytest.raises(Killed):
            train(callbacks=[Probe()])
    old = caches[-1]
    assert len(old) == 2 and sorted(manifests(run / "cache")) == sorted(old)  # left to resume
    os.utime(data, ns=(1, 1))
    rotate_labels(data)
    with pytest.raises(ValueError, match=r"unfinished run .* files changed.*--overwrite"):
        train()
    _, history = train(overwrite=True, callbacks=[Probe()])
    assert history.resumed_from == 0 and len(caches[-1]) == 2
    assert not set(caches[-1]) & set(old)  # new caches: named by the new data
    fingerprint = mmzoo.data.open_source(f"csv:{data}").fingerprint()
    assert {m["parts"]["data"]["fingerprint"] for m in caches[-1].values()} == {fingerprint}


def test_overwrite_removes_only_what_runs_wrote(news, tmp_path):
    run = tmp_path / "run"
    (run / "cache").mkdir(parents=True)
    (run / "cache" / "mine.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds cache/, which mmzoo did not write"):
        run_training(news, run, epochs=1)       # a user's folder of a name the run writes
    assert os.listdir(run) == ["cache"] and os.listdir(run / "cache") == ["mine.txt"]
    os.rename(run / "cache", tmp_path / "moved")
    (run / "notes.md").write_text("my notes")
    run_training(news, run, epochs=1)
    (run / "evaluation_test.json").write_text("{}")  # not claimed: the user wrote it
    from mmzoo.cli import main
    from mmzoo.run import RunFolder
    from mmzoo.train import _check_finished

    assert main(["evaluate", str(run), "--split", "validation"]) == 0  # claims what it writes
    assert (run / "evaluation_validation.json").exists()

    with pytest.raises(ValueError, match="finished run"):
        _check_finished(RunFolder(run), overwrite=False)
    _check_finished(RunFolder(run), overwrite=True)
    assert sorted(os.listdir(run)) == ["evaluation_test.json", "notes.md"]


def test_a_resumed_run_goes_on_with_its_random_stream(news, tmp_path, monkeypatch):
    """Killed after epoch 1, the resumed run must not shuffle (or augment) as epoch 1 did."""
    seeds = []
    real = mmzoo.data.pipeline

    def spy(*args, **kwargs):
        if kwargs.get("training"):
            seeds.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sys.modules["mmzoo.train"], "pipeline", spy)
    run = tmp_path / "run"
    _, result = killed_then_resumed(monkeypatch, 1, lambda: run_training(news, run))
    assert result.resumed_from == 1 and seeds[0] == 0 and seeds[1] != 0

    def order(seed):
        model = mmzoo.build("text_word_vector_mlp", **{
            **mmzoo.registry.get_spec("text_word_vector_mlp").test_config,
            "labels": ("1", "2", "3", "4")})
        train, _ = mmzoo.data.fit_splits(news)
        batch = next(iter(real(model, train, batch_size=16, training=True, seed=seed)))
        return batch[0]["text"].numpy().tolist()

    assert order(seeds[0]) != order(seeds[1])


def test_cli_flags_reach_train(monkeypatch, tmp_path, capsys):
    import sys

    from mmzoo.cli import main

    got = {}

    class History:
        best = {"epoch": 1, "epochs": 1, "metrics": {"val_loss": 0.5}}

    def fake_train(name, data, **kwargs):
        got.update(kwargs, name=name, data=data)
        return None, History()

    monkeypatch.setattr(sys.modules["mmzoo.train"], "train", fake_train)
    out = tmp_path / "run"   # holds no history.csv: a non-chief worker's view of the chief's run
    assert main(["train", "audio_mfcc_cnn", "--data", "fsdd:x", "--out", str(out),
                 "--mixed-precision", "--jit-compile", "--no-augment", "--cache", "disk"]) == 0
    assert got["mixed_precision"] and got["jit_compile"] and got["augment"] is False
    assert got["cache"] == "disk"
    assert "best epoch 1/1: {'val_loss': 0.5}" in capsys.readouterr().out
    assert main(["train", "audio_mfcc_cnn", "--data", "fsdd:x", "--out", str(out)]) == 0
    assert not got["mixed_precision"] and not got["jit_compile"] and got["augment"] is True
    assert got["cache"] == "auto" and got["feature_cache"] == "auto"
