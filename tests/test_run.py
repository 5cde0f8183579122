"""Who owns `--out` (`mmzoo.run.RunFolder`): the reviewer's cases, each as a user meets it.

A user's files in a run folder survive `train` (refused, named), files made after a failed run
survive `--overwrite`, two trains on one folder end with one refused naming the other,
`evaluate` and `card` write nothing into a folder that is not a run, and a split is a name.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import news_rows, run_mmzoo
from conftest import tree as listing
from mmzoo.run import LEDGER, LOCK, NotOurs, RunFolder

TINY = ["--set", "sequence_length=6", "--set", "embed_dim=8", "--set", "hidden_units=(8,)"]
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}


@pytest.fixture(scope="module")
def news(data_dir, tmp_path_factory):
    return f"csv:{news_rows(data_dir, tmp_path_factory.mktemp('news'), 96)}"


def train(news, out, *more):
    return run_mmzoo("train", "text_word_vector_mlp", "--data", news, "--epochs", 1,
                     "--batch-size", 16, "--out", out, *TINY, *more)


def test_a_users_files_in_out_survive_train(news, tmp_path):
    out = tmp_path / "thesis"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "thesis.tex").write_text("\\chapter{Results}")
    (out / "README.md").write_text("# my notes")
    (out / "config.json").write_text('{"mine": true}')
    before = listing(out)
    done = train(news, out)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("mmzoo: error:") and "backup/" in line and "README.md" in line \
        and "config.json" in line and "did not write" in line, line
    assert listing(out) == before                        # nothing written, nothing removed
    assert sorted(os.listdir(out)) == ["README.md", "backup", "config.json"]  # no lock, no ledger


def test_files_made_after_a_failed_run_survive_overwrite(news, tmp_path):
    out = tmp_path / "run"
    failed = train(news, out, "--set", "dropout=7")       # a bad value: fails before training
    assert failed.returncode == 2 and "dropout" in failed.stderr
    assert not out.exists() or RunFolder(out).claimed() == set()     # it claims nothing
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / "my_notes.txt").write_text("what I tried")
    (out / "README.md").write_text("# plan")
    before = listing(out)
    again = train(news, out, "--overwrite")
    assert again.returncode == 2 and "logs/" in again.stderr and "README.md" in again.stderr
    assert listing(out) == before


def test_overwrite_removes_only_what_is_still_as_the_run_left_it(news, tmp_path):
    out = tmp_path / "run"
    assert train(news, out).returncode == 0
    assert {"model.keras", "history.csv", "config.json", "logs", "README.md",
            "training.json"} <= RunFolder(out).claimed()
    (out / "notes.md").write_text("mine")                 # a name mmzoo never writes
    (out / "logs" / "mine.txt").write_text("mine")        # inside a folder mmzoo made
    again = train(news, out, "--overwrite")
    assert again.returncode == 2 and "logs/ (holds mine.txt" in again.stderr
    assert (out / "notes.md").read_text() == "mine" and (out / "logs" / "mine.txt").exists()
    os.remove(out / "logs" / "mine.txt")
    again = train(news, out, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert (out / "notes.md").read_text() == "mine"
    # a file of the run changed since: --overwrite keeps it and says so, and trains no further
    (out / "history.csv").write_text("epoch,loss\n0,1.0\n")
    kept = train(news, out, "--overwrite")
    assert kept.returncode == 2 and "history.csv (changed since mmzoo wrote it)" in kept.stderr
    assert (out / "history.csv").read_text() == "epoch,loss\n0,1.0\n"


def test_two_trains_on_one_folder_one_is_refused(news, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "mmzoo.cli", "train", "text_word_vector_mlp", "--data", news,
            "--epochs", "40", "--batch-size", "4", "--out", str(out), *TINY]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=ENV)
    history = out / "history.csv"
    try:
        deadline = time.time() + 300
        # two epochs logged: the second's files were written after the first was recorded
        while not (history.exists() and len(history.read_text().splitlines()) >= 3):
            assert first.poll() is None, first.stderr.read()
            assert time.time() < deadline
            time.sleep(0.05)
        second = train(news, out)
        assert second.returncode == 2, second.stderr
        assert f"being written by another mmzoo process (pid {first.pid}" in second.stderr
        assert "mmzoo train text_word_vector_mlp" in second.stderr
    finally:
        first.kill()          # SIGKILL, mid-epoch: whatever it was writing is half-written
        first.wait()
    # the lock went with the process; what the killed run wrote is still mmzoo's, to remove
    (out / "notes.md").write_text("mine")
    again = train(news, out, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert (out / "notes.md").read_text() == "mine" and len(history.read_text().splitlines()) == 2


def test_a_held_folder_names_its_holder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with folder.held("mmzoo train x --out run"):
        assert (tmp_path / "run" / LOCK).exists()
        with folder.held():                           # the same process: one hold
            pass
        script = ("import sys; from mmzoo.run import RunFolder\n"
                  "try:\n    RunFolder(sys.argv[1]).held().__enter__()\n"
                  "except Exception as e:\n    print(e)\n")
        other = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")],
                               capture_output=True, text=True, env=ENV, timeout=300)
        assert f"pid {os.getpid()}" in other.stdout and "mmzoo train x --out run" in other.stdout
    assert not (tmp_path / "run").exists()            # made for the hold, left empty: gone


def test_card_and_evaluate_write_nothing_into_a_folder_that_is_not_a_run(news, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.keras").write_text("not a model")
    (mine / "notes.txt").write_text("mine")
    before = listing(mine)
    for command in (["card", mine], ["evaluate", mine, "--data", news]):
        done = run_mmzoo(*command)
        assert done.returncode == 2 and str(mine) in done.stderr, done.stderr
        assert listing(mine) == before
    assert not (tmp_path / "nothing").exists()
    assert run_mmzoo("card", tmp_path / "nothing").returncode == 2
    assert not (tmp_path / "nothing").exists()


def test_a_split_is_a_name_never_a_path(news, tmp_path):
    run = tmp_path / "run"
    assert train(news, run).returncode == 0
    before = sorted(os.listdir(tmp_path))
    for split in ("../x", "/tmp/x", "..", ".hidden"):
        done = run_mmzoo("evaluate", run, "--split", split)
        assert done.returncode == 2 and "is not a name" in done.stderr, done.stderr
    assert sorted(os.listdir(tmp_path)) == before
    ledger = json.loads((run / LEDGER).read_text())["entries"]
    assert not any("/" in name for name in ledger)


def test_evaluate_and_card_claim_what_they_write(news, tmp_path):
    run = tmp_path / "run"
    assert train(news, run).returncode == 0
    # a user's evaluation file is not read into the card, and an edited card is not rewritten
    (run / "evaluation_test.json").write_text('{"accuracy": 0.99}')
    assert run_mmzoo("card", run).returncode == 0
    assert "0.99" not in (run / "README.md").read_text()
    (run / "README.md").write_text("# my own card")
    done = run_mmzoo("card", run)
    assert done.returncode == 2 and "README.md was changed since mmzoo wrote it" in done.stderr
    assert (run / "README.md").read_text() == "# my own card"
    os.remove(run / "README.md")
    os.remove(run / "evaluation_test.json")
    (run / "evaluation_validation.json").write_text("{}")     # the user's, there first
    done = run_mmzoo("evaluate", run, "--split", "validation")
    assert done.returncode == 2 and "evaluation_validation.json" in done.stderr
    assert (run / "evaluation_validation.json").read_text() == "{}"
    assert run_mmzoo("evaluate", run, "--split", "test").returncode == 0
    assert "evaluation_test.json" in RunFolder(run).claimed()
    assert run_mmzoo("card", run).returncode == 0
    assert "README.md" in RunFolder(run).claimed()


def test_a_run_that_fails_in_its_first_epoch_leaves_nothing(news, tmp_path):
    import keras

    import mmzoo

    class Broken(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise RuntimeError("a bad batch")

    with pytest.raises(RuntimeError, match="a bad batch"):
        mmzoo.train("text_word_vector_mlp", news, epochs=1, batch_size=16, verbose=0,
                    out=str(tmp_path / "run"), callbacks=[Broken()],
                    overrides={"sequence_length": 6, "embed_dim": 8, "hidden_units": (8,)})
    assert not (tmp_path / "run").exists()


def test_remove_ours_keeps_what_changed_and_what_is_not_ours(tmp_path):
    folder = RunFolder(tmp_path / "f")
    with folder.held():
        folder.write_json("a.json", {"a": 1})
        folder.write_text("b.txt", "b")
        folder.claim("logs")
        (tmp_path / "f" / "logs").mkdir()
        (tmp_path / "f" / "logs" / "events").write_text("e")
        folder.record("logs")
        (tmp_path / "f" / "logs" / "late").write_text("written after the record")
        (tmp_path / "f" / "b.txt").write_text("the user's now")
        (tmp_path / "f" / "mine.txt").write_text("x")
        with pytest.raises(NotOurs):
            folder.claim("mine.txt")
        kept = folder.remove_ours()
    assert sorted(os.listdir(tmp_path / "f")) == [LEDGER, "b.txt", "logs", "mine.txt"]
    assert os.listdir(tmp_path / "f" / "logs") == ["late"]
    assert any("b.txt" in k for k in kept) and any("logs/" in k for k in kept)
