"""Users' own data in the shapes they keep it: tables (CSV as people save it, JSON Lines,
Parquet with Hugging Face image structs) and one folder per class."""

import csv
import json
import os
import re
import shutil
import warnings

import numpy as np
import pytest

import mmzoo
from conftest import news_rows, run_mmzoo
from mmzoo.checks import BadDataError
from mmzoo.errors import DataWarning, InvalidValue


@pytest.fixture(scope="module")
def news(data_dir, tmp_path_factory):
    """The first 60 AG News rows, as `[(text, label)]` and as a plain CSV."""
    path = news_rows(data_dir, tmp_path_factory.mktemp("news"), 60)
    with open(path, newline="") as f:
        rows = [(f"{r['title'].strip()} {r['description'].strip()}".strip(), r["label"])
                for r in csv.DictReader(f)]
    return rows, path


def read(source, split=None, **options):
    ds = mmzoo.data.load(source, split=split, **options)
    return [(e["text"].decode(), e["label"].decode()) for e in ds.as_numpy_iterator()]


def write(path, rows, encoding="utf-8", delimiter=","):
    with open(path, "w", newline="", encoding=encoding) as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def test_csv_as_people_save_it(news, tmp_path):
    rows, plain = news
    table = [["text", "label"], *[[t, lab] for t, lab in rows]]
    assert read(f"csv:{plain}") == rows
    # Excel: a byte-order mark and `;` between columns (found from the header)
    excel = write(tmp_path / "excel.csv", table, encoding="utf-8-sig", delimiter=";")
    assert read(f"csv:{excel}") == rows
    # a tab-separated file, named by option
    tabs = write(tmp_path / "tabs.tsv", table, delimiter="\t")
    assert read(f"csv:{tabs}?delimiter=tab") == rows
    # Latin-1, read as what it is with encoding=
    accented = [[t.replace("the", "thé", 1), lab] for t, lab in table[1:]]
    latin = write(tmp_path / "latin1.csv", [table[0], *accented], encoding="latin-1")
    assert read(f"csv:{latin}?encoding=latin-1") == [tuple(r) for r in accented]
    # ... read as UTF-8, each undecodable row is a bad row named with its line
    bad = [i for i, (t, _) in enumerate(accented) if "thé" in t]
    assert bad
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{latin}")
    # every one bad for one reason: said once, with where it first is
    assert (f"{len(bad)} of them for one reason, e.g. not UTF-8 text (byte b'\\xe9')"
            in str(e.value)) and f"latin1.csv:{bad[0] + 2}," in str(e.value)
    assert "encoding=latin-1" in str(e.value) and len(e.value.problems) == len(bad)
    with pytest.warns(DataWarning, match=f"skipped {len(bad)} bad item"):
        kept = read(f"csv:{latin}", on_error="skip")
    assert kept == [tuple(r) for i, r in enumerate(accented) if i not in bad]


def test_quoted_newlines_keep_rows_whole_and_lines_right(news, tmp_path):
    rows, _ = news
    table = [["text", "label"], ["first line\nsecond line of one text", "1"],
             *[[t, lab] for t, lab in rows[:20]], ["...", "2"]]
    path = write(tmp_path / "quoted.csv", table)
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{path}")
    # the header is line 1, the two-line row lines 2-3: the punctuation-only row is line 24
    assert e.value.problems == [(f"{path}:24", "text '...' (text) has no letters or digits: "
                                               "it standardises to nothing")]
    got = read(f"csv:{path}", on_error="skip")
    assert got[0] == ("first line\nsecond line of one text", "1") and len(got) == 21


def test_labels_only_outside_training_are_named_before_training(news, tmp_path):
    rows, _ = news
    table = [["text", "label", "split"], *[[t, lab, "train"] for t, lab in rows[:40]],
             *[[t, lab, "test"] for t, lab in rows[40:]]]
    table.append(["a headline of a class seen nowhere else", "sport", "test"])
    path = write(tmp_path / "split.csv", table)
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{path}", split="test")
    assert e.value.problems == [(f"{path}:62", "label 'sport' is only in test rows, never in "
                                               "training: a model cannot learn it; add "
                                               "training rows of it, or remove them")]
    with pytest.warns(DataWarning):
        assert len(read(f"csv:{path}", "test", on_error="skip")) == 20
    # every row, as `mmzoo evaluate` scores data that is not a run's own, keeps it
    assert len(read(f"csv:{path}")) == 61


def _hashed_to(split, stem):
    """A headline `f"{stem} N"` whose row hashes into `split` (its identity is its text)."""
    from mmzoo.data.base import hash_split

    return next(f"{stem} {n}" for n in range(1000) if hash_split(f"{stem} {n}") == split)


def test_splits_never_move_as_rows_are_added(news, tmp_path):
    """A class of one row that hashes into test stays in test (a bad row once a split is read,
    never moved into training); a second row of it does not move the first."""
    rows, _ = news
    lone = _hashed_to("test", "sport headline")
    table = [["text", "label"], *[[t, lab] for t, lab in rows], [lone, "sport"]]
    path = write(tmp_path / "hashed.csv", table)
    with pytest.raises(BadDataError, match=r"label 'sport' is only in test rows, never in "
                                           r"training \(each row's split is drawn from a hash"):
        mmzoo.data.load(f"csv:{path}", split="train")
    test = dict(read(f"csv:{path}", "test", on_error="skip"))
    assert lone not in test  # a bad row, named in a warning
    second = _hashed_to("train", "sport report")
    path = write(tmp_path / "hashed.csv", [*table, [second, "sport"]])
    test, train = (dict(read(f"csv:{path}", split)) for split in ("test", "train"))
    assert test[lone] == "sport" and lone not in train and second in train


@pytest.fixture(scope="module")
def vqa_rows(tiny_easy_vqa):
    """easy-VQA questions of the tiny folder's first 12 training images: `[(image path,
    question, answer)]`."""
    with open(os.path.join(tiny_easy_vqa, "train", "questions.json")) as f:
        rows = [r for r in json.load(f) if r[2] < 12]
    return [(os.path.join(tiny_easy_vqa, "train", "images", f"{i}.png"), q, a)
            for q, a, i in rows]


def test_a_table_of_images_reads_alike_from_csv_jsonl_and_parquet(vqa_rows, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(tmp_path / "photos")
    names = []
    for path, _, _ in vqa_rows:
        names.append(f"photos/{os.path.basename(path)}")
        shutil.copy(path, tmp_path / names[-1])
    # CSV with the user's own column names, mapped by options
    write(tmp_path / "t.csv", [["photo", "ask", "answer"],
                               *[[n, q, a] for n, (_, q, a) in zip(names, vqa_rows)]])
    with open(tmp_path / "t.jsonl", "w") as f:
        for n, (_, q, a) in zip(names, vqa_rows):
            f.write(json.dumps({"photo": n, "ask": q, "answer": a}) + "\n")
    # Parquet as Hugging Face `datasets` writes an Image feature: a struct of bytes and path
    images = [{"bytes": open(p, "rb").read(), "path": os.path.basename(p)}
              for p, _, _ in vqa_rows]
    pq.write_table(pa.table({"photo": images, "ask": [q for _, q, _ in vqa_rows],
                             "answer": [a for _, _, a in vqa_rows]}), tmp_path / "t.parquet")
    got = {}
    for kind in ("csv", "jsonl", "parquet"):
        source = f"{kind}:{tmp_path / f't.{kind}'}?image=photo&question=ask&label=answer"
        examples = list(mmzoo.data.load(source, task="vqa").as_numpy_iterator())
        got[kind] = examples
        assert sorted(examples[0]) == ["image", "label", "question"]
    assert len(got["csv"]) == len(vqa_rows)
    for a, b, c in zip(got["csv"], got["jsonl"], got["parquet"]):
        assert a["question"] == b["question"] == c["question"]
        assert a["label"] == b["label"] == c["label"]
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["image"], c["image"])
    # every row of a photo is in the split of that photo
    src = mmzoo.data.open_source(f"csv:{tmp_path / 't.csv'}?image=photo&question=ask&"
                                 "label=answer")
    photos = {split: [e["image"] for e in src.dataset(split, "vqa", decode=False)
                      .as_numpy_iterator()] for split in src.split_names()}
    assert sum(map(len, photos.values())) == len(vqa_rows) and len(photos) > 1
    for split, mine in photos.items():
        others = {p for s, theirs in photos.items() if s != split for p in theirs}
        assert not set(mine) & others, split


def test_a_file_is_one_item_however_it_is_named(vqa_rows, tmp_path):
    """`x.png`, `./x.png` and `sub/../x.png` are one photo in one split; Parquet structs are
    told apart by their bytes, not by the base name Hugging Face keeps as their `path`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted({p for p, _, _ in vqa_rows})
    rows = [["image", "text"]]
    for i, path in enumerate(paths):
        shutil.copy(path, tmp_path / f"{i}.png")
        rows += [[spelled.format(i), f"photo {i} caption {k}"]
                 for k, spelled in enumerate(["{}.png", "./{}.png", "sub/../{}.png"])]
    table = write(tmp_path / "spelled.csv", rows)
    src = mmzoo.data.open_source(f"csv:{table}")
    examples = {split: list(src.dataset(split, "captioning", decode=False).as_numpy_iterator())
                for split in src.split_names()}
    assert sum(len(v) for v in examples.values()) == len(paths)
    assert all(len(e["captions"]) == 3 for v in examples.values() for e in v)
    # 12 distinct photos, each `1.jpg` of its own class folder: 12 examples, not 1
    structs = [{"bytes": open(p, "rb").read(), "path": "1.jpg"} for p in paths]
    pq.write_table(pa.table({"image": structs, "text": [f"caption {i}" for i in
                                                        range(len(paths))]}),
                   tmp_path / "hub.parquet")
    ds = mmzoo.data.load(f"parquet:{tmp_path / 'hub.parquet'}", task="captioning")
    assert int(ds.cardinality()) == len(paths) == len(set(paths))


def test_a_hub_layout_parquet_folder_trains_and_predicts_class_names(tiny_easy_vqa, tmp_path):
    """`parquet:DIR` reads the Hugging Face Hub's layout (`data/train-*.parquet`,
    `data/test-*.parquet`): the splits from the file names, the ClassLabel names (in the
    files' `huggingface` metadata) as the labels, so a model trained on it answers names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["circle", "rectangle", "triangle"]
    meta = json.dumps({"info": {"features": {"image": {"_type": "Image"}, "label": {
        "names": names, "_type": "ClassLabel"}}}})
    from mmzoo.data import easy_vqa

    os.makedirs(tmp_path / "hub" / "data")
    for split, shard in (("train", "train-00000-of-00001"), ("test", "test-00000-of-00001")):
        with open(os.path.join(tiny_easy_vqa, split, "questions.json")) as f:
            captions, _ = easy_vqa.captions_by_image(*zip(*json.load(f)))
        folder = os.path.join(tiny_easy_vqa, split, "images")
        images = [{"bytes": open(os.path.join(folder, f"{i}.png"), "rb").read(),
                   "path": f"{i}.png"} for i in sorted(captions)]
        labels = [names.index(captions[i].split()[-1]) for i in sorted(captions)]
        table = pa.table({"image": images, "label": labels}).replace_schema_metadata(
            {"huggingface": meta})
        pq.write_table(table, tmp_path / "hub" / "data" / f"{shard}.parquet")
    src = mmzoo.data.open_source(f"parquet:{tmp_path / 'hub'}")
    assert src.split_names() == ("train", "test") and src.own_splits
    assert {e["label"].decode() for e in src.dataset("test", decode=False)
            .as_numpy_iterator()} <= set(names)
    run = tmp_path / "run"
    out = run_mmzoo("train", "image_classifier", "--data", f"parquet:{tmp_path / 'hub'}",
                    "--epochs", "1", "--set", "image_size=16", "--set", "filters=4,8",
                    "--out", str(run))
    assert out.returncode == 0, out.stderr[-2000:]
    photo = tmp_path / "photo.png"
    photo.write_bytes(images[0]["bytes"])
    out = run_mmzoo("predict", str(run), "--image", str(photo), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    top = json.loads(out.stdout)[0]["top"]
    assert sorted(t["label"] for t in top) == names


def test_table_rows_with_bad_files_are_named(vqa_rows, tmp_path):
    os.makedirs(tmp_path / "photos")
    good = vqa_rows[0][0]
    shutil.copy(good, tmp_path / "photos" / "ok.png")
    with open(good, "rb") as f:
        (tmp_path / "photos" / "cut.png").write_bytes(f.read()[:200])
    table = write(tmp_path / "t.csv", [["image", "text", "label"],
                                       ["photos/ok.png", "a circle", "yes"],
                                       ["photos/cut.png", "a circle", "yes"],
                                       ["photos/gone.png", "a circle", "no"],
                                       ["../elsewhere.png", "a circle", "no"]])
    with pytest.raises(BadDataError) as e:
        mmzoo.data.open_source(f"csv:{table}")
    problems = dict(e.value.problems)
    assert "truncated PNG" in problems[f"{table}:3"]
    assert problems[f"{table}:4"].endswith("gone.png: missing")
    assert "climbs out of the data folder" in problems[f"{table}:5"]
    assert f"{table}:2" not in problems


def test_labels_of_any_type_read_the_same(tmp_path):
    rows = [{"text": f"row number {i} says {w}", "label": v}
            for i, (w, v) in enumerate([("yes", 1), ("no", 0), ("half", 0.5), ("one", 1.0),
                                        ("true", True)] * 4)]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        labels = {lab for _, lab in read(f"jsonl:{path}")}
        assert labels == {"1", "0", "0.5", "true"}
        model = mmzoo.build("text_word_vector_mlp", sequence_length=6, embed_dim=8,
                            hidden_units=(8,), **mmzoo.data.adapt(
                                "text_word_vector_mlp", mmzoo.data.load(f"jsonl:{path}")))
    # numbers sort as numbers, then the rest as text: the model's classes
    assert model.get_layer("scores").names == ["0", "0.5", "1", "true"]


def test_captions_and_transcripts_from_tables(vqa_rows, data_dir, tmp_path):
    names = sorted({p for p, _, _ in vqa_rows})[:3]
    rows = [["image", "text", "split"]]
    for n in names:
        rows += [[n, f"caption {k} of {os.path.basename(n)}", "train"] for k in range(3)]
    table = write(tmp_path / "captions.csv", rows)
    examples = list(mmzoo.data.load(f"csv:{table}?allow_outside=true", task="captioning")
                    .as_numpy_iterator())
    assert [len(e["captions"]) for e in examples] == [3, 3, 3]
    assert examples[0]["captions"][2].decode() == f"caption 2 of {os.path.basename(names[0])}"
    fsdd = os.path.join(data_dir, "fsdd", "recordings")
    files = sorted(os.listdir(fsdd))[:4]
    words = ["zero", "zero", "zero", "zero"]
    table = write(tmp_path / "speech.csv", [["audio", "transcript", "speaker"],
                                            *[[os.path.join(fsdd, f), w, f.split("_")[1]]
                                              for f, w in zip(files, words)]])
    src = mmzoo.data.open_source(f"csv:{table}?allow_outside=true")
    assert src.audio_rates() == {8000: 4}
    e = next(src.dataset(None, "transcription").as_numpy_iterator())
    assert e["transcript"] == b"zero" and e["sample_rate"] == 8000 and e["audio"].ndim == 1


def test_folder_per_class(tiny_easy_vqa, data_dir, tmp_path):
    from mmzoo.data import easy_vqa

    with open(os.path.join(tiny_easy_vqa, "train", "questions.json")) as f:
        q, a, ids = zip(*json.load(f))
    captions, _ = easy_vqa.captions_by_image(q, a, ids)
    root = tmp_path / "shapes"
    for i, caption in captions.items():
        os.makedirs(root / caption.split()[-1], exist_ok=True)
        shutil.copy(os.path.join(tiny_easy_vqa, "train", "images", f"{i}.png"),
                    root / caption.split()[-1] / f"{i}.png")
    (root / "circle" / "notes.txt").write_text("not an image")
    with pytest.warns(DataWarning, match="1 file.* not image files") as caught:
        src = mmzoo.data.open_source(f"images:{root}")
    assert str(root / "circle" / "notes.txt") in "\n".join(str(w.message) for w in caught)
    examples = list(src.dataset().as_numpy_iterator())
    assert len(examples) == len(captions)
    shapes = {e["label"].decode() for e in examples}
    assert shapes == {"circle", "rectangle", "triangle"}
    assert all(e["image"].dtype == np.uint8 and e["image"].shape[-1] == 3 for e in examples)
    # the user's own splits; a class folder only in test/ is named
    split_root = tmp_path / "splits"
    shutil.copytree(root, split_root / "train")
    os.makedirs(split_root / "test" / "hexagon")
    shutil.copy(os.path.join(tiny_easy_vqa, "test", "images", "0.png"),
                split_root / "test" / "hexagon" / "0.png")
    with pytest.raises(BadDataError, match="class 'hexagon' has no folder in train/"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            mmzoo.data.load(f"images:{split_root}", split="train")
    # audio: the folder's name is the label; each file's own rate is kept and said
    import librosa
    import soundfile

    audio = tmp_path / "words"
    fsdd = os.path.join(data_dir, "fsdd", "recordings")
    for digit, word in ((0, "zero"), (1, "one")):
        names = [n for n in sorted(os.listdir(fsdd)) if n.startswith(f"{digit}_")][:6]
        os.makedirs(audio / word)
        for n in names:
            shutil.copy(os.path.join(fsdd, n), audio / word / n)
    wave, _ = librosa.load(os.path.join(fsdd, names[0]), sr=16000)
    soundfile.write(audio / "one" / "loud.flac", wave, 16000)
    src = mmzoo.data.open_source(f"audio:{audio}")
    assert src.audio_rates() == {8000: 12, 16000: 1}
    examples = list(src.dataset().as_numpy_iterator())
    assert {e["label"].decode() for e in examples} == {"zero", "one"}
    assert sorted(int(e["sample_rate"]) for e in examples)[-1] == 16000


def test_train_a_fusion_model_on_a_parquet_table(vqa_rows, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [{"bytes": open(p, "rb").read(), "path": None} for p, _, _ in vqa_rows]
    pq.write_table(pa.table({"image": images, "text": [q for _, q, _ in vqa_rows],
                             "label": [a for _, _, a in vqa_rows]}), tmp_path / "t.parquet")
    out = tmp_path / "run"
    done = run_mmzoo("train", "text_image_concat", "--data", f"parquet:{tmp_path / 't.parquet'}",
                     "--epochs", "1", "--out", out, "--set", "image_size=16",
                     "--set", "filters=(4,8)", "--set", "hidden_units=(8,)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.exists(out / "model.keras")


def test_tables_as_tools_write_them(vqa_rows, tmp_path):
    """JSON Lines columns are every object's keys (a `split` key first seen late counts);
    image cells may hold plain base64 or a `data:` URI; labels `2`, `2.0` and ` 2` are one
    class and a blank label is a bad row; a long value is cut short in a message; a cell of
    any size is read."""
    import base64

    photo = vqa_rows[0][0]
    data = open(photo, "rb").read()
    rows = [{"text": f"story number {i} about shapes", "label": 1 + i % 2, "split": "train"}
            for i in range(10)]
    rows += [{"text": f"story number {i} about shapes", "label": 1 + i % 2, "split": "test"}
             for i in range(10, 20)]
    del rows[0]["split"]  # the key first appears in the second object
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"jsonl:{path}")
    assert e.value.problems == [(f"{path}:1", "split '' is not one of " + str(sorted(
        ["train", "validation", "valid", "val", "dev", "test"])))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        test = read(f"jsonl:{path}", "test", on_error="skip")
    assert sorted(t for t, _ in test) == sorted(r["text"] for r in rows[10:])
    # an image as plain base64 (what JSON tools write) and as a data: URI
    b64 = base64.b64encode(data).decode()
    path = tmp_path / "inline.jsonl"
    path.write_text("".join(json.dumps({"image": cell, "text": f"a photo {i}"}) + "\n"
                            for i, cell in enumerate([b64, f"data:image/png;base64,{b64}"])))
    images = [e["image"] for e in mmzoo.data.load(f"jsonl:{path}", task="captioning")
              .as_numpy_iterator()]
    assert len(images) == 1  # the same bytes: one photo, its two captions together
    import tensorflow as tf

    np.testing.assert_array_equal(images[0], tf.io.decode_image(data, channels=3).numpy())
    # labels as spreadsheets spell them; a blank label is a bad row
    table = write(tmp_path / "labels.csv", [["text", "label"], ["first story", "2"],
                                            ["second story", "2.0"], ["third story", " 2"],
                                            ["fourth story", "1"], ["fifth story", " "]])
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{table}")
    assert e.value.problems == [(f"{table}:6", "empty label ('label')")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert sorted({lab for _, lab in read(f"csv:{table}", on_error="skip")}) == ["1", "2"]
    # a path of half a megabyte is cut short in the message; an article of any size is read
    table = write(tmp_path / "long.csv", [["image", "text", "label"],
                                          ["/" + "x" * 500_000, "a", "1"],
                                          [os.path.basename(photo), "b " * 100_000, "1"]])
    shutil.copy(photo, tmp_path)
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{table}")
    assert len(str(e.value)) < 1000 and "500,001 characters" in str(e.value)
    assert [where for where, _ in e.value.problems] == [f"{table}:2"]


def test_a_reason_most_bad_rows_share_is_said_once(news, tmp_path):
    rows, plain = news
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"csv:{plain}?labels=4")
    text = str(e.value)
    assert f"{len(e.value.problems)} of them for one reason, e.g. label '" in text
    assert "is not one of ['4']" in text and len(text.splitlines()) < 6


def test_jpegs_with_bytes_after_their_end_are_read(tmp_path):
    """A phone's motion photo (a video after the JPEG's end marker) decodes, and is read; a
    JPEG cut short is still refused."""
    import tensorflow as tf

    from mmzoo.checks import image_problem

    pixels = (np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3)
    jpeg = tf.io.encode_jpeg(pixels).numpy()
    motion = tmp_path / "motion.jpg"
    motion.write_bytes(jpeg + b"\x00\x00\x00\x18ftypmp42" + os.urandom(20_000))
    assert tf.io.decode_image(motion.read_bytes()).shape == (32, 32, 3)
    assert image_problem(str(motion)) is None
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg[:len(jpeg) // 2])
    assert "truncated JPEG" in image_problem(str(cut))


def test_audio_clip_lengths_come_from_the_data(data_dir, tmp_path):
    """Voice notes (the word first, then seconds of quiet): listing reads each clip's length
    and names a silent one; `mmzoo data` shows the lengths; a run chooses its clip length from
    the training clips and records it, and says what it cuts and the --set that keeps it."""
    import librosa
    import soundfile

    fsdd = os.path.join(data_dir, "fsdd", "recordings")
    notes = tmp_path / "notes"
    for digit, word in ((0, "zero"), (1, "one")):
        os.makedirs(notes / word)
        for k, name in enumerate([n for n in sorted(os.listdir(fsdd))
                                  if n.startswith(f"{digit}_")][:8]):
            wave, rate = librosa.load(os.path.join(fsdd, name), sr=None)
            quiet = np.zeros(int(rate * (1.5 + k / 8)), "float32")
            soundfile.write(notes / word / name, np.concatenate([wave, quiet]), rate)
    soundfile.write(notes / "zero" / "silent.wav", np.zeros(8000, "float32"), 8000)
    with pytest.warns(DataWarning, match=r"1 of 17 clip\(s\) are silent") as caught:
        src = mmzoo.data.open_source(f"audio:{notes}")
    assert str(notes / "zero" / "silent.wav") in str(caught[0].message.full())
    longest = max(src.audio_seconds(None))
    assert longest > 2.0 and len(src.audio_seconds(None)) == 17
    from mmzoo.data.waveform import choose_clip_seconds

    chosen = choose_clip_seconds(src.audio_seconds("train"))
    keep = -(-max(src.audio_seconds("train")) // 0.25) * 0.25  # what holds them all whole
    assert chosen > 2.0
    out = run_mmzoo("data", f"audio:{notes}")
    assert f"audio:     17 clips of 1.00-{longest:.2f} s" in out.stdout, out.stdout
    run = tmp_path / "run"
    tiny = ["--set", "audio_filters=4", "--set", "hidden_units=4"]
    out = run_mmzoo("train", "audio_mfcc_cnn", "--data", f"audio:{notes}", "--epochs", "1",
                    "--out", str(run), *tiny)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(run / "config.json") as f:
        clip = json.load(f)["config"]["clip_seconds"]
    assert clip == chosen and f"audio: clip length {chosen:g} s, chosen from the" in out.stderr
    out = run_mmzoo("train", "audio_mfcc_cnn", "--data", f"audio:{notes}", "--epochs", "1",
                    "--out", str(run), "--overwrite", "--set", "clip_seconds=1", *tiny)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"audio: \d+ of \d+ training clips are longer than the clip length 1 s "
                     r"\(up to \d\.\d\d s\) and are cut to their loudest 1 s; --set "
                     f"clip_seconds={keep:g} keeps them whole", out.stderr), out.stderr[-2000:]


def test_folders_of_tables_as_the_hub_lays_them_out(news, tmp_path):
    """`csv:DIR` and `jsonl:DIR`: splits from file names (or split folders); a file of no split
    beside files of one, files of other columns, and two configurations each fail in one line
    naming what to give; the Hub's own metadata files are not tables."""
    rows, _ = news
    hub = tmp_path / "hub"
    os.makedirs(hub / "data")
    write(hub / "data" / "train-00000-of-00001.csv", [["text", "label"], *rows[:40]])
    write(hub / "data" / "test-00000-of-00001.csv", [["text", "label"], *rows[40:]])
    src = mmzoo.data.open_source(f"csv:{hub}")
    assert (src.split_names(), src.counts["test"]) == (("train", "test"), 20)
    os.makedirs(hub / "valid")
    with open(hub / "valid" / "0.jsonl", "w") as f:
        f.writelines(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows[:5])
    (hub / "dataset_info.json").write_text("{}")
    os.makedirs(tmp_path / "j" / "valid")
    shutil.copy(hub / "valid" / "0.jsonl", tmp_path / "j" / "valid" / "0.jsonl")
    shutil.copy(hub / "valid" / "0.jsonl", tmp_path / "j" / "train.jsonl")
    (tmp_path / "j" / "dataset_info.json").write_text("{}")
    src = mmzoo.data.open_source(f"jsonl:{tmp_path / 'j'}", on_error="skip")
    assert src.split_names() == ("train", "validation")
    write(hub / "data" / "extra.csv", [["text", "label"], *rows[:3]])
    with pytest.raises(InvalidValue, match="name no split .* while others do"):
        mmzoo.data.open_source(f"csv:{hub}")
    os.remove(hub / "data" / "extra.csv")
    write(hub / "data" / "validation.csv", [["text", "label", "speaker"],
                                            *[[t, lab, "x"] for t, lab in rows[:3]]])
    with pytest.raises(InvalidValue, match="has other columns"):
        mmzoo.data.open_source(f"csv:{hub}")
    os.remove(hub / "data" / "validation.csv")
    os.makedirs(hub / "fr")
    write(hub / "fr" / "train.csv", [["text", "label"], *rows[:3]])
    with pytest.raises(InvalidValue, match="holds tables in 2 folders"):
        mmzoo.data.open_source(f"csv:{hub}")


def test_class_label_minus_one_is_a_missing_label(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = json.dumps({"info": {"features": {"label": {"names": ["neg", "pos"],
                                                       "_type": "ClassLabel"}}}})
    texts = [f"review number {i} of a film" for i in range(12)]
    table = pa.table({"text": texts, "label": [0, 1] * 5 + [-1, 7]})
    pq.write_table(table.replace_schema_metadata({"huggingface": meta}), tmp_path / "t.parquet")
    with pytest.raises(BadDataError) as e:
        mmzoo.data.load(f"parquet:{tmp_path / 't.parquet'}")
    assert [p for _, p in e.value.problems] == [
        "no label ('label' is -1, Hugging Face's missing label)",
        "label 7 ('label') is no class of its ClassLabel (2 names)"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert {lab for _, lab in read(f"parquet:{tmp_path / 't.parquet'}", on_error="skip")
                } == {"neg", "pos"}
