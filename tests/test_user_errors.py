"""A user's mistake is never called a bug: one line, `mmzoo: error: ...`, exit status 2.

The review's list of commands that ended in a traceback and "internal error ... this is a bug",
each run here through the command's own `main` (in this process, for speed), and the data
errors TensorFlow raises while it reads (an unknown label, a file changed or deleted after it
was listed), each translated into mmzoo's own message.
"""

import csv
import os

import pytest
import tensorflow as tf

import mmzoo
from mmzoo.cli import main
from mmzoo.errors import user_message
from conftest import news_rows

ROWS = 60


@pytest.fixture(scope="module")
def news(data_dir, tmp_path_factory):
    """The first 60 AG News rows."""
    return news_rows(data_dir, tmp_path_factory.mktemp("news"), ROWS)


@pytest.fixture(scope="module")
def run(news, tmp_path_factory):
    """A finished tiny run on the news rows."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "text_word_vector_mlp", "--data", f"csv:{news}", "--epochs", "1",
                 "--out", str(out), "--set", "embed_dim=8", "--set", "hidden_units=(8,)"]) == 0
    return out


def one_error(capsys, argv):
    """Run `mmzoo argv`: exit status 2 and one line of error, which is returned."""
    status = main(argv)
    err = [line for line in capsys.readouterr().err.strip().splitlines()  # warnings (e.g. a
           if not line.startswith(("mmzoo: warning: ", "evaluate: scoring"))]  # few examples)
    assert status == 2, err[-20:]
    assert len(err) == 1 and err[0].startswith("mmzoo: error: "), err[-20:]
    assert "internal error" not in err[0] and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("setting, says", [
    ("sequence_length=abc", "config field 'sequence_length' of model 'text_word_vector_mlp' "
                            "must be int, got str 'abc'"),
    ("dropout=1.5", "config field 'dropout' of model 'text_word_vector_mlp' must be at least 0 "
                    "and below 1, got 1.5"),
    ("learning_rate=0", "must be above 0, got 0"),
    ("sequence_length=0", "config field 'sequence_length' of model 'text_word_vector_mlp' must "
                          "be at least 1, got 0"),
])
def test_config_values_of_the_wrong_type_or_range(news, tmp_path, capsys, setting, says):
    line = one_error(capsys, ["train", "text_word_vector_mlp", "--data", f"csv:{news}",
                              "--out", str(tmp_path / "run"), "--set", setting])
    assert says in line, line
    assert not (tmp_path / "run" / "model.keras").exists()


def test_image_sizes_the_graph_cannot_take(capsys):
    line = one_error(capsys, ["describe", "vqa_cnn_lstm", "--set", "image_size=0"])
    assert "'image_size' of model 'vqa_cnn_lstm' must be at least 1, got 0" in line
    line = one_error(capsys, ["describe", "vqa_cnn_lstm", "--set", "image_size=4"])
    assert "cannot be built with image_size=4: MaxPooling2D: Computed output size" in line


def test_query_options_of_the_wrong_type(news, data_dir, capsys):
    assert main(["data", f"csv:{news}?labels=4"]) == 2  # a list of one label: rows named
    err = capsys.readouterr().err
    assert "bad item(s) among 60 rows" in err and "is not one of ['4']" in err
    assert "of them for one reason, e.g. label '" in err  # said once, not row by row
    assert "Traceback" not in err and "internal error" not in err
    line = one_error(capsys, ["data", f"fsdd:{data_dir}/fsdd?sample_rate=fast"])
    assert "option sample_rate='fast' must be an integer (its default is 0)" in line
    line = one_error(capsys, ["data", f"captions:{data_dir}/flickr8k_1k?allow_outside=maybe"])
    assert "option allow_outside='maybe' must be true or false" in line


def test_evaluating_on_data_with_other_labels(run, news, tmp_path, capsys):
    other = tmp_path / "other.csv"
    with open(news, newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        row[0] = "sports" if row[0] == "2" else row[0]
    with open(other, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    line = one_error(capsys, ["evaluate", str(run), "--data", f"csv:{other}"])
    assert "labels not among the classes of model 'text_word_vector_mlp'" in line, line
    assert "sports" in line and "InvalidArgumentError" not in line


def test_data_changed_or_deleted_after_listing_is_the_users_error(news, data_dir, tmp_path):
    copy = tmp_path / "news.csv"
    copy.write_bytes(news.read_bytes())
    ds = mmzoo.data.load(f"csv:{copy}", split="train")
    with open(copy, "a") as f:
        f.write('3,"Another","row"\n')
    with pytest.raises(tf.errors.OpError) as caught:
        list(ds.as_numpy_iterator())
    assert user_message(caught.value) == (
        f"csv:{copy}: {copy} changed after it was listed; open the source again "
        "(mmzoo.data.open_source, or run the command again)")

    root = tmp_path / "fsdd"
    root.mkdir()
    names = sorted(os.listdir(os.path.join(data_dir, "fsdd", "recordings")))[:3]
    for name in names:
        os.symlink(os.path.join(data_dir, "fsdd", "recordings", name), root / name)
    ds = mmzoo.data.load(f"fsdd:{root}")
    os.remove(root / names[1])
    with pytest.raises(tf.errors.OpError) as caught:
        list(ds.as_numpy_iterator())
    message = user_message(caught.value)
    assert message.startswith(f"{root / names[1]}: cannot read audio"), message
    assert user_message(RuntimeError("a bug")) is None  # anything else stays a bug


def test_a_model_that_learned_nothing_is_named(news, tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(["train", "text_word_vector_mlp", "--data", f"csv:{news}", "--epochs", "1",
                 "--out", str(out), "--set", "learning_rate=1e-9", "--set", "embed_dim=8",
                 "--set", "hidden_units=(8,)"]) == 0
    err = capsys.readouterr().err
    assert "text_word_vector_mlp learned nothing: its validation accuracy" in err
    assert "too few epochs (1)" in err
    assert main(["evaluate", str(out), "--split", "validation", "--json"]) == 0
    said = capsys.readouterr()
    line = json.loads(said.out)["learned_nothing"]
    assert line.startswith("text_word_vector_mlp learned nothing: its accuracy")
    assert f"mmzoo: warning: {line}" in said.err


@pytest.mark.parametrize("argv, says", [
    (["train", "text_word_vector_mlp", "--epochs", "0"], "--epochs: must be at least 1, got 0"),
    (["train", "text_word_vector_mlp", "--batch-size", "0"],
     "--batch-size: must be at least 1, got 0"),
    (["train", "text_word_vector_mlp", "--out", "{file}"], "is a file, not a folder"),
    (["data", "csv:{news}", "--prepare", "{file}"], "is a file, not a folder"),
])
def test_plain_mistakes_are_one_line_and_write_nothing(news, tmp_path, capsys, argv, says):
    """Each of the review's plain mistakes: exit 2, one line, and nothing written."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    argv = [a.format(news=news, file=afile) for a in argv]
    if argv[0] == "train":
        argv += ["--data", f"csv:{news}"] + ([] if "--out" in argv else
                                             ["--out", str(tmp_path / "run")])
    if "--epochs" in argv or "--batch-size" in argv:
        with pytest.raises(SystemExit) as e:   # argparse: before anything starts
            main(argv)
        assert e.value.code == 2 and says in capsys.readouterr().err
    else:
        assert says in one_error(capsys, argv)
    assert sorted(os.listdir(tmp_path)) == ["afile"] and afile.read_text() == "mine"


def test_a_closed_output_pipe_ends_quietly(news):
    """`mmzoo ... | head`: the reader is gone before mmzoo writes; it ends without a
    traceback."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "mmzoo.cli", "list"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()              # nobody reads: its first write meets a closed pipe
    err = child.stderr.read()
    assert child.wait() == 0 and "Traceback" not in err and "internal error" not in err, err


def test_small_data_trains_and_validates(data_dir, tmp_path, capsys):
    """Twelve images in three class folders (and twelve table rows): validation is never empty,
    whatever the hash holds out, so the run trains and picks its best epoch."""
    import shutil

    from mmzoo.data import easy_vqa

    from mmzoo.data.base import hash_split, held_out

    folder = easy_vqa.package_dir()
    names, k = [], 0
    for name in sorted(os.listdir(os.path.join(folder, "train", "images"))):
        identity = f"{'abc'[k % 3]}/{name}"   # in training, and not held out by the hash
        if hash_split(identity) == "train" and not held_out(identity):
            names.append(identity)
            k += 1
        if len(names) == 12:
            break
    for identity in names:
        os.makedirs(tmp_path / "photos" / identity.split("/")[0], exist_ok=True)
        shutil.copy(os.path.join(folder, "train", "images", identity.split("/")[1]),
                    tmp_path / "photos" / identity)
    train, validation = mmzoo.data.fit_splits(f"images:{tmp_path / 'photos'}")
    assert (int(train.cardinality()), int(validation.cardinality())) == (11, 1)
    assert main(["train", "image_classifier", "--data", f"images:{tmp_path / 'photos'}",
                 "--epochs", "1", "--set", "image_size=16", "--set", "filters=4,8",
                 "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err[-2000:]
