"""`mmzoo.export` writes a SavedModel without ever destroying what it did not write."""

import os
import shutil
import sys

import pytest
import tensorflow as tf

import mmzoo
from conftest import tree
from mmzoo.run import MARKER, is_export
from mmzoo.registry import get_spec


@pytest.fixture(scope="module")
def model():
    return mmzoo.build("text_word_vector_mlp", **get_spec("text_word_vector_mlp").test_config)


def test_export_writes_a_marked_savedmodel_and_replaces_a_previous_export(model, tmp_path):
    sm = tmp_path / "sm"
    assert mmzoo.export(model, sm) == str(sm)
    assert is_export(sm) and os.path.isfile(sm / MARKER)
    assert sorted(os.listdir(tmp_path)) == ["sm"]   # no staging folder left behind
    mmzoo.export(model, sm)                          # a previous export: replaced whole
    assert is_export(sm) and sorted(os.listdir(tmp_path)) == ["sm"]
    (sm / "saved_model.pb").write_bytes(b"edited")   # a file it wrote, changed since
    with pytest.raises(ValueError, match=r"its \['saved_model.pb'\] changed since export wrote"):
        mmzoo.export(model, sm)
    assert (sm / "saved_model.pb").read_bytes() == b"edited"
    shutil.rmtree(sm)
    mmzoo.export(model, sm)
    served = tf.saved_model.load(str(sm))
    assert served.signatures["serving_default"](text=tf.constant(["a"]))["label"].shape == (1,)
    empty = tmp_path / "empty"
    empty.mkdir()
    mmzoo.export(model, empty)                       # an empty folder is used as it is
    assert is_export(empty)


def test_export_never_replaces_what_it_did_not_write(model, tmp_path):
    run = tmp_path / "run"                           # a training run, as `mmzoo train` writes
    (run / "logs").mkdir(parents=True)
    for name in ("model.keras", "config.json", "history.csv"):
        (run / name).write_text(name)
    before = tree(run)
    with pytest.raises(ValueError, match=rf"cannot export to {run}: it already holds "
                                         r"config.json, history.csv, logs/, model.keras, which "
                                         r"is not an mmzoo export \(no assets.extra/"):
        mmzoo.export(model, run)
    assert tree(run) == before

    sm = tmp_path / "sm"                             # a previous export with a stranger's file
    mmzoo.export(model, sm)
    (sm / "notes.txt").write_text("mine")
    before = tree(sm)
    with pytest.raises(ValueError, match=r"previous mmzoo export but also holds \['notes.txt'\]"):
        mmzoo.export(model, sm)
    assert tree(sm) == before
    os.remove(sm / "notes.txt")                      # ... or inside the export's own folders
    (sm / "variables" / "mine.txt").write_text("mine")
    (sm / "assets.extra" / "card.md").write_text("mine")
    before = tree(sm)
    with pytest.raises(ValueError, match=r"also holds \['assets.extra/card.md', "
                                         r"'variables/mine.txt'\]"):
        mmzoo.export(model, sm)
    assert tree(sm) == before

    plain = tmp_path / "file"
    plain.write_text("a file")
    with pytest.raises(ValueError, match="it is a file, not a folder"):
        mmzoo.export(model, plain)
    assert plain.read_text() == "a file"

    old = tmp_path / "sm2.old"                        # a folder that only shares the name
    old.mkdir()
    (old / "keep.txt").write_text("keep")
    mmzoo.export(model, tmp_path / "sm2")
    mmzoo.export(model, tmp_path / "sm2")
    assert (old / "keep.txt").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["file", "run", "sm", "sm2", "sm2.old"]


def test_an_interrupted_export_leaves_no_staging_folder(model, tmp_path):
    """A kill leaves export's staging folder (marked as mmzoo's, with its process); the next
    export beside it removes it, and never a folder mmzoo did not mark."""
    import socket
    import subprocess
    import sys

    from mmzoo.artifacts import MARKER as STAGED

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = socket.gethostname().replace(os.sep, "_").replace("-", "_")
    killed = tmp_path / f".sm.staging-{host}-{dead}-x1y2"
    (killed / "model" / "variables").mkdir(parents=True)
    (killed / STAGED).write_text(dead)
    lookalike = tmp_path / f".sm.staging-{host}-{dead}-mine"   # not marked: not mmzoo's
    lookalike.mkdir()
    mmzoo.export(model, tmp_path / "sm")
    assert sorted(os.listdir(tmp_path)) == [lookalike.name, "sm"]


def test_a_served_audio_classifier_centres_each_clip_of_a_padded_batch(data_dir, tmp_path):
    """Clips of different lengths zero-padded into one batch get the scores each gets alone:
    every clip is centred on its own samples, not on the padded batch's."""
    import numpy as np

    model = mmzoo.build("audio_mfcc_cnn", **get_spec("audio_mfcc_cnn").test_config)
    mmzoo.export(model, tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm"))
    serve = served.signatures["serving_default"]
    clips = [e["audio"] for e in mmzoo.data.load(f"fsdd:{data_dir}/fsdd", split="test")
             .take(3).as_numpy_iterator()]
    assert len({len(c) for c in clips}) == 3
    longest = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, longest - len(c))) for c in clips])
    together = serve(audio=tf.constant(batch))["scores"].numpy()
    alone = np.concatenate([serve(audio=tf.constant(c[None]))["scores"].numpy() for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_portable_export_replaces_only_itself_and_says_what_it_holds(model, tmp_path):
    """An ONNX export folder holds model.onnx, metadata.json (its files, labels, how to make
    the token ids) and the card; it is replaced by the next export (of any format), never when
    it also holds a file of someone else's."""
    import json

    onnx = tmp_path / "onnx"
    mmzoo.export(model, onnx, format="onnx")
    assert sorted(os.listdir(onnx)) == ["README.md", "metadata.json", "model.onnx"]
    meta = json.loads((onnx / "metadata.json").read_text())
    assert meta["files"] == ["README.md", "model.onnx", "metadata.json"] and is_export(onnx)
    text = meta["inputs"]["text"]
    assert text["dtype"] == "int32" and text["shape"] == [None, 6]
    assert text["preprocessing"]["standardize"]["replace"] == r"[^\p{L}\p{N}]+"
    assert meta["graphs"]["model"]["outputs"]["scores"]["shape"] == [None, 3]
    mmzoo.export(model, onnx, format="litert")        # a previous export: replaced whole
    assert sorted(os.listdir(onnx)) == ["README.md", "metadata.json", "model.tflite"]
    (onnx / "notes.txt").write_text("mine")
    before = tree(onnx)
    with pytest.raises(ValueError, match=r"previous mmzoo export but also holds \['notes.txt'\]"):
        mmzoo.export(model, onnx, format="onnx")
    assert tree(onnx) == before
    with pytest.raises(ValueError, match="quantize=int8 is for format litert"):
        mmzoo.export(model, tmp_path / "q", format="onnx", quantize="int8")
    with pytest.raises(ValueError, match="calibrates on training data"):
        mmzoo.export(model, tmp_path / "q", format="litert", quantize="int8")
    assert not (tmp_path / "q").exists()


def test_an_export_killed_between_its_two_moves_keeps_the_previous_one(model, tmp_path,
                                                                        monkeypatch):
    """The previous export waits beside the folder (`.NAME.mmzoo-previous`, never in the
    staging folder that a sweep removes) while the new one moves in: a failed move puts it
    back at once; a process killed between the moves leaves it there, and the next export
    puts it back first (here that export fails: the previous is what `sm` holds)."""
    import signal
    import sys

    from mmzoo import artifacts

    sm = tmp_path / "sm"
    mmzoo.export(model, sm)
    before = tree(sm)
    real = os.replace

    def failing(src, dst):
        if os.path.basename(str(src)) == "model":      # the new export moving in
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        mmzoo.export(model, sm)
    monkeypatch.setattr(os, "replace", real)
    assert tree(sm) == before and sorted(os.listdir(tmp_path)) == ["sm"]

    new = tmp_path / "new"
    shutil.copytree(sm, new)
    pid = os.fork()
    if pid == 0:                                       # a process killed between the moves
        try:
            os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
            artifacts.swap_in(str(new), str(sm), str(tmp_path))
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] & 0x7F == signal.SIGKILL
    assert not sm.exists() and tree(tmp_path / ".sm.mmzoo-previous") == before

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(sys.modules["mmzoo.export"], "_write", broken)
    with pytest.raises(RuntimeError, match="converter crashed"):
        mmzoo.export(model, sm)
    assert tree(sm) == before and sorted(os.listdir(tmp_path)) == ["new", "sm"]
    monkeypatch.undo()
    mmzoo.export(model, sm)                             # and replaced as any previous export
    assert is_export(sm) and sorted(os.listdir(tmp_path)) == ["new", "sm"]


def test_exports_and_prepared_data_follow_the_umask(model, tmp_path, data_dir):
    """Under umask 002 a team shares what one of them wrote: folders 0775, files 0664 (not
    the 0700 of the staging folder they were written in); under 077, 0700 and 0600."""
    def modes(root):
        found = {(os.stat(root).st_mode & 0o777)}
        for folder, dirs, files in os.walk(root):
            found |= {os.stat(os.path.join(folder, n)).st_mode & 0o777 for n in dirs + files}
        return found

    news = tmp_path / "news.csv"
    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        news.write_text("".join(f.readline() for _ in range(11)))
    old = os.umask(0o002)
    try:
        prepared, _ = mmzoo.data.prepare(f"csv:{news}", str(tmp_path / "prepared"))
        exported = mmzoo.export(model, tmp_path / "onnx", format="onnx")
        os.umask(0o077)
        private = mmzoo.export(model, tmp_path / "sm", format="saved_model")
    finally:
        os.umask(old)
    assert modes(prepared) == modes(exported) == {0o775, 0o664}
    assert modes(private) == {0o700, 0o600}


def _tiny_table(folder):
    """A CSV of the model's labels with its own test split: the data a portable export's
    figures are measured on."""
    path = folder / "t.csv"
    rows = [f"{'abc'[i % 3]},word{i % 3} w{i},{'test' if i % 2 else 'train'}" for i in range(18)]
    path.write_text("label,text,split\n" + "\n".join(rows) + "\n")
    return f"csv:{path}"


def test_a_portable_export_reports_the_figures_of_its_own_file(model, tmp_path):
    """With data, an ONNX export's `model-index` holds the figures of model.onnx itself, run
    in onnxruntime at export on the test split (as `mmzoo evaluate` scores the Keras model:
    the same, for a float file), and says so; without data it holds none, and says why."""
    import json
    import warnings

    data = _tiny_table(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # few training rows per class
        folder = mmzoo.export(model, tmp_path / "onnx", format="onnx", data=data)
        keras_figures = mmzoo.evaluate(model, mmzoo.data.load(data, split="test"))
    meta = json.loads(open(os.path.join(folder, "metadata.json")).read())
    card = open(os.path.join(folder, "README.md")).read()
    assert meta["test_measured"]["on"] == "model.onnx"
    assert meta["test_measured"]["runtime"].startswith("onnxruntime ")
    assert meta["test"]["accuracy"] == keras_figures["accuracy"]
    assert meta["test_evaluation"]["examples"] == 9
    assert f"value: {round(keras_figures['accuracy'], 6)}" in card and "model-index" in card
    assert "Measured on this file at export (model.onnx run in onnxruntime" in card
    bare = mmzoo.export(model, tmp_path / "bare", format="litert")
    card = open(os.path.join(bare, "README.md")).read()
    assert "model-index:" not in card and "metrics:" not in card
    assert "Not measured on this file: no data was given at export" in card


def test_cards_name_the_licence_hub_datasets_and_format_and_no_local_path(model, tmp_path,
                                                                        monkeypatch):
    """A card's front matter has the licence (`unknown` unless given, and said so), hub
    dataset ids only as given (never the local data source), the library that loads its
    format; no absolute local path anywhere; and its usage snippet runs in the folder."""
    import runpy

    import numpy as np

    from mmzoo.metrics import classification_metrics
    from mmzoo.run import RunFolder

    run = RunFolder(tmp_path / "run")              # a run's record, with local paths in it
    with run.held():
        run.write_json("config.json", {"data": f"parquet:{tmp_path}/pets.parquet",
                                       "config": {"weights": f"{tmp_path}/w/backbone.h5"}})
        figures = classification_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), "abc")
        run.write_json("evaluation_test.json", {"model": model.name, "task": "classification",
                                                "data": f"parquet:{tmp_path}/pets.parquet",
                                                "split": "test", **figures})
    libraries = {"saved_model": "tf", "onnx": "onnx", "litert": "tflite"}
    for fmt, library in libraries.items():
        folder = mmzoo.export(model, tmp_path / fmt, format=fmt, run=str(run.path))
        card = open(os.path.join(folder, "README.md")).read()
        front = card.split("---")[1]
        assert f'library_name: "{library}"' in front and 'license: "unknown"' in front
        assert "datasets:" not in front and "parquet" not in front.split("model-index")[0]
        assert "Not given: the licence is unknown" in card
        assert str(tmp_path) not in card and "/w/" not in card
        assert "`parquet:pets.parquet`" in card and "backbone.h5" in card
        assert ("model-index:" in front) == (fmt == "saved_model")   # the Keras model's figures
        snippet = card.split("```python\n")[1].split("```")[0]
        monkeypatch.chdir(folder)
        monkeypatch.syspath_prepend(os.path.dirname(mmzoo.__file__))   # runtime.py "copied"
        (tmp_path / f"{fmt}.py").write_text(snippet)
        runpy.run_path(str(tmp_path / f"{fmt}.py"))   # loads the folder's files and calls them
        monkeypatch.undo()
    sys.modules.pop("runtime", None)
    folder = mmzoo.export(model, tmp_path / "given", run=str(run.path), license="apache-2.0",
                          dataset_ids=["Jakobovski/free-spoken-digit-dataset"])
    front = open(os.path.join(folder, "README.md")).read().split("---")[1]
    assert 'license: "apache-2.0"' in front
    assert 'datasets:\n  - "Jakobovski/free-spoken-digit-dataset"' in front
    with pytest.raises(ValueError, match=r"--dataset-id 'parquet:pets.parquet' is not a hub"):
        mmzoo.export(model, tmp_path / "bad", dataset_ids=["parquet:pets.parquet"])
    with pytest.raises(ValueError, match=r"--license 'Apache License' is not a licence id"):
        mmzoo.export(model, tmp_path / "bad", license="Apache License")
    assert not (tmp_path / "bad").exists()


def test_an_export_without_onnxruntime_says_its_file_was_not_run(model, tmp_path, monkeypatch,
                                                                 capsys):
    """Where onnxruntime is missing (it is a dependency; a broken install), the ONNX file is
    not run at export: stderr and the model card say so, and no figures are reported."""
    import json

    monkeypatch.setitem(sys.modules, "onnxruntime", None)        # `import onnxruntime` fails
    folder = mmzoo.export(model, tmp_path / "onnx", format="onnx", data=_tiny_table(tmp_path))
    err = capsys.readouterr().err
    assert "model.onnx was not run at export: onnxruntime is not installed" in err
    assert "figures were not measured: onnxruntime was not installed" in err
    card = open(os.path.join(folder, "README.md")).read()
    assert "Checked: not run at export: onnxruntime was not installed" in card
    assert "model-index:" not in card
    meta = json.loads(open(os.path.join(folder, "metadata.json")).read())
    assert meta["graphs"]["model"]["checked"].startswith("not run at export")
