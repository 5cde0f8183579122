import collections
import glob
import os
import re

import easy_vqa as easy_vqa_package
import keras
import librosa
import numpy as np
import pytest

import mmzoo
from mmzoo.data import easy_vqa
from mmzoo.layers import MFCC


def test_constants_match_the_package():
    assert easy_vqa.ANSWERS == tuple(easy_vqa_package.get_answers())
    questions, _, _ = easy_vqa_package.get_train_questions()
    counts = collections.Counter(w for q in questions for w in re.findall(r"[a-z]+", q.lower()))
    assert set(easy_vqa.QUESTION_VOCABULARY) == set(counts)


def test_easy_vqa_splits_are_real_and_disjoint():
    test = mmzoo.data.load("easy_vqa", split="test")
    assert test.cardinality().numpy() == 9673
    ex = next(iter(test))
    assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype.name == "uint8"
    assert ex["label"].numpy().decode() in easy_vqa.ANSWERS
    n_train = mmzoo.data.load("easy_vqa", split="train").cardinality().numpy()
    n_val = mmzoo.data.load("easy_vqa", split="validation").cardinality().numpy()
    assert n_train + n_val == 38575 and 0.08 < n_val / 38575 < 0.12


def test_image_facts_read_questions():
    assert easy_vqa.image_facts("what color is the circle?", "red") == ({"circle", "red"}, set())
    assert easy_vqa.image_facts("is there not a blue shape?", "no") == ({"blue"}, set())
    assert easy_vqa.image_facts("is there a triangle?", "no") == (set(), {"triangle"})
    captions, unknown = easy_vqa.captions_by_image(
        ["what shape is in the image?", "is there a red shape?", "is no circle present?",
         "is there a rectangle?", "is there a green shape?"],
        ["circle", "yes", "yes", "no", "no"], [1, 1, 2, 2, 2])
    assert captions == {1: "a red circle"}
    # image 2 is no circle and no rectangle, so a triangle; its colour stays unknown
    assert unknown == {2: "its questions do not tell its color"}


def test_captioning_examples_and_reported_leftovers():
    with pytest.warns(UserWarning, match=r"easy-VQA test: 112 of 1000 images have no caption"):
        ds = mmzoo.data.load("easy_vqa", split="test", task="captioning")
    captions = [e["text"].decode() for e in ds.as_numpy_iterator()]
    assert len(captions) == 888
    assert all(re.fullmatch(r"a (\w+) (circle|rectangle|triangle)", c) for c in captions)


def test_easy_vqa_folder_and_bad_folder(tiny_easy_vqa, tmp_path):
    ds = mmzoo.data.load(f"easy_vqa:{tiny_easy_vqa}", split="test")
    assert ds.cardinality().numpy() > 50
    os.remove(os.path.join(tiny_easy_vqa, "test", "images", "3.png"))
    try:
        with pytest.raises(FileNotFoundError, match=r"1 image\(s\) .* missing.*3\.png"):
            mmzoo.data.load(f"easy_vqa:{tiny_easy_vqa}", split="test")
    finally:
        import shutil
        shutil.copy(os.path.join(easy_vqa.package_dir(), "test", "images", "3.png"),
                    os.path.join(tiny_easy_vqa, "test", "images", "3.png"))
    with pytest.raises(FileNotFoundError, match="has no train/questions.json"):
        mmzoo.data.load(f"easy_vqa:{tmp_path}", split="train")


def test_load_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown data source 'imagenet'"):
        mmzoo.data.load("imagenet")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        mmzoo.data.load("easy_vqa", split="dev")
    with pytest.raises(ValueError, match="no data for task 'ranking'"):
        mmzoo.data.load("easy_vqa", task="ranking")


@pytest.mark.parametrize("name", [n for n in mmzoo.list_models()
                                  if not {"audio"} & set(mmzoo.registry.get_spec(n).inputs)])
def test_pipeline_matches_model_inputs(name, tiny_easy_vqa):
    """A pipeline's element_spec keys equal the model's input names (KerasHub's check)."""
    spec = mmzoo.registry.get_spec(name)
    config = {k: v for k, v in spec.test_config.items() if k not in ("labels",)}
    model = mmzoo.build(name, **config)
    task = {"classification": "vqa"}.get(spec.task, spec.task)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = mmzoo.data.load(f"easy_vqa:{tiny_easy_vqa}", split="train", task=task)
    ds = mmzoo.data.pipeline(model, raw, batch_size=4, training=True)
    x_spec, y_spec = ds.element_spec
    assert set(x_spec) == {t.name for t in model.inputs}
    x, y = next(iter(ds))
    for t in model.inputs:
        assert tuple(x[t.name].shape[1:]) == tuple(t.shape[1:]), t.name
        assert x[t.name].dtype.name == t.dtype, t.name
    model.train_on_batch(x, y)


def test_pipeline_tokenizes_with_the_model_vocabulary():
    model = mmzoo.build("caption_lstm")
    raw = mmzoo.data.load("easy_vqa", split="validation", task="captioning").take(2)
    x, y = next(iter(mmzoo.data.pipeline(model, raw, batch_size=2)))
    words = ["", "[UNK]"] + list(easy_vqa.CAPTION_VOCABULARY)
    first = [words[i] for i in x["text"].numpy()[0] if i]
    target = [words[i] for i in y.numpy()[0] if i]
    assert first[0] == "[start]" and len(first) == 4 and "[end]" not in first
    assert target[:-1] == first[1:] and target[-1] == "[end]"
    # the decoder input's padding mask covers exactly the target tokens
    np.testing.assert_array_equal(x["text"].numpy() > 0, y.numpy() > 0)


def test_pipeline_rejects_unknown_labels():
    model = mmzoo.build("vqa_cnn_lstm", labels=("yes", "no"), image_size=16, filters=(4,))
    raw = mmzoo.data.load("easy_vqa", split="test").take(64)
    with pytest.raises(Exception,
                       match=r"labels not among the classes of model .*vqa_cnn_lstm.*yes.*no.*"
                             r"mmzoo.data.adapt.*Unknown labels:.*(circle|red|triangle)"):
        for _ in mmzoo.data.pipeline(model, raw, batch_size=64):
            pass


def test_adapt_learns_vocabulary_and_labels(tiny_easy_vqa):
    train = mmzoo.data.load(f"easy_vqa:{tiny_easy_vqa}", split="train")
    overrides = mmzoo.data.adapt("vqa_cnn_lstm", train)
    assert set(overrides["labels"]) <= set(easy_vqa.ANSWERS) and len(overrides["labels"]) > 5
    assert "shape" in overrides["vocabulary"] and all(isinstance(t, str)
                                                      for t in overrides["vocabulary"])
    model = mmzoo.build("vqa_cnn_lstm", **overrides)
    assert list(model.get_layer("scores").names) == list(overrides["labels"])


def test_mfcc_layer_equals_librosa_on_real_clips(data_dir):
    files = sorted(glob.glob(os.path.join(data_dir, "fsdd", "recordings", "*.wav")))[::125]
    assert len(files) == 20
    layer = MFCC(8000, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40)
    for path in files:
        y, sr = librosa.load(path, sr=None)
        ref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40).T
        out = np.asarray(layer(y[None]))[0]
        assert out.shape == ref.shape
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-3, path


def test_mfcc_layer_serializes():
    layer = MFCC(16000, n_mfcc=20, n_fft=512, hop_length=160, n_mels=64, fmin=20.0, fmax=7600.0)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    wave = np.random.default_rng(0).standard_normal((2, 16000)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(wave)), np.asarray(clone(wave)))
    assert clone.compute_output_shape((None, 16000)) == (None, 101, 20)
