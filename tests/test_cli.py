"""The command line end to end: train (resume after SIGKILL, mirrored, multi-worker), evaluate,
export with raw inputs, predict; and an export loaded by a process that cannot import mmzoo."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

TINY = ["--set", "image_size=16", "--set", "filters=(8,16)", "--set", "embed_dim=16",
        "--set", "text_units=16", "--set", "hidden_units=(16,)"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}


def mmzoo(*args, env=None, timeout=600):
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


def test_predict_a_real_png_gives_an_answer(trained, tiny_easy_vqa):
    _, exported = trained
    answers = open(os.path.join(tiny_easy_vqa, "answers.txt")).read().split()
    image = os.path.join(tiny_easy_vqa, "test", "images", "0.png")
    out = mmzoo("predict", exported, "--image", image, "--question",
                "what shape is in the image?")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() in answers
    out = mmzoo("predict", exported, "--image", image)
    assert out.returncode == 2
    assert "takes ['image', 'question'] (give --image --question); got ['image']" in out.stderr


def test_evaluate_prints_metrics_and_ablation(trained, tiny_easy_vqa):
    run, _ = trained
    out = mmzoo("evaluate", run, "--data", f"easy_vqa:{tiny_easy_vqa}", "--split", "test",
                "--modality-ablation")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["task"] == "vqa" and 0 <= result["accuracy"] <= 1
    n = len(result["labels"])
    matrix = result["confusion_matrix"]
    assert len(matrix) == n and sum(map(sum, matrix)) == result["examples"]
    assert {"macro_precision", "macro_recall", "macro_f1"} <= set(result)
    assert set(result["ablation"]) == {"image_zeroed", "question_zeroed"}
    assert json.load(open(run / "evaluation_test.json"))["accuracy"] == result["accuracy"]


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
    answers = open(os.path.join(tiny_easy_vqa, "answers.txt")).read().split()
    assert all(a in answers for a in labels.split(",")) and shape.startswith("(2,")


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
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (run / "config.json").write_text(json.dumps({"model": "vqa_cnn_lstm", "seed": 5}))
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", 1,
                "--out", run, *TINY)
    assert out.returncode == 2 and "holds an unfinished run with different" in out.stderr


def test_mirrored_on_two_logical_cpus(tiny_easy_vqa, tmp_path):
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", 1,
                "--batch-size", 16, "--out", tmp_path / "run", "--strategy", "mirrored",
                "--cpu-devices", 2, *TINY)
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
    assert sorted(os.listdir(run)) == ["config.json", "history.csv", "logs", "model.keras"]


def test_strategies_fail_clearly_without_their_hardware(tiny_easy_vqa, tmp_path):
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--out",
                tmp_path / "run", "--strategy", "tpu")
    assert out.returncode == 2 and "strategy 'tpu' needs a TPU, and none was found" in out.stderr
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    out = mmzoo("train", "vqa_cnn_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--out",
                tmp_path / "run", "--strategy", "multi_worker", env=env)
    assert out.returncode == 2 and "reads the cluster from the TF_CONFIG" in out.stderr


def test_predict_audio_file_resampled_to_the_model_rate(data_dir, tmp_path):
    import mmzoo as zoo
    from mmzoo.registry import get_spec

    config = {**get_spec("audio_mfcc_cnn").test_config, "labels": tuple("0123456789")}
    model = zoo.build("audio_mfcc_cnn", **config)                    # 4 kHz
    zoo.export(model, tmp_path / "sm")
    clip = os.path.join(data_dir, "fsdd", "recordings", "7_george_0.wav")  # 8 kHz on disk
    out = mmzoo("predict", tmp_path / "sm", "--audio", clip, "-v")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split("\n")
    assert lines[0] in "0123456789" and len(lines[0]) == 1 and lines[1].startswith(f"  {lines[0]}:")
