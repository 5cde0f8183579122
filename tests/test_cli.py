"""The command line end to end: train (resume after SIGKILL, mirrored, multi-worker), evaluate,
export with raw inputs, predict; and an export loaded by a process that cannot import mmzoo."""

import collections
import csv
import hashlib
import json
import os
import re
import signal
import socket
import shutil
import subprocess
import sys
import time

import pytest
from conftest import run_mmzoo

TINY = ["--set", "image_size=16", "--set", "filters=(8,16)", "--set", "embed_dim=16",
        "--set", "text_units=16", "--set", "hidden_units=(16,)"]
# the command quiets TensorFlow itself: no TF_CPP_MIN_LOG_LEVEL (conftest and .ci/run set one)
ENV = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
       "CUDA_VISIBLE_DEVICES": "-1"}


def mmzoo(*args, env=None, timeout=600, process=False):
    """Run the `mmzoo` command: in this process (quicker, the same code) unless it needs a
    process of its own (an environment of its own, or `process=True`: the CPU split into
    logical devices before TensorFlow starts)."""
    if env is None and not process:
        return run_mmzoo(*args)
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env or ENV)


def epochs_logged(run):
    with open(os.path.join(run, "history.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(tiny_easy_vqa, tmp_path_factory):
    """`mmzoo train vqa_cnn_lstm` on a small real easy-VQA folder, then `mmzoo export`."""
    root = tmp_path_factory.mktemp("cli")
    run, exported = root / "run", root / "sm"
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", 2,
                "--batch-size", 16, "--out", run, *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    out = mmzoo("export", run, "--out", exported)
    assert out.returncode == 0, out.stderr[-3000:]
    return run, exported


def test_train_writes_model_history_logs_backup_and_config(trained):
    run, _ = trained
    assert os.path.isfile(run / "model.keras")
    assert epochs_logged(run) == [0, 1]
    assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(run / "logs")
               for f in files)
    assert not os.path.exists(run / "backup")  # removed once training finished
    config = json.load(open(run / "config.json"))
    assert config["model"] == "vqa_cnn_lstm" and config["overrides"]["image_size"] == 16
    assert config["data"].startswith("easy_vqa:") and config["seed"] == 0
    assert {"tensorflow", "keras", "keras_hub", "mmzoo"} <= set(config["versions"])


def test_predict_prints_what_the_served_model_answers(trained, tiny_easy_vqa, tmp_path):
    import numpy as np
    import tensorflow as tf

    trained_run, exported = trained
    image = os.path.join(tiny_easy_vqa, "test", "images", "0.png")
    question = "what shape is in the image?"
    other = os.path.join(tiny_easy_vqa, "test", "images", "1.png")
    # two photos, one question asked of each; the top 5 answers with their scores
    out = mmzoo("predict", exported, "--image", image, "--image", other, "--question", question,
                "--top", 5)
    assert out.returncode == 0, out.stderr[-3000:]
    served = tf.saved_model.load(str(exported))
    labels = json.loads(served.signatures["metadata"]()["json"].numpy())["labels"]
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, (image, other)):
        want = served.signatures["serving_default"](image=tf.io.read_file(path)[None],
                                                    question=tf.constant([question]))
        scores = want["scores"].numpy()[0]
        top = np.argsort(-scores)[:5]
        assert labels[top[0]] == want["label"].numpy()[0].decode()
        assert line == f"{path} + {question!r}: " + ", ".join(
            f"{labels[i]} {scores[i]:.3f}" for i in top)
    # a folder is every image in it; the same from the run as from its export
    folder = os.path.join(tiny_easy_vqa, "test", "images")
    out = mmzoo("predict", exported, "--image", folder, "--question", question, "--json")
    run = mmzoo("predict", trained_run, "--image", folder, "--question", question, "--json")
    by_export, by_run = json.loads(out.stdout), json.loads(run.stdout)
    assert len(by_export) == len(os.listdir(folder))
    assert [r["top"][0]["label"] for r in by_export] == [r["top"][0]["label"] for r in by_run]
    # a table of inputs, one example per row, its columns mapped as for training
    (tmp_path / "photos").mkdir()
    for path in (image, other):
        shutil.copy(path, tmp_path / "photos" / os.path.basename(path))
    (tmp_path / "asked.csv").write_text("photo,ask\nphotos/0.png,what shape is in the image?\n"
                                        "photos/1.png,what color is the shape?\n")
    out = mmzoo("predict", exported, "--table", f"csv:{tmp_path / 'asked.csv'}?image=photo&"
                "question=ask", "--json")
    rows = json.loads(out.stdout)
    assert [r["input"]["question"] for r in rows] == ["what shape is in the image?",
                                                      "what color is the shape?"]
    assert rows[0]["top"][0]["label"] == by_export[0]["top"][0]["label"]
    out = mmzoo("predict", exported, "--image", image)
    assert out.returncode == 2
    assert "takes ['image', 'question'] (give --image --question); got ['image']" in out.stderr
    out = mmzoo("predict", exported, "--image", image, "--image", other, "--image", other,
                "--question", question, "--question", question)
    assert out.returncode == 2 and "once or as many times as the others" in out.stderr


def test_predict_skips_unreadable_inputs_and_its_json_names_each_input(trained, tiny_easy_vqa,
                                                                       tmp_path, capsys):
    """A folder holding a file that is not an image: the command stops naming it, or with
    `--on-error skip` names it and answers for the others; `--json` rows name each input (a
    path, a table's row), never its bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmzoo.cli import main

    _, exported = trained
    folder = tmp_path / "photos"
    folder.mkdir()
    pngs = [os.path.join(tiny_easy_vqa, "test", "images", f"{i}.png") for i in range(3)]
    for path in pngs:
        shutil.copy(path, folder)
    (folder / "9.png").write_bytes(b"not a png at all")
    asked = ["--question", "what shape is in the image?"]
    assert main(["predict", str(exported), "--image", str(folder), *asked]) == 2
    assert "9.png: not a readable image" in capsys.readouterr().err
    assert main(["predict", str(exported), "--image", str(folder), *asked, "--on-error", "skip",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [os.path.basename(r["input"]["image"]) for r in rows] == ["0.png", "1.png", "2.png"]
    assert "1 input(s) could not be read and were skipped" in err and "9.png" in err
    # a table whose images are bytes (as Hugging Face `datasets` writes them)
    table = tmp_path / "asked.parquet"
    pq.write_table(pa.table({"image": [{"bytes": open(p, "rb").read(), "path": None}
                                       for p in pngs],
                             "question": ["what shape is in the image?"] * 3}), table)
    assert main(["predict", str(exported), "--table", f"parquet:{table}", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["input"]["row"] for r in rows] == [f"parquet:{table} row {i}" for i in (1, 2, 3)]
    assert all(r["input"]["image"] == "(image bytes)" for r in rows)
    assert [r["top"][0]["label"] for r in rows] == [
        r["top"][0]["label"] for r in json.loads(out)]


def test_predict_names_a_file_that_is_not_an_image_or_audio(trained, tiny_easy_vqa, tmp_path,
                                                            capsys):
    from mmzoo.cli import main  # in this process: the same code as the command, run quicker

    _, exported = trained
    question = ["--question", "what shape is in the image?"]
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo")
    png = open(os.path.join(tiny_easy_vqa, "test", "images", "0.png"), "rb").read()
    cut = tmp_path / "cut.png"
    cut.write_bytes(png[: len(png) // 2])
    for path, why in ((notes, "not an image: its first bytes are none of JPEG"),
                      (cut, "truncated PNG"), (tmp_path / "gone.png", "missing")):
        assert main(["predict", str(exported), "--image", str(path), *question]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], lines
        assert lines[0].startswith(f"mmzoo: error: --image {path}: not a readable image: ")
    import mmzoo as zoo
    from mmzoo.registry import get_spec
    audio_sm = tmp_path / "audio_sm"
    zoo.export(zoo.build("audio_mfcc_cnn", **get_spec("audio_mfcc_cnn").test_config), audio_sm)
    fake = tmp_path / "speech.wav"
    fake.write_text("RIFF but really text")
    assert main(["predict", str(audio_sm), "--audio", str(fake)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"mmzoo: error: --audio {fake}: not a readable audio file: ")


def test_evaluate_uses_the_recorded_data_and_prints_metrics_and_ablation(
        trained, tiny_easy_vqa):
    run, _ = trained
    out = mmzoo("evaluate", run, "--split", "test", "--modality-ablation", "--json")  # no --data
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["data"] == f"easy_vqa:{tiny_easy_vqa}" and result["task"] == "vqa"
    n = len(result["labels"])
    matrix = result["confusion_matrix"]
    assert len(matrix) == n and sum(map(sum, matrix)) == result["examples"]
    assert result["accuracy"] == sum(matrix[i][i] for i in range(n)) / result["examples"]
    assert {"macro_precision", "macro_recall", "macro_f1"} <= set(result)
    assert set(result["ablation"]) == {"image_zeroed", "question_zeroed"}
    assert json.load(open(run / "evaluation_test.json"))["accuracy"] == result["accuracy"]


def test_export_refuses_to_replace_what_it_did_not_write(trained, tmp_path):
    run, _ = trained
    before = {f: (run / f).stat().st_mtime_ns for f in os.listdir(run)}
    out = mmzoo("export", run, "--out", run)               # the training run itself
    assert out.returncode == 2 and "not an mmzoo export" in out.stderr
    assert {f: (run / f).stat().st_mtime_ns for f in os.listdir(run)} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    out = mmzoo("export", run, "--out", mine)              # a stranger's file in DIR
    assert out.returncode == 2
    assert f"mmzoo: error: cannot export to {mine}: it already holds thesis.tex" in out.stderr
    assert os.listdir(mine) == ["thesis.tex"] and (mine / "thesis.tex").read_text() == \
        "years of work"
    # a previous export is replaced, unless a file of it was edited since
    again = tmp_path / "again"
    assert mmzoo("export", run, "--out", again).returncode == 0
    assert mmzoo("export", run, "--out", again).returncode == 0
    (again / "README.md").write_text("my notes on this model")
    out = mmzoo("export", run, "--out", again)
    assert out.returncode == 2 and "['README.md'] changed since export wrote them" in out.stderr
    assert (again / "README.md").read_text() == "my notes on this model"


@pytest.fixture(scope="module")
def news_run(data_dir, tmp_path_factory):
    """`mmzoo train text_word_vector_mlp` on AG News: a real run of a text-only model."""
    run = tmp_path_factory.mktemp("news") / "run"
    source = f"csv:{data_dir}/ag_news/news.csv"
    out = mmzoo("train", "text_word_vector_mlp", "--data", source, "--epochs", 3,
                "--batch-size", 32, "--out", run)
    assert out.returncode == 0, out.stderr[-3000:]
    return run, source


def test_a_cli_trained_model_beats_its_majority_class(news_run):
    import collections

    import mmzoo as zoo

    run, source = news_run
    out = mmzoo("evaluate", run, "--json")    # the data comes from run/config.json
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    # the run recorded its data with an absolute path (evaluate works from any folder)
    assert result["data"] == f"csv:{os.path.abspath(source[4:])}" and result["split"] == "test"
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["on_error"] == "raise"
    train = zoo.data.load(source, split="train").map(lambda e: e["label"])
    majority = collections.Counter(train.as_numpy_iterator()).most_common(1)[0][0].decode()
    share = result["confusion_matrix"][result["labels"].index(majority)]
    baseline = sum(share) / result["examples"]  # always answering the majority class
    print(f"accuracy {result['accuracy']:.3f}, majority class {majority!r} {baseline:.3f}")
    assert result["accuracy"] > baseline + 0.3
    assert "learned_nothing" not in result


def test_evaluate_scores_every_row_of_a_separate_test_file(news_run, data_dir, tmp_path):
    """A 60-row file that is not the run's data is scored whole (it has no split of its own),
    and evaluate says which rows it scored; with a split column, its own test rows; `all` is a
    split of the run's own data too."""
    import csv

    run, _ = news_run
    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        rows = list(csv.reader(f))
    other = tmp_path / "test60.csv"
    with open(other, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *rows[-60:]])
    out = mmzoo("evaluate", run, "--data", f"csv:{other}", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert (result["split"], result["examples"]) == ("all", 60)
    assert "scoring all 60 item(s) of csv:" in out.stderr and "no split of its own" in out.stderr
    assert os.path.exists(run / "evaluation_all.json")
    with open(other, "w", newline="") as f:
        csv.writer(f).writerows([[*rows[0], "split"], *[[*r, "test" if i < 25 else "train"]
                                                        for i, r in enumerate(rows[-60:])]])
    out = mmzoo("evaluate", run, "--data", f"csv:{other}", "--json")
    assert json.loads(out.stdout)["examples"] == 25, out.stderr[-2000:]
    out = mmzoo("evaluate", run, "--split", "all", "--json")
    assert json.loads(out.stdout)["examples"] == len(rows) - 1, out.stderr[-2000:]


def test_train_refuses_a_finished_run_unless_overwrite(news_run):
    run, source = news_run
    (run / "notes.txt").write_text("mine")
    before = {f: (run / f).stat().st_mtime_ns for f in os.listdir(run)}
    out = mmzoo("train", "text_word_vector_mlp", "--data", source, "--epochs", 1, "--out", run)
    assert out.returncode == 2 and "holds a finished run" in out.stderr and "--overwrite" in \
        out.stderr
    assert {f: (run / f).stat().st_mtime_ns for f in os.listdir(run)} == before
    out = mmzoo("train", "text_word_vector_mlp", "--data", source, "--epochs", 1, "--out", run,
                "--overwrite")
    assert out.returncode == 0, out.stderr[-3000:]
    assert epochs_logged(run) == [0] and (run / "notes.txt").read_text() == "mine"
    assert not (run / "evaluation_test.json").exists()  # an evaluation of the old model


def test_train_without_data_names_the_sources_that_fit(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mmzoo", "train", "text_lstm"],
                         capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and not os.path.exists(tmp_path / "runs")
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("mmzoo: error: model 'text_lstm' (classification of text) has "
                               "no bundled default data; give --data")
    assert "csv:PATH" in lines[0] and "tfds:NAME" in lines[0] and "easy_vqa" not in lines[0]


def test_the_command_starts_quietly_and_says_more_with_v():
    out = subprocess.run([sys.executable, "-m", "mmzoo", "list", "--task", "captioning"],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("caption_lstm")
    assert out.stderr == ""    # no TensorFlow start-up lines
    out = subprocess.run([sys.executable, "-m", "mmzoo", "list", "-v"], capture_output=True,
                         text=True, env=ENV, timeout=300)
    assert out.returncode == 0 and out.stderr != ""


def test_user_mistakes_get_one_line_and_bugs_a_traceback(monkeypatch, capsys):
    from mmzoo import cli

    assert cli.main(["describe", "captionlstm"]) == 2
    err = capsys.readouterr().err
    assert err == ("mmzoo: error: unknown model 'captionlstm'; did you mean 'caption_lstm' or "
                   "'caption_lstm_mobilenet'? "
                   "see mmzoo.list_models() (a model of your own is known once its module is "
                   "imported: `--import MODULE`, MMZOO_IMPORT=MODULE, or an entry point of the "
                   "group 'mmzoo.models')\n")

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "_cmd_list", broken)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in broken" in err
    assert "mmzoo: internal error: KeyError: 'a bug'" in err


def test_export_runs_in_a_process_without_mmzoo(trained, tiny_easy_vqa):
    _, exported = trained
    image = os.path.join(tiny_easy_vqa, "test", "images", "1.png")
    code = f"""
import sys
sys.modules["mmzoo"] = None        # importing mmzoo (or keras_hub) now fails
sys.modules["keras_hub"] = None
import tensorflow as tf
served = tf.saved_model.load({str(exported)!r})
serve = served.signatures["serving_default"]
png = tf.io.read_file({image!r})
out = serve(image=tf.stack([png, png]),
            question=tf.constant(["what shape is in the image?", "is there a red shape?"]))
print(",".join(x.decode() for x in out["label"].numpy()), out["scores"].shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ENV, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    labels, shape = out.stdout.strip().split(" ", 1)
    # the answers of the trained model itself, in this process, through its Preprocessor
    import keras
    import numpy as np
    import tensorflow as tf

    import mmzoo as zoo
    model = keras.saving.load_model(trained[0] / "model.keras")
    pre = zoo.data.Preprocessor(model)
    png = tf.io.read_file(image)
    scores = model({"image": pre.images(tf.stack([png, png])),
                    "question": pre.text("question", tf.constant(
                        ["what shape is in the image?", "is there a red shape?"]))})
    names = zoo.contract.labels(model)
    assert labels.split(",") == [names[i] for i in np.argmax(scores, axis=-1)]
    assert shape.startswith("(2,")


def test_resume_after_sigkill(tiny_easy_vqa, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "mmzoo.cli", "train", "vqa_cnn_lstm", "--data",
            f"easy_vqa:{tiny_easy_vqa}", "--epochs", "4", "--batch-size", "4", "--out",
            str(run), *TINY]
    meta = run / "backup" / "training_metadata.json"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 300
        while not (meta.exists() and meta.read_text().strip()) and time.time() < deadline:
            assert proc.poll() is None, "training ended before its first epoch was backed up"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # after its first finished epoch
    finally:
        proc.wait()
    done = json.loads(meta.read_text())["epoch"]
    assert 1 <= done < 4
    assert epochs_logged(run)[:done] == list(range(done))

    out = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (f"resuming from the backup: epochs 1-{done} of 4 are done, training epochs "
            f"{done + 1}-4") in out.stderr
    assert epochs_logged(run) == [0, 1, 2, 3]  # every epoch once, none repeated
    assert not os.path.exists(run / "backup")
    with open(run / "history.csv", newline="") as f:
        best = min(float(r["val_loss"]) for r in csv.DictReader(f))
    import keras

    import mmzoo as zoo

    model = keras.saving.load_model(run / "model.keras")
    _, val = zoo.data.fit_splits(f"easy_vqa:{tiny_easy_vqa}")
    val_loss = model.evaluate(zoo.data.pipeline(model, val, batch_size=4), verbose=0)[0]
    assert abs(val_loss - best) < 1e-3  # the saved model is the best epoch of both runs


def test_a_different_command_does_not_resume_a_backup(tiny_easy_vqa, tmp_path):
    from mmzoo.run import RunFolder

    run = tmp_path / "run"
    folder = RunFolder(run)   # an unfinished run of another command: mmzoo's own files
    folder.claim("backup")
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    folder.write_json("config.json", {"model": "vqa_cnn_lstm", "seed": 5})
    folder.record("backup")
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", 1,
                "--out", run, *TINY)
    assert out.returncode == 2 and "holds an unfinished run with different" in out.stderr


def test_mirrored_on_two_logical_cpus(tiny_easy_vqa, tmp_path):
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", 1,
                "--batch-size", 16, "--out", tmp_path / "run", "--strategy", "mirrored",
                "--cpu-devices", 2, *TINY, process=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "strategy mirrored: 2 replicas in sync" in out.stderr
    assert epochs_logged(tmp_path / "run") == [0]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_two_processes_write_one_model(tiny_easy_vqa, tmp_path):
    run = tmp_path / "run"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "mmzoo.cli", "train", "vqa_cnn_lstm", "--data",
             f"easy_vqa:{tiny_easy_vqa}", "--epochs", "2", "--batch-size", "16", "--out",
             str(run), "--strategy", "multi_worker", *TINY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**ENV, "TF_CONFIG": json.dumps(config)}))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "strategy multi_worker: 2 replicas in sync" in outputs[0][1]
    assert os.path.isfile(run / "model.keras") and epochs_logged(run) == [0, 1]
    assert sorted(os.listdir(run)) == [".mmzoo-written.json", "README.md", "cache.json",
                                       "config.json", "history.csv", "logs", "model.keras",
                                       "training.json"]


def test_strategies_fail_clearly_without_their_hardware(tiny_easy_vqa, tmp_path):
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--out",
                tmp_path / "run", "--strategy", "tpu")
    assert out.returncode == 2 and "strategy 'tpu' needs a TPU, and none was found" in out.stderr
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--out",
                tmp_path / "run", "--strategy", "multi_worker", env=env)
    assert out.returncode == 2 and "reads the cluster from the TF_CONFIG" in out.stderr


def test_predict_audio_file_resampled_to_the_model_rate(data_dir, tmp_path):
    import librosa
    import numpy as np
    import tensorflow as tf

    import mmzoo as zoo
    from mmzoo.registry import get_spec

    config = {**get_spec("audio_mfcc_cnn").test_config, "labels": tuple("0123456789")}
    model = zoo.build("audio_mfcc_cnn", **config)                    # 4 kHz
    zoo.export(model, tmp_path / "sm")
    clip = os.path.join(data_dir, "fsdd", "recordings", "7_george_0.wav")  # 8 kHz on disk
    out = mmzoo("predict", tmp_path / "sm", "--audio", clip, "-v")
    assert out.returncode == 0, out.stderr[-3000:]
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]

    def printed(wave):
        scores = serve(audio=tf.constant(wave[None]))["scores"].numpy()[0]
        best = np.argsort(-scores)[:3]
        return [f"{clip}: " + ", ".join(f"{i} {scores[i]:.3f}" for i in best)]

    resampled = printed(librosa.load(clip, sr=4000)[0])
    as_read = printed(librosa.load(clip, sr=None)[0])       # 8 kHz samples taken for 4 kHz
    assert resampled != as_read                              # so the check below can fail
    assert out.stdout.splitlines() == resampled


# Run in each worker: `mmzoo.cli` with the prepared source's audio decoding logged (a digest of
# each waveform a worker decodes, with the worker's index), the code path unchanged otherwise.
DECODE_LOG = '''
import hashlib, json, os, sys
import tensorflow as tf
import mmzoo.data.tfds_source as tfds_source
from mmzoo.cli import main

log, worker = sys.argv.pop(1), json.loads(os.environ["TF_CONFIG"])["task"]["index"]
converter = tfds_source.TFDS._converter

def logged_converter(self, key, feature, decoders):
    convert = converter(self, key, feature, decoders)
    if key != "audio":
        return convert

    def write(wave):
        with open(log, "a") as f:
            f.write(f"{worker} {hashlib.sha1(wave.numpy().tobytes()).hexdigest()}\\n")
        return 0

    def logged(x):
        wave = convert(x)
        with tf.control_dependencies([tf.py_function(write, [wave], tf.int32)]):
            return tf.identity(wave)
    return logged

tfds_source.TFDS._converter = logged_converter
sys.exit(main(sys.argv[1:]))
'''


def test_two_workers_each_decode_only_their_shards_of_prepared_data(data_dir, tmp_path):
    folder = tmp_path / "fsdd"
    folder.mkdir()
    names = sorted(os.listdir(os.path.join(data_dir, "fsdd", "recordings")))
    # 93 recordings: splits that 2 shards share evenly (uneven shares leave the larger ones'
    # last examples out of the epoch, so that both workers take the same steps)
    for name in names[::27]:
        os.symlink(os.path.join(data_dir, "fsdd", "recordings", name), folder / name)
    out = mmzoo("data", f"fsdd:{folder}", "--prepare", tmp_path / "prepared", "--shards", 2)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(train 78, validation 6, test 9 examples)" in out.stdout, out.stdout
    script, log = tmp_path / "worker.py", tmp_path / "decoded.log"
    script.write_text(DECODE_LOG)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    tiny = ["--set", "sample_rate=4000", "--set", "clip_seconds=0.25", "--set", "n_fft=128",
            "--set", "hop_length=64", "--set", "n_mels=20", "--set", "audio_filters=(8,8)",
            "--set", "hidden_units=(8,)"]
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(log), "train", "audio_mfcc_cnn", "--data",
         f"tfds:{tmp_path / 'prepared'}", "--epochs", "2", "--batch-size", "8", "--cache", "none",
         "--out", str(tmp_path / "run"), "--strategy", "multi_worker", *tiny],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                             "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "each worker reads its own shards of the prepared files" in outputs[0][1]
    decoded = collections.Counter(tuple(line.split()) for line in log.read_text().splitlines())
    by_example = collections.defaultdict(set)
    for worker, digest in decoded:
        by_example[digest].add(worker)
    assert all(len(workers) == 1 for workers in by_example.values())   # by one worker only
    assert {w for ws in by_example.values() for w in ws} == {"0", "1"}

    import mmzoo as mmzoo_package  # (`mmzoo` here runs the command)

    def digests(split):
        ds = mmzoo_package.data.load(f"tfds:{tmp_path / 'prepared'}", split=split)
        return {hashlib.sha1(e["audio"].tobytes()).hexdigest() for e in ds.as_numpy_iterator()}

    train, validation = digests("train"), digests("validation")
    assert set(by_example) == train | validation and len(train) == 78 and len(validation) == 6
    times = {digest: n for (_, digest), n in decoded.items()}
    # Once per epoch (2 epochs, no cache), plus Keras's own look at the first batch before
    # training (under a strategy its `fit` builds from one batch of a fresh iterator: the
    # shuffle buffer, here each worker's whole share) and before each evaluation.
    assert {times[d] for d in train} == {2 + 1}
    assert {times[d] for d in validation} == {2 + 2}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["trian"],
                                  ["train", "x", "--epochs", "many"]])
def test_help_version_and_argument_errors_answer_without_tensorflow(argv):
    # `-X importtime` lists every module the process imports
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "mmzoo", *argv],
                         capture_output=True, text=True, timeout=60)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mmzoo.cli" in imported and "tensorflow" not in imported and "keras" not in imported
    said = out.stdout + "\n".join(line for line in out.stderr.splitlines()
                                  if not line.startswith("import time:"))
    if argv == ["trian"]:
        assert out.returncode == 2 and "did you mean 'train'?" in said
    elif argv[-1] == "many":
        assert out.returncode == 2 and "argument --epochs: 'many' is not a whole number" in said
    else:
        assert out.returncode == 0 and ("usage: mmzoo" in said or "mmzoo 0." in said)


def test_search_ranks_photos_as_the_served_towers_do(tiny_easy_vqa, tmp_path):
    import numpy as np
    import tensorflow as tf

    import mmzoo as zoo
    from mmzoo.registry import get_spec

    zoo.export(zoo.build("dual_encoder", **get_spec("dual_encoder").test_config), tmp_path / "sm")
    folder = os.path.join(tiny_easy_vqa, "test", "images")
    out = mmzoo("search", tmp_path / "sm", "--text", "a red circle", "--images", folder,
                "--top", 3, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    text = served["embed_text"](text=tf.constant(["a red circle"]))["embedding"].numpy()
    images = served["embed_image"](image=tf.constant([open(f, "rb").read() for f in files]))
    scores = (text @ images["embedding"].numpy().T)[0]
    best = np.argsort(-scores)[:3]
    assert [r["image"] for r in found] == [files[i] for i in best]
    np.testing.assert_allclose([r["score"] for r in found], scores[best], rtol=1e-5)
    out = mmzoo("search", tmp_path / "sm", "--text", "x", "--images", tmp_path)
    assert out.returncode == 2 and "no image files" in out.stderr


def test_portable_exports_of_a_run_carry_its_card_and_answer_as_evaluate_did(news_run, tmp_path):
    """ONNX, LiteRT and LiteRT int8 exports of a trained text classifier: each model card
    reports in `model-index` the accuracy of its own file, measured at export on the run's
    test split, and shows the one `mmzoo evaluate` printed for comparison, and metadata.json
    its labels; in a process
    without TensorFlow, `mmzoo/runtime.py` tokenises the test texts as metadata.json says (the
    ids mmzoo makes) and each file answers them with evaluate's accuracy (float files within
    one text of it, int8 within 2 points)."""
    import numpy as np
    import tensorflow as tf

    import mmzoo as zoo
    from mmzoo.data import Preprocessor

    run, source = news_run
    out = mmzoo("evaluate", run)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = next(line for line in out.stdout.splitlines() if line.strip().startswith("accuracy"))
    evaluation = json.load(open(run / "evaluation_test.json"))
    out = mmzoo("card", run, "--license", "mit", "--dataset-id", "someone/ag_news")
    assert out.returncode == 0 and out.stdout.strip() == f"wrote {run / 'README.md'}"
    card = (run / "README.md").read_text()       # the run's own card, with those figures now
    assert 'license: "mit"' in card and 'datasets:\n  - "someone/ag_news"' in card
    assert printed in card and "## Training\n" in card          # the figures, the time
    assert re.search(r"\n- train: [\d,]+ examples\n", card), card[:2000]
    exports, measured = {}, {}
    for fmt, quantize in (("onnx", None), ("litert", None), ("litert", "int8")):
        folder = tmp_path / (fmt + (f"_{quantize}" if quantize else ""))
        out = mmzoo("export", run, "--format", fmt, *(["--quantize", quantize] if quantize
                                                        else []), "--out", folder)
        assert out.returncode == 0, out.stderr[-3000:]
        card = (folder / "README.md").read_text()
        library = {"onnx": "onnx", "litert": "tflite"}[fmt]
        assert card.startswith(f"---\nlibrary_name: \"{library}\"\n") and printed in card
        assert 'license: "mit"' in card and "someone/ag_news" in card     # as the run's card
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["labels"] == evaluation["labels"] and meta["quantize"] == quantize
        assert meta["keras_test"]["accuracy"] == evaluation["accuracy"]    # for comparison
        # model-index: the file's own figures, measured on it at export on the run's test split
        assert meta["test_measured"]["on"] == "model" + {"onnx": ".onnx", "litert": ".tflite"}[fmt]
        assert f"value: {round(meta['test']['accuracy'], 6)}" in card.split("\n---")[0]
        measured[folder.name] = meta["test"]["accuracy"]
        exports[folder.name] = str(folder)
    test = list(zoo.data.load(source, split="test").as_numpy_iterator())
    texts = [e["text"].decode() for e in test]
    labels = [e["label"].decode() for e in test]
    model = zoo.run.open_model(str(run))[0]
    ids = Preprocessor(model).text("text", tf.constant(texts)).numpy()
    data = tmp_path / "test.json"
    data.write_text(json.dumps({"texts": texts, "labels": labels}))
    code = f"""
import json, runpy, sys
sys.modules["tensorflow"] = None
sys.modules["mmzoo"] = None
import numpy as np
runtime = runpy.run_path({os.path.join(os.path.dirname(zoo.__file__), "runtime.py")!r})
data = json.load(open({str(data)!r}))
out = {{}}
for name, folder in {exports!r}.items():
    runner = runtime["Runner"](folder)
    ids = runtime["tokenize"](data["texts"], runner.metadata["inputs"]["text"]["preprocessing"])
    np.save(folder + "/ids.npy", ids)
    scores = runner(text=ids)["scores"]
    said = [runner.metadata["labels"][i] for i in scores.argmax(-1)]
    out[name] = float(np.mean([s == t for s, t in zip(said, data["labels"])]))
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = json.loads(done.stdout.strip().splitlines()[-1])
    for name, folder in exports.items():
        np.testing.assert_array_equal(np.load(os.path.join(folder, "ids.npy")), ids)
    one = 1 / len(texts)
    assert abs(accuracy["onnx"] - evaluation["accuracy"]) <= one, accuracy
    assert abs(accuracy["litert"] - evaluation["accuracy"]) <= one, accuracy
    assert abs(accuracy["litert_int8"] - accuracy["litert"]) <= 0.02, accuracy
    assert accuracy == pytest.approx(measured), (accuracy, measured)   # what each card says
    assert os.path.getsize(os.path.join(exports["litert_int8"], "model.tflite")) < \
        0.35 * os.path.getsize(os.path.join(exports["litert"], "model.tflite"))
