"""Real data sources: FSDD, CSV, caption folders, TFDS, the digit QA pairing, and bad input.

The real data is read from ../shared/data (MMZOO_DATA_DIR); broken files are made by the tests.
"""

import collections
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

import mmzoo
from mmzoo.data import BadDataError
from mmzoo.data.digit_qa import QUESTIONS, digit_images
from mmzoo.data.base import hash_split
from mmzoo.errors import InvalidValue


def read_as(text):
    """A text (or a list of them) as the models read it: what a CSV row's split is hashed
    from."""
    from mmzoo.data.text import standardize

    out = standardize(tf.constant(text)).numpy()
    return out.decode() if isinstance(text, str) else [t.decode() for t in out]


@pytest.fixture(scope="module")
def fsdd(data_dir):
    return os.path.join(data_dir, "fsdd")


def fsdd_files(fsdd, n, step=97):
    names = sorted(os.listdir(os.path.join(fsdd, "recordings")))
    return [os.path.join(fsdd, "recordings", x) for x in names[::step][:n]]


# --- FSDD ---------------------------------------------------------------------------------------

def test_fsdd_official_split_counts_and_labels(fsdd):
    test = list(mmzoo.data.load(f"fsdd:{fsdd}", split="test").as_numpy_iterator())
    assert len(test) == 250
    assert collections.Counter(int(e["label"]) for e in test) == {d: 25 for d in range(10)}
    assert collections.Counter(e["speaker"].decode() for e in test) == {
        s: 50 for s in ("george", "jackson", "lucas", "nicolas", "yweweler")}
    train = mmzoo.data.load(f"fsdd:{fsdd}", split="train")
    assert train.cardinality().numpy() == 2250
    assert mmzoo.data.load(f"fsdd:{fsdd}").cardinality().numpy() == 2500
    # the label and speaker come from the file name; the waveform is the file's, at 8 kHz
    src = mmzoo.data.open_source(f"fsdd:{fsdd}")
    rows = src.select(src.columns, src.tags, "test")
    for i in (0, 137, 249):
        name = os.path.basename(rows["audio"][i])
        digit, speaker, index = name[:-4].split("_")
        assert int(index) < 5 and (int(test[i]["label"]), test[i]["speaker"].decode()) == (
            int(digit), speaker)
        wave, sr = librosa.load(rows["audio"][i], sr=None)
        assert sr == 8000 and test[i]["audio"].dtype == np.float32
        np.testing.assert_array_equal(test[i]["audio"], wave)


def test_fsdd_has_no_validation_split_and_fit_splits_holds_one_out(fsdd):
    with pytest.raises(ValueError, match=r"has no split 'validation'.*holds out 1 in 10"):
        mmzoo.data.load(f"fsdd:{fsdd}", split="validation")
    train, val = mmzoo.data.fit_splits(f"fsdd:{fsdd}")
    sizes = (int(train.cardinality()), int(val.cardinality()))
    assert sum(sizes) == 2250 and 180 <= sizes[1] <= 270, sizes  # 1 in 10, by a stable hash
    val_waves = {e["audio"].tobytes() for e in val.as_numpy_iterator()}
    assert len(val_waves) == sizes[1]
    assert not val_waves & {e["audio"].tobytes() for e in train.take(400).as_numpy_iterator()}


def test_fsdd_reads_each_file_at_its_own_rate_or_the_options(fsdd, tmp_path):
    src = fsdd_files(fsdd, 1)[0]
    wave, _ = librosa.load(src, sr=None)
    wave16 = librosa.resample(wave, orig_sr=8000, target_sr=16000)
    soundfile.write(tmp_path / "3_anna_7.wav", wave16, 16000, subtype="PCM_16")
    source = mmzoo.data.open_source(f"fsdd:{tmp_path}")
    assert source.audio_rates() == {16000: 1}           # what a run says it resamples
    (ex,) = source.dataset().as_numpy_iterator()
    assert ex["sample_rate"] == 16000 and int(ex["label"]) == 3
    np.testing.assert_allclose(ex["audio"], librosa.load(tmp_path / "3_anna_7.wav", sr=None)[0])
    # a source option picks the rate, librosa resampling the file as it reads it
    (ex,) = mmzoo.data.load(f"fsdd:{tmp_path}?sample_rate=8000").as_numpy_iterator()
    expected, _ = librosa.load(tmp_path / "3_anna_7.wav", sr=8000)
    np.testing.assert_allclose(ex["audio"], expected, atol=1e-6)
    assert abs(len(ex["audio"]) - len(wave)) <= 1 and ex["sample_rate"] == 8000


def test_pipeline_resamples_audio_read_at_another_rate(fsdd, tmp_path):
    """A 4 kHz model fed FSDD read at 8 kHz hears what it would hear from the files read at
    4 kHz (librosa's resampler both ways), never 8 kHz samples taken for 4 kHz ones."""
    for path in fsdd_files(fsdd, 6):
        shutil.copy(path, tmp_path)
    config = {**mmzoo.registry.get_spec("audio_mfcc_cnn").test_config,
              "labels": tuple("0123456789")}
    model = mmzoo.build("audio_mfcc_cnn", **config)                 # sample_rate 4000

    def audio(source):
        batches = mmzoo.data.pipeline(model, mmzoo.data.load(source), batch_size=6)
        return next(iter(batches))[0]["audio"].numpy()

    at_8k = audio(f"fsdd:{tmp_path}")                               # sample_rate 8000
    at_4k = audio(f"fsdd:{tmp_path}?sample_rate=4000")
    assert at_8k.shape == at_4k.shape == (6, 1000)
    np.testing.assert_allclose(at_8k, at_4k, atol=1e-5)
    (first,) = mmzoo.data.load(f"fsdd:{tmp_path}").take(1).as_numpy_iterator()
    read_as_4k = mmzoo.data.waveform.fit_length(first["audio"], 1000).numpy()
    assert not np.allclose(at_8k[0], read_as_4k, atol=1e-3)   # what the pipeline used to do


def make_bad_fsdd(fsdd, root):
    """Three good real WAVs, a truncated WAV, a text file named .wav, an empty .wav, a name
    outside the layout and a label outside 0-9; returns (good names, bad names)."""
    good = []
    for path in fsdd_files(fsdd, 3):
        shutil.copy(path, root)
        good.append(os.path.basename(path))
    with open(fsdd_files(fsdd, 4)[-1], "rb") as f:
        data = f.read()
    (root / "7_jackson_12.wav").write_bytes(data[: len(data) // 2])  # header declares it all
    (root / "2_lucas_3.wav").write_text("this is not audio\n")
    (root / "4_nicolas_9.wav").write_bytes(b"")
    shutil.copy(fsdd_files(fsdd, 1)[0], root / "recording.wav")
    shutil.copy(fsdd_files(fsdd, 1)[0], root / "x_george_1.wav")
    (root / "README.md").write_text("not a recording: ignored, it is not a .wav file\n")
    return good, ["7_jackson_12.wav", "2_lucas_3.wav", "4_nicolas_9.wav", "recording.wav",
                  "x_george_1.wav"]


def test_libsndfile_reads_the_truncated_wav_without_complaint(fsdd, tmp_path):
    """Why the RIFF chunk check exists: libsndfile accepts the truncated file."""
    make_bad_fsdd(fsdd, tmp_path)
    wave, _ = soundfile.read(tmp_path / "7_jackson_12.wav")
    assert len(wave) > 0


def test_bad_wavs_raise_naming_each_file(fsdd, tmp_path):
    _, bad = make_bad_fsdd(fsdd, tmp_path)
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"fsdd:{tmp_path}")
    message = str(info.value)
    assert "5 bad item(s) among 8 .wav files" in message
    for name, why in [("7_jackson_12.wav", r"truncated: its header declares \d+ bytes of samples "
                                           r"but only \d+ are on disk"),
                      ("2_lucas_3.wav", "not a readable audio file"),
                      ("4_nicolas_9.wav", r"empty file \(0 bytes\)"),
                      ("recording.wav", r"name is not \{digit\}_\{speaker\}_\{index\}.wav"),
                      ("x_george_1.wav", "label 'x' is not one of the digits 0-9")]:
        assert any(os.path.basename(where) == name and re.search(why, what)
                   for where, what in info.value.problems), (name, info.value.problems)
        assert str(tmp_path / name) in message
    assert sorted(os.path.basename(w) for w, _ in info.value.problems) == sorted(bad)


def test_bad_wavs_skipped_with_a_warning_naming_each(fsdd, tmp_path):
    good, bad = make_bad_fsdd(fsdd, tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 5 bad item\(s\) among 8 .wav files") as rec:
        ds = mmzoo.data.load(f"fsdd:{tmp_path}", on_error="skip")
    text = str(rec[0].message)
    assert all(str(tmp_path / name) in text for name in bad)
    got = sorted(e["audio"].tobytes() for e in ds.as_numpy_iterator())
    expected = sorted(librosa.load(tmp_path / name, sr=None)[0].tobytes() for name in good)
    assert got == expected


def test_empty_sources_say_they_are_empty(tmp_path):
    with pytest.raises(ValueError, match=r"is empty: it has no .wav files"):
        mmzoo.data.load(f"fsdd:{tmp_path}")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty.csv is empty"):
        mmzoo.data.load(f"csv:{tmp_path / 'empty.csv'}")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(ValueError, match=r"header.csv has no data rows"):
        mmzoo.data.load(f"csv:{tmp_path / 'header.csv'}")
    (tmp_path / "Images").mkdir()
    (tmp_path / "captions.txt").write_text("image,caption\n")
    with pytest.raises(ValueError, match=r"captions.txt is empty"):
        mmzoo.data.load(f"captions:{tmp_path}")
    (tmp_path / "all_bad").mkdir()
    (tmp_path / "all_bad" / "1_a_1.wav").write_text("no")
    with pytest.warns(UserWarning, match="skipped 1"), pytest.raises(
            ValueError, match="no usable recordings left"):
        mmzoo.data.load(f"fsdd:{tmp_path / 'all_bad'}", on_error="skip")


# --- MFCC ---------------------------------------------------------------------------------------

def test_mfcc_layer_equals_librosa_on_100_real_clips(fsdd):
    layer = mmzoo.layers.MFCC(8000, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40)
    errors = []
    for path in fsdd_files(fsdd, 100, step=25):
        y, sr = librosa.load(path, sr=None)
        ref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40).T
        out = np.asarray(layer(y[None]))[0]
        assert out.shape == ref.shape, path
        errors.append(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    assert len(errors) == 100 and max(errors) < 1e-5, max(errors)  # README: 6.3e-7 at most


def test_mfcc_layer_equals_librosa_with_other_settings(fsdd):
    y, _ = librosa.load(fsdd_files(fsdd, 1)[0], sr=16000)
    kw = dict(n_mfcc=20, n_fft=512, hop_length=160, n_mels=64, fmin=20.0, fmax=7000.0)
    ref = librosa.feature.mfcc(y=y, sr=16000, **kw).T
    out = np.asarray(mmzoo.layers.MFCC(16000, **kw)(y[None]))[0]
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5


# --- CSV ----------------------------------------------------------------------------------------

def test_ag_news_csv(data_dir):
    path = os.path.join(data_dir, "ag_news", "news.csv")
    src = mmzoo.data.open_source(f"csv:{path}")
    sizes = {s: int(src.dataset(s).cardinality()) for s in ("train", "validation", "test")}
    assert sum(sizes.values()) == 6080
    assert all(520 <= sizes[s] <= 700 for s in ("validation", "test")), sizes  # 1 in 10 each
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [f"{r['title'].strip()} {r['description'].strip()}" for r in rows]
    # each row's split is the stable hash of its text as the models read it (the rule)
    splits = [hash_split(t) for t in read_as(texts)]
    expected = {s: [t for t, of in zip(texts, splits) if of == s] for s in sizes}
    for split in sizes:
        got = [e["text"].decode() for e in src.dataset(split).as_numpy_iterator()]
        assert got == expected[split], split
    first = next(src.dataset("train").as_numpy_iterator())
    assert first["text"].decode() == expected["train"][0]
    test = list(src.dataset("test").as_numpy_iterator())
    labels = collections.Counter(e["label"].decode() for e in test)
    assert set(labels) == {"1", "2", "3", "4"} and min(labels.values()) > 100
    # columns chosen by options, in the source string or as arguments
    titles = mmzoo.data.load(f"csv:{path}?text=title", split="test")
    heads = [r["title"].strip() for r in rows]
    first_title = next(t for t, i in zip(heads, read_as(heads)) if hash_split(i) == "test")
    assert next(titles.as_numpy_iterator())["text"].decode() == first_title
    with pytest.raises(ValueError, match=r"no column\(s\) \['headline'\].*columns are"):
        mmzoo.data.load(f"csv:{path}", text="headline")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\]"):
        mmzoo.data.load(f"csv:{path}?colour=red")


def test_bad_csv_rows_are_named_with_their_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('label,title,description\n'
                    '1,Good title,"a description\nover two lines"\n'
                    '2,Only a title\n'
                    '3,,\n'
                    ',No label,here\n'
                    '9,Odd label,here\n'
                    '4,Fine,fine\n')
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"csv:{path}", labels="1,2,3,4")
    assert info.value.problems == [
        (f"{path}:4", "row has 2 of 3 fields; missing ['description']"),
        (f"{path}:5", "empty text (title, description)"),
        (f"{path}:6", "empty label ('label')"),
        (f"{path}:7", "label '9' is not one of ['1', '2', '3', '4']")]
    with pytest.warns(UserWarning, match=r"skipped 4 bad item\(s\) among 6 rows"):
        ds = mmzoo.data.load(f"csv:{path}?labels=1,2,3,4", on_error="skip")
    assert [e["label"].decode() for e in ds.as_numpy_iterator()] == ["1", "4"]


def test_csv_rows_whose_text_standardises_to_nothing_are_bad_rows(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('label,text\n1,Real words here\n2,"?!! ..."\n3,-- #\n4,"C3PO, 2 (ok)"\n')
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"csv:{path}")
    assert info.value.problems == [
        (f"{path}:3", "text '?!! ...' (text) has no letters or digits: it standardises to "
                      "nothing"),
        (f"{path}:4", "text '-- #' (text) has no letters or digits: it standardises to nothing")]
    with pytest.warns(UserWarning, match=r"skipped 2 bad item\(s\) among 4 rows"):
        ds = mmzoo.data.load(f"csv:{path}", on_error="skip")
    assert [e["label"].decode() for e in ds.as_numpy_iterator()] == ["1", "4"]


# --- caption folders ----------------------------------------------------------------------------

def test_flickr8k_caption_folder(data_dir):
    root = os.path.join(data_dir, "flickr8k_1k")
    src = mmzoo.data.open_source(f"captions:{root}")
    assert src.split_names() == ("train", "validation")
    assert src.dataset("train", "captioning").cardinality().numpy() == 753
    assert src.dataset("validation").cardinality().numpy() == 113
    assert src.dataset(None).cardinality().numpy() == 875
    with pytest.raises(ValueError, match=r"has no split 'test'"):
        src.dataset("test")
    ex = next(src.dataset("validation").as_numpy_iterator())
    assert ex["image"].dtype == np.uint8 and ex["image"].ndim == 3 and ex["image"].shape[2] == 3
    assert len(ex["captions"]) == 5 and all(c.strip() for c in ex["captions"])


def make_caption_folder(data_dir, root):
    src = os.path.join(data_dir, "flickr8k_1k")
    with open(os.path.join(src, "captions.txt"), newline="") as f:
        rows = list(csv.reader(f))[1:21]  # 4 images, 5 captions each
    names = sorted({r[0] for r in rows})
    (root / "Images").mkdir()
    for name in names:
        shutil.copy(os.path.join(src, "Images", name), root / "Images" / name)
    return rows, names


def write_captions(root, rows):
    with open(root / "captions.txt", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption"]] + rows)


def read_captions(root, **options):
    ds = mmzoo.data.open_source(f"captions:{root}", **options).dataset(None, decode=False)
    return {e["image"].decode(): [c.decode() for c in e["captions"]]
            for e in ds.as_numpy_iterator()}


def test_caption_folder_index_lists_an_unchanged_folder_once(data_dir, tmp_path, monkeypatch):
    from mmzoo.data import captions as captions_source

    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("MMZOO_CACHE_DIR", str(cache))
    rows, names = make_caption_folder(data_dir, root)
    write_captions(root, rows)
    expected = collections.defaultdict(list)
    for name, caption in rows:
        expected[str(root / "Images" / name)].append(caption.strip())
    checked = []
    real = captions_source.check_files
    monkeypatch.setattr(captions_source, "check_files",
                        lambda paths, *a, **k: checked.append(len(paths)) or real(paths, *a, **k))
    assert read_captions(root) == expected and checked == [4]  # streamed from its new index
    assert sorted(os.listdir(root)) == ["Images", "captions.txt"]  # the data is never written
    (folder,) = os.listdir(cache / "index")       # the index lives in the user's cache...
    (index,) = os.listdir(cache / "index" / folder)
    assert index.startswith("captions-")          # ... named by what it was made from
    assert read_captions(root) == expected and checked == [4]  # unchanged: read from the index
    data = (root / "Images" / names[1]).read_bytes()
    (root / "Images" / names[1]).write_bytes(data[: len(data) // 2])   # edited in place
    with pytest.raises(BadDataError, match="truncated JPEG"):
        read_captions(root)
    assert checked == [4, 4]
    with pytest.warns(UserWarning, match=r"skipped 1 bad item"):  # the index keeps bad items
        assert len(read_captions(root, on_error="skip")) == 3
    assert checked == [4, 4]
    assert len(os.listdir(cache / "index" / folder)) == 2  # a new index beside the old one
    # the user may ask for the index elsewhere, inside the data too
    (root / "Images" / names[1]).write_bytes(data)
    assert read_captions(root, index_dir=str(root / ".index")) == expected
    assert [n[:9] for n in os.listdir(root / ".index")] == ["captions-"]
    # a folder read-only to everyone, and a cache that cannot be written: still listed
    os.chmod(root, 0o555)
    try:
        monkeypatch.setenv("MMZOO_CACHE_DIR", "/proc/no-cache-here")
        assert read_captions(root) == expected
        assert sorted(os.listdir(root)) == [".index", "Images", "captions.txt"]
    finally:
        os.chmod(root, 0o755)


LISTER = """
import json, sys
import mmzoo
src = mmzoo.data.open_source("captions:" + sys.argv[1])
print(json.dumps(sorted(e["image"].decode() for e in
                        src.dataset(None, decode=False).as_numpy_iterator())))
"""


def test_six_processes_list_one_folder_at_once(data_dir, tmp_path):
    """Concurrent listings each succeed, agree, and leave one index and no staging folder."""
    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    rows, names = make_caption_folder(data_dir, root)
    write_captions(root, rows)
    env = {**os.environ, "MMZOO_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-c", LISTER, str(root)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-2000:] for _, err in outputs]
    listed = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(listed) == 1 and len(json.loads(listed.pop())) == 4
    (folder,) = os.listdir(cache / "index")
    assert [n[:9] for n in os.listdir(cache / "index" / folder)] == ["captions-"]


def test_a_reader_keeps_its_index_when_the_folder_is_listed_again(data_dir, tmp_path,
                                                                  monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MMZOO_CACHE_DIR", str(tmp_path / "cache"))
    rows, names = make_caption_folder(data_dir, root)
    write_captions(root, rows[:15])  # 3 of the 4 photos captioned
    before = mmzoo.data.open_source(f"captions:{root}").dataset(None, decode=False)
    write_captions(root, rows)       # the 4th gets its captions, then the folder is listed
    after = mmzoo.data.open_source(f"captions:{root}").dataset(None, decode=False)
    assert len(list(after.as_numpy_iterator())) == 4
    assert len(list(before.as_numpy_iterator())) == 3  # still the index it opened


def test_caption_splits_never_move_when_photos_are_added(data_dir, tmp_path, monkeypatch):
    """Without splits.txt, a photo's split is a stable hash of its name: adding 40 photos
    between the listed ones moves none of them."""
    monkeypatch.setenv("MMZOO_CACHE_DIR", str(tmp_path / "cache"))
    src_root = os.path.join(data_dir, "flickr8k_1k")
    with open(os.path.join(src_root, "captions.txt"), newline="") as f:
        rows = list(csv.reader(f))[1:]
    by_image = collections.defaultdict(list)
    for name, caption in rows:
        by_image[name].append(caption)
    names = sorted(by_image)[:340]
    root = tmp_path / "data"
    (root / "Images").mkdir(parents=True)
    for name in names:
        os.symlink(os.path.join(src_root, "Images", name), root / "Images" / name)
    added = names[3::8][:40]
    kept = [n for n in names if n not in set(added)]
    assert len(kept) == 300 and len(added) == 40

    def splits(listed):
        write_captions(root, [[n, c] for n in listed for c in by_image[n]])
        src = mmzoo.data.open_source(f"captions:{root}")
        return {split: {os.path.basename(e["image"].decode())
                        for e in src.dataset(split, decode=False).as_numpy_iterator()}
                for split in src.split_names()}

    first = splits(kept)
    assert set(first) == {"train", "validation", "test"}
    second = splits(names)   # the 40 photos go in between the listed ones (sorted names)
    for split, listed in first.items():
        assert listed <= second[split], split   # no listed photo moved
    assert sum(map(len, second.values())) == 340


def test_bad_caption_folder(data_dir, tmp_path):
    rows, names = make_caption_folder(data_dir, tmp_path)
    images = tmp_path / "Images"
    data = (images / names[1]).read_bytes()
    (images / names[1]).write_bytes(data[: len(data) // 2])          # truncated JPEG
    (images / names[2]).write_text("<html>not an image</html>")     # not an image
    rows = rows + [[names[0], "  "], ["missing.jpg", "A caption of nothing ."]]
    with open(tmp_path / "captions.txt", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption"]] + rows)
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"captions:{tmp_path}")
    problems = dict(info.value.problems)
    assert problems[f"{tmp_path}/captions.txt:22"] == f"empty caption for {names[0]}"
    assert problems[str(images / names[1])].startswith("truncated JPEG")
    assert problems[str(images / names[2])].startswith("not an image")
    assert problems[str(images / "missing.jpg")].startswith("missing (captioned on")
    assert len(problems) == 4
    with pytest.warns(UserWarning, match=r"skipped 4 bad item\(s\)"):
        ds = mmzoo.data.load(f"captions:{tmp_path}", on_error="skip")
    good = list(ds.as_numpy_iterator())
    assert len(good) == 2 and all(len(e["captions"]) == 5 for e in good)


def test_unknown_split_values_are_bad_lines(data_dir, tmp_path):
    rows, names = make_caption_folder(data_dir, tmp_path)
    with open(tmp_path / "captions.txt", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    (tmp_path / "splits.txt").write_text(
        f"image,split\n{names[0]},train\n{names[1]},tset\n{names[2]},dev\n{names[3]},none\n")
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"captions:{tmp_path}")
    assert info.value.problems == [(
        f"{tmp_path}/splits.txt:3",
        f"split 'tset' of {names[1]} is not one of ['dev', 'test', 'train', 'val', 'valid', "
        "'validation', 'none']")]
    src = mmzoo.data.open_source(f"captions:{tmp_path}", on_error="skip")
    assert src.split_names() == ("train", "validation")  # the bad line's image is in none


# --- easy-VQA folders ---------------------------------------------------------------------------

def test_bad_easy_vqa_folder(tiny_easy_vqa, tmp_path):
    root = tmp_path / "vqa"
    shutil.copytree(tiny_easy_vqa, root)
    import json
    with open(root / "test" / "questions.json") as f:
        questions = json.load(f)
    questions[0][1] = "purple"
    questions.append(["what is this?", "circle"])
    with open(root / "test" / "questions.json", "w") as f:
        json.dump(questions, f)
    os.remove(root / "test" / "images" / "3.png")
    (root / "test" / "images" / "4.png").write_text("not a png")
    with pytest.raises(BadDataError) as info:
        mmzoo.data.load(f"easy_vqa:{root}", split="test")
    problems = dict(info.value.problems)
    qfile = f"{root}/test/questions.json"
    assert problems[f"{qfile} entry 0"].startswith("answer 'purple' is not in answers.txt")
    assert "is not [question, answer, image_id]" in problems[f"{qfile} entry {len(questions) - 1}"]
    assert problems[f"{root}/test/images/3.png"] == "missing"
    assert problems[f"{root}/test/images/4.png"].startswith("not an image")
    n_bad = sum(1 for q in questions[1:-1] if q[2] in (3, 4))
    with pytest.warns(UserWarning, match=r"skipped 4 bad item\(s\)"):
        ds = mmzoo.data.load(f"easy_vqa:{root}", split="test", on_error="skip")
    assert ds.cardinality().numpy() == len(questions) - 2 - n_bad


def test_a_single_generated_folder_is_a_test_set(tiny_easy_vqa, tmp_path):
    shutil.copytree(os.path.join(tiny_easy_vqa, "test"), tmp_path / "fresh")
    shutil.copy(os.path.join(tiny_easy_vqa, "answers.txt"), tmp_path / "fresh")
    src = mmzoo.data.open_source(f"easy_vqa:{tmp_path / 'fresh'}")
    assert src.split_names() == ("test",)
    assert src.dataset("test").cardinality().numpy() == src.dataset(None).cardinality().numpy()


# --- TFDS ---------------------------------------------------------------------------------------

def test_tfds_prepared_on_disk(data_dir, tmp_path):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders.adhoc_builder import store_as_tfds_dataset

    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:40]
    names = ["World", "Sports", "Business", "Sci/Tech"]
    splits = {s: tf.data.Dataset.from_tensor_slices({
        "description": [r["description"] for r in part],
        "label": [int(r["label"]) - 1 for r in part]}) for s, part in
        (("train", rows[:30]), ("test", rows[30:]))}
    features = tfds.features.FeaturesDict({"description": tfds.features.Text(),
                                           "label": tfds.features.ClassLabel(names=names)})
    store_as_tfds_dataset(name="ag_news_tiny", version="1.0.0", features=features,
                          split_datasets=splits, data_dir=str(tmp_path))
    test = list(mmzoo.data.load("tfds:ag_news_tiny", split="test",
                                data_dir=str(tmp_path)).as_numpy_iterator())
    assert len(test) == 10  # TFDS shuffles examples when it prepares them: compare as sets
    assert {(e["text"].decode(), e["label"].decode()) for e in test} == {
        (r["description"], names[int(r["label"]) - 1]) for r in rows[30:]}
    part = mmzoo.data.load(f"tfds:ag_news_tiny?data_dir={tmp_path}", split="train[:10]")
    assert part.cardinality().numpy() == 10


def test_tfds_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=rf"not prepared: looked in '{tmp_path}/mnist.*never downloads.*"
                             r"tfds build mnist --data_dir DIR"):
        mmzoo.data.load("tfds:mnist", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"not prepared under '{tmp_path}'"):
        mmzoo.data.load("tfds:no_such_dataset_anywhere", data_dir=str(tmp_path))


# --- the tri-modal pairing ----------------------------------------------------------------------

def test_digit_qa_pairs_real_speech_and_handwriting(fsdd):
    src = mmzoo.data.open_source(f"digit_qa:{fsdd}")
    test = list(src.dataset("test").as_numpy_iterator())
    assert len(test) == 250
    images, digits = digit_images()
    spoken_paths = src.pairs("test")[0]
    kinds = collections.Counter()
    for ex, path in zip(test, spoken_paths):
        spoken = int(os.path.basename(path)[0])
        kind = next(k for k, qs in enumerate(QUESTIONS) if ex["question"].decode() in qs)
        kinds[kind] += 1
        written = [int(d) for im, d in zip(images, digits) if np.array_equal(im, ex["image"])]
        assert written, "the image is one of the UCI digits"
        label = ex["label"].decode()
        assert label == (str(spoken), str(written[0]),
                         "yes" if spoken == written[0] else "no")[kind]
    assert min(kinds.values()) > 50
    # same pairing every time; no image shared between train and test
    again = list(mmzoo.data.load(f"digit_qa:{fsdd}", split="test").as_numpy_iterator())
    assert all(a["question"] == b["question"] and np.array_equal(a["image"], b["image"])
               for a, b in zip(test, again))
    assert not set(src.pairs("train")[2]) & set(src.pairs("test")[2])


# --- sources in general -------------------------------------------------------------------------

def test_source_names_and_options_are_checked():
    with pytest.raises(ValueError, match=r"unknown data source 'fsd:x'; did you mean 'fsdd'\?"):
        mmzoo.data.load("fsd:x")
    with pytest.raises(ValueError, match=r"source 'fsdd' has no data for task 'captioning'"):
        mmzoo.data.load(f"fsdd:{os.path.dirname(__file__)}", task="captioning")


def test_cli_data_checks_a_source(fsdd, tmp_path, capsys):
    from mmzoo.cli import main

    assert main(["data", f"fsdd:{fsdd}"]) == 0
    out = capsys.readouterr().out
    assert "train          2250 examples" in out and "test            250 examples" in out
    make_bad_fsdd(fsdd, tmp_path)
    assert main(["data", f"fsdd:{tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "5 bad item(s)" in err and str(tmp_path / "7_jackson_12.wav") in err
    assert main(["data", f"fsdd:{tmp_path}", "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert "all               3 examples" in out
    # said once (the source is read for every split), each bad file named
    assert err.count("mmzoo: warning: ") == 1 and "skipped 5 bad item(s)" in err
    assert str(tmp_path / "7_jackson_12.wav") in err


def test_easy_vqa_decodes_each_image_once_for_all_its_questions(tiny_easy_vqa, monkeypatch):
    """About ten questions per image: each image file is decoded once, and every question
    still comes with its own image, in the listed order."""
    from mmzoo.data import base, easy_vqa

    src = mmzoo.data.open_source(f"easy_vqa:{tiny_easy_vqa}")
    rows, _ = src.rows("train", "vqa")
    decoded = []

    def counting(path):
        path = tf.numpy_function(lambda p: decoded.append(p) or p, [path], tf.string)
        return base.decode_image(tf.ensure_shape(path, []))

    monkeypatch.setattr(easy_vqa, "decode_image", counting)
    examples = list(src.dataset("train", "vqa").as_numpy_iterator())
    assert len(examples) == len(rows["image"]) > len(set(rows["image"]))
    assert sorted(p.decode() for p in decoded) == sorted(set(rows["image"]))
    for example, question, path in zip(examples, rows["question"], rows["image"]):
        assert example["question"].decode() == question
        np.testing.assert_array_equal(example["image"], base.decode_image(path).numpy())


# --- prepared as TFDS ---------------------------------------------------------------------------

def test_prepared_sources_are_plain_tfds_datasets(data_dir, tmp_path):
    import tensorflow_datasets as tfds

    (tmp_path / "photos").mkdir()
    rows, names = make_caption_folder(data_dir, tmp_path / "photos")
    with open(tmp_path / "photos" / "captions.txt", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption"]] + rows)
    (tmp_path / "photos" / "splits.txt").write_text(  # two shards need two photos a split
        "".join(f"{n},{s}\n" for n, s in zip(names, ["train", "dev", "train", "dev"])))
    news = tmp_path / "news.csv"
    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        news.write_text("".join(f.readline() for _ in range(41)))
    fsdd = tmp_path / "fsdd"
    fsdd.mkdir()
    for name in sorted(os.listdir(os.path.join(data_dir, "fsdd", "recordings")))[::50]:
        os.symlink(os.path.join(data_dir, "fsdd", "recordings", name), fsdd / name)
    prepared = {}
    for source in (f"captions:{tmp_path / 'photos'}", f"csv:{news}", f"fsdd:{fsdd}"):
        kind = source.split(":")[0]
        out, sizes = mmzoo.data.prepare(source, str(tmp_path / "prepared" / kind), shards=2)
        prepared[kind] = sizes
        builder = tfds.builder_from_directory(out)           # plain TFDS, no mmzoo
        assert {s: builder.info.splits[s].num_examples for s in sizes} == sizes
        assert all(builder.info.splits[s].num_shards == 2 for s in sizes if sizes[s] > 1)
        original = mmzoo.data.open_source(source)
        held = "validation" in sizes and "validation" not in original.split_names()
        for split in sizes:
            if held and split in ("train", "validation"):    # FSDD: what fit_splits holds out
                expected = original.fit_splits()[split == "validation"]
            else:
                expected = original.dataset(split)
            got = mmzoo.data.load(f"tfds:{out}", split=split,
                                  task=None if kind != "captions" else "captioning")
            pairs = list(zip(expected.as_numpy_iterator(), got.as_numpy_iterator()))
            assert len(pairs) == sizes[split] == int(expected.cardinality())
            for want, have in pairs:                          # same examples, same order
                for key in ("image", "audio", "captions", "text", "speaker"):
                    if key in want:
                        np.testing.assert_array_equal(have[key], want[key])
                if "label" in want:
                    label = want["label"]
                    assert have["label"].decode() == (
                        label.decode() if isinstance(label, bytes) else str(label))
    again = tmp_path / "prepared" / "csv"
    stamp = {f: os.stat(again / f).st_mtime_ns for f in os.listdir(again)}
    assert mmzoo.data.prepare(f"csv:{news}", str(again), shards=2)[1] == prepared["csv"]
    assert {f: os.stat(again / f).st_mtime_ns for f in os.listdir(again)} == stamp
    with pytest.raises(ValueError, match="not empty"):   # other shards: another preparation
        mmzoo.data.prepare(f"csv:{news}", str(tmp_path / "prepared" / "csv"))
    with pytest.raises(ValueError, match=r"--shards 9 is more than split '\w+' has exampl"):
        mmzoo.data.prepare(f"captions:{tmp_path / 'photos'}", str(tmp_path / "p9"), shards=9)


def test_streamed_sources_hold_validation_out_before_decoding(data_dir, tmp_path,
                                                              monkeypatch):
    """A caption folder whose splits.txt has no validation: `fit_splits` holds 1 in 10 training
    photos out, and its validation split decodes only those (not every training photo)."""
    from mmzoo.data import captions as captions_source

    monkeypatch.setenv("MMZOO_CACHE_DIR", str(tmp_path / "cache"))
    src_root = os.path.join(data_dir, "flickr8k_1k")
    with open(os.path.join(src_root, "captions.txt"), newline="") as f:
        rows = list(csv.reader(f))[1:]
    names = sorted({r[0] for r in rows})[:120]
    root = tmp_path / "data"
    (root / "Images").mkdir(parents=True)
    for name in names:
        os.symlink(os.path.join(src_root, "Images", name), root / "Images" / name)
    write_captions(root, [r for r in rows if r[0] in set(names)])
    (root / "splits.txt").write_text("".join(f"{n},{'test' if i % 5 == 0 else 'train'}\n"
                                             for i, n in enumerate(names)))
    decoded = []
    real = captions_source.decode_image

    def counting(path):
        path = tf.py_function(lambda p: decoded.append(p.numpy().decode()) or p, [path],
                              tf.string)
        return real(tf.ensure_shape(path, []))

    monkeypatch.setattr(captions_source, "decode_image", counting)
    src = mmzoo.data.open_source(f"captions:{root}")
    train, val = src.fit_splits("captioning")
    held = {os.path.basename(e["image"].decode())
            for e in src.fit_splits("captioning", decode=False)[1].as_numpy_iterator()}
    assert 0 < len(held) < 30 and int(val.cardinality()) == len(held)
    assert sum(1 for _ in val) == len(held)
    assert sorted(os.path.basename(p) for p in decoded) == sorted(held)  # its own photos only
    kept = {os.path.basename(e["image"].decode())
            for e in src.fit_splits("captioning", decode=False)[0].as_numpy_iterator()}
    assert len(kept) + len(held) == 96 and not kept & held


def test_csv_splits_keep_every_label_in_training(tmp_path):
    """A label whose rows all hash outside training is named, never moved in (its row stays in
    test); a label whose training rows are all held out for validation has one kept in
    training (a file with its own train/test); validation is never empty."""
    from mmzoo.data.base import held_out

    texts = [f"story number {i} about things" for i in range(400)]
    lonely = next(t for t, i in zip(texts, read_as(texts)) if hash_split(i) == "test")
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([[t, "common" if t != lonely else "rare"] for t in texts])
    with pytest.raises(BadDataError, match="label 'rare' is only in test rows"):
        mmzoo.data.open_source(f"csv:{path}").dataset("train")
    src = mmzoo.data.open_source(f"csv:{path}")
    assert lonely in {e["text"].decode() for e in src.dataset(None).as_numpy_iterator()}
    # twelve rows none of which the hash holds out: one is, so validation is never empty
    few = [t for t, i in zip(texts, read_as(texts))
           if hash_split(i) == "train" and not held_out(i)][:12]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *[[t, "ab"[k % 2]] for k, t in
                                                       enumerate(few)]])
    fit, val = mmzoo.data.fit_splits(f"csv:{path}")
    assert (int(fit.cardinality()), int(val.cardinality())) == (11, 1)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], [few[0], "a"], [few[1], "b"]])
    with pytest.raises(InvalidValue, match="too few to hold one out for validation"):
        mmzoo.data.fit_splits(f"csv:{path}")[1]
    # the file's own splits, with no validation: held out by hash, every label kept in
    rare = next(t for t, i in zip(texts, read_as(texts)) if held_out(i))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        w.writerows([[t, "rare" if t == rare else "common", "test" if i % 4 == 0 else "train"]
                     for i, t in enumerate(texts) if i % 4 != 0 or t != rare])
    src = mmzoo.data.open_source(f"csv:{path}")
    fit, val = src.fit_splits()
    fit_rows = {e["text"].decode(): e["label"].decode() for e in fit.as_numpy_iterator()}
    val_rows = {e["text"].decode() for e in val.as_numpy_iterator()}
    assert fit_rows.get(rare) == "rare" and rare not in val_rows
    assert len(fit_rows) + len(val_rows) == int(src.dataset("train").cardinality())
    assert 10 < len(val_rows) < 60 and not set(fit_rows) & val_rows
