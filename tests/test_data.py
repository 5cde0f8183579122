import collections
import os
import re

import easy_vqa as easy_vqa_package
import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.data import easy_vqa
from mmzoo.layers import MFCC


def test_constants_match_the_package():
    assert easy_vqa.ANSWERS == tuple(easy_vqa_package.get_answers())
    questions, _, _ = easy_vqa_package.get_train_questions()
    counts = collections.Counter(w for q in questions for w in re.findall(r"[a-z]+", q.lower()))
    assert set(easy_vqa.QUESTION_VOCABULARY) == set(counts)


def test_the_models_defaults_fit_the_bundled_data():
    """A model built before it meets data (`mmzoo.build(NAME)`) reads easy-VQA: its config's
    defaults, which the models keep themselves (no model imports a data source), are the
    data's."""
    from mmzoo.models import common

    assert common.ANSWERS == easy_vqa.ANSWERS
    assert common.QUESTION_VOCABULARY == easy_vqa.QUESTION_VOCABULARY
    assert common.CAPTION_WORDS == easy_vqa.CAPTION_WORDS and common.SHAPES == easy_vqa.SHAPES
    caption = mmzoo.registry.get_spec("caption_lstm").config()
    assert caption.vocabulary == easy_vqa.CAPTION_VOCABULARY


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
    assert captions == {1: "there is a red circle"}
    # image 2 is no circle and no rectangle, so a triangle; its colour stays unknown
    assert unknown == {2: "its questions do not tell its color"}


def test_captioning_examples_and_reported_leftovers():
    with pytest.warns(UserWarning, match=r"easy-VQA test: 112 of 1000 images have no caption"):
        ds = mmzoo.data.load("easy_vqa", split="test", task="captioning")
    captions = [e["text"].decode() for e in ds.as_numpy_iterator()]
    assert len(captions) == 888
    assert all(re.fullmatch(r"there is a (\w+) (circle|rectangle|triangle)", c) for c in captions)


def test_load_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown data source 'imagenet'"):
        mmzoo.data.load("imagenet")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        mmzoo.data.load("easy_vqa", split="dev")
    with pytest.raises(ValueError, match="no data for task 'ranking'"):
        mmzoo.data.load("easy_vqa", task="ranking")


# Every registered model with the real sources it makes sense on (README: "Data for each model").
PAIRS = [
    ("audio_mfcc_cnn", "fsdd:{data}/fsdd?sample_rate=4000", None),
    ("audio_mfcc_lstm", "fsdd:{data}/fsdd?sample_rate=4000", None),
    ("audio_spelling_cnn", "fsdd:{data}/fsdd", None),
    ("text_word_vector_mlp", "csv:{data}/ag_news/news.csv", None),
    ("text_lstm", "csv:{data}/ag_news/news.csv", None),
    ("text_transformer", "csv:{data}/ag_news/news.csv", None),
    ("text_fasttext", "csv:{data}/ag_news/news.csv", None),
    ("image_classifier", "images:{shapes}", None),
    ("text_image_concat", "easy_vqa:{tiny}", "vqa"),
    ("late_fusion_classifier", "easy_vqa:{tiny}", "vqa"),
    ("vqa_cnn_lstm", "easy_vqa:{tiny}", None),
    ("caption_lstm", "easy_vqa:{tiny}", "captioning"),
    ("caption_lstm", "captions:{data}/flickr8k_1k", None),
    ("dual_encoder", "easy_vqa:{tiny}", "retrieval"),
    ("dual_encoder", "captions:{data}/flickr8k_1k", "retrieval"),
    ("caption_lstm_mobilenet", "captions:{data}/flickr8k_1k", None),
    ("dual_encoder_mobilenet", "captions:{data}/flickr8k_1k", "retrieval"),
    ("trimodal_classifier", "digit_qa:{data}/fsdd?sample_rate=4000", None),
    ("speech_ctc", "digit_sequences:{data}/fsdd?train=24&validation=8&test=8", None),
    ("speech_ctc_transformer", "digit_sequences:{data}/fsdd?train=24&validation=8&test=8", None),
]


def test_every_model_has_a_real_data_pairing():
    assert {name for name, _, _ in PAIRS} == set(mmzoo.list_models())


@pytest.mark.parametrize("name,source,task", PAIRS,
                         ids=[f"{n}-{s.split(':')[0]}" for n, s, _ in PAIRS])
def test_pipeline_on_real_sources(name, source, task, data_dir, tiny_easy_vqa, tiny_shapes):
    """Adapt on the training split, build, pipeline: the element_spec keys equal the model's
    input names (KerasHub's check), shapes and dtypes match, and a training step runs."""
    import warnings

    spec = mmzoo.registry.get_spec(name)
    source = source.format(data=data_dir, tiny=tiny_easy_vqa, shapes=tiny_shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # easy-VQA images without a caption
        train, val = mmzoo.data.fit_splits(source, task=task or spec.task)
    config = {**spec.test_config, **mmzoo.data.adapt(name, train)}
    train, val = train.take(24), val.take(8)
    model = mmzoo.build(name, **config)
    for training, ds in ((True, train), (False, val)):
        batches = mmzoo.data.pipeline(model, ds, batch_size=4, training=training)
        x_spec, _ = batches.element_spec
        assert set(x_spec) == {t.name for t in model.inputs}
        x, y = next(iter(batches))
        for t in model.inputs:
            got, want = tuple(x[t.name].shape[1:]), tuple(t.shape[1:])
            assert len(got) == len(want) and all(w in (g, None) for g, w in zip(got, want)), \
                t.name
            assert x[t.name].dtype.name == t.dtype, t.name
        if training:
            assert np.all(np.isfinite(model.train_on_batch(x, y)))
        else:
            assert np.all(np.isfinite(model.evaluate(batches, verbose=0)))


def test_caption_folders_use_every_caption(data_dir):
    model = mmzoo.build("caption_lstm", **mmzoo.registry.get_spec("caption_lstm").test_config)
    raw = mmzoo.data.load(f"captions:{data_dir}/flickr8k_1k", split="validation").take(3)
    evaluation = mmzoo.data.pipeline(model, raw, batch_size=64)
    assert sum(int(x["image"].shape[0]) for x, _ in evaluation) == 15  # 3 images x 5 captions
    training = mmzoo.data.pipeline(model, raw, batch_size=64, training=True)
    assert sum(int(x["image"].shape[0]) for x, _ in training) == 15    # every caption, each epoch
    matcher = mmzoo.build("dual_encoder", **mmzoo.registry.get_spec("dual_encoder").test_config)
    pairs = mmzoo.data.pipeline(matcher, raw, batch_size=64, training=True)
    assert sum(int(x["image"].shape[0]) for x, _ in pairs) == 3        # one caption per image


def test_audio_pipeline_centres_and_augments(data_dir):
    from mmzoo.data.waveform import augment, fit_length

    np.testing.assert_array_equal(fit_length([1.0, 2.0], 6).numpy(), [0, 0, 1, 2, 0, 0])
    # a longer clip keeps its loudest part, wherever it is: a voice note's word at its start
    np.testing.assert_array_equal(fit_length(np.arange(10.0), 4).numpy(), [6, 7, 8, 9])
    note = np.zeros(16000, "float32")
    note[800:4800] = np.sin(np.arange(4000) / 3.0)
    note[4800:] = 1e-3 * np.sin(np.arange(11200) / 5.0)        # seconds of near-quiet after it
    kept = fit_length(note, 4096).numpy()
    assert np.sum(kept ** 2) > 0.99 * np.sum(note[800:4800] ** 2)
    # ... the same rule for a clip alone and in a zero-padded batch
    batch = np.stack([np.pad(note[:12000], (0, 4000)), note])
    np.testing.assert_array_equal(fit_length(batch, 4096)[0].numpy(),
                                  fit_length(note[:12000], 4096).numpy())
    wave = fit_length(np.sin(np.linspace(0, 300, 3000)).astype("float32"), 8000)
    out = augment(wave, 8000).numpy()
    assert out.shape == (8000,) and not np.allclose(out, wave.numpy())
    assert 10 ** (-6.5 / 20) < np.abs(out).max() / np.abs(wave.numpy()).max() < 10 ** (6.5 / 20)
    pair = augment(np.stack([wave.numpy()] * 2), 8000).numpy()   # a batch: drawn per clip
    assert pair.shape == (2, 8000) and not np.allclose(pair[0], pair[1])

    model = mmzoo.build("audio_mfcc_cnn")
    raw = mmzoo.data.load(f"fsdd:{data_dir}/fsdd", split="test").take(8)

    def first_batch(**kw):
        return next(iter(mmzoo.data.pipeline(model, raw, batch_size=8, **kw)))[0]["audio"].numpy()

    plain = first_batch()
    np.testing.assert_array_equal(plain, first_batch())              # evaluation: deterministic
    np.testing.assert_array_equal(np.sort(plain, axis=None),
                                  np.sort(first_batch(training=True, augment=False), axis=None))
    assert not np.allclose(np.sort(plain, axis=None),
                           np.sort(first_batch(training=True), axis=None))


def test_text_standardisation():
    from mmzoo.data.text import standardize

    out = standardize(tf.constant(["Second\\team of  #36;10 MILLION X-Prize, (AP)!"]))
    assert out.numpy()[0].decode() == "second team of 36 10 million x prize ap"
    # every script's letters are lower-cased, as Python's str.lower does
    words = ["École", "ÉCOLE", "école", "ΑΒΓ", "Straße", "ДОМ"]
    out = standardize(tf.constant([" ".join(words)])).numpy()[0].decode()
    assert out == " ".join(w.lower() for w in words) == "école école école αβγ straße дом"


def test_pipeline_tokenizes_with_the_model_vocabulary():
    model = mmzoo.build("caption_lstm")
    raw = mmzoo.data.load("easy_vqa", split="validation", task="captioning").take(2)
    x, y = next(iter(mmzoo.data.pipeline(model, raw, batch_size=2)))
    words = ["", "[UNK]"] + list(easy_vqa.CAPTION_VOCABULARY)
    first = [words[i] for i in x["text"].numpy()[0] if i]
    target = [words[i] for i in y.numpy()[0] if i]
    assert first[0] == "[start]" and len(first) == 6 and "[end]" not in first
    assert target[:-1] == first[1:] and target[-1] == "[end]"
    # the decoder input's padding mask covers exactly the target tokens
    np.testing.assert_array_equal(x["text"].numpy() > 0, y.numpy() > 0)


def test_pipeline_rejects_unknown_labels():
    model = mmzoo.build("vqa_cnn_lstm", labels=("yes", "no"), image_size=16, filters=(4,))
    raw = mmzoo.data.load("easy_vqa", split="test").take(64)
    with pytest.raises(Exception,
                       match=r"labels not among the classes of model .*vqa_cnn_lstm.*yes.*no.*"
                             r"labels are adapted on it.*Unknown labels:.*(circle|red|triangle)"):
        for _ in mmzoo.data.pipeline(model, raw, batch_size=64):
            pass


def test_pipeline_keeps_the_number_of_batches():
    # Keras counts the steps of an epoch (progress bar, no "ran out of data" warning) from it.
    model = mmzoo.build("vqa_cnn_lstm", image_size=16, filters=(4,))
    raw = mmzoo.data.load("easy_vqa", split="test").take(70)
    ds = mmzoo.data.pipeline(model, raw, batch_size=32)
    assert int(ds.cardinality()) == 3 == sum(1 for _ in ds)


def test_adapt_learns_vocabulary_and_labels(tiny_easy_vqa):
    train = mmzoo.data.load(f"easy_vqa:{tiny_easy_vqa}", split="train")
    overrides = mmzoo.data.adapt("vqa_cnn_lstm", train)
    assert set(overrides["labels"]) <= set(easy_vqa.ANSWERS) and len(overrides["labels"]) > 5
    assert "shape" in overrides["vocabulary"] and all(isinstance(t, str)
                                                      for t in overrides["vocabulary"])
    model = mmzoo.build("vqa_cnn_lstm", **overrides)
    assert list(model.get_layer("scores").names) == list(overrides["labels"])


def test_mfcc_layer_serializes():
    layer = MFCC(16000, n_mfcc=20, n_fft=512, hop_length=160, n_mels=64, fmin=20.0, fmax=7600.0)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    wave = np.random.default_rng(0).standard_normal((2, 16000)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(wave)), np.asarray(clone(wave)))
    assert clone.compute_output_shape((None, 16000)) == (None, 101, 20)


def test_cache_modes_give_the_same_batches_and_auto_says_what_it_chose(data_dir, tmp_path,
                                                                       monkeypatch):
    import importlib

    pipeline_module = importlib.import_module("mmzoo.data.pipeline")  # the module, not the function

    model = mmzoo.build("caption_lstm", **mmzoo.registry.get_spec("caption_lstm").test_config)
    raw = mmzoo.data.load(f"captions:{data_dir}/flickr8k_1k", split="validation").take(4)

    def batches(**options):
        ds = mmzoo.data.pipeline(model, raw, batch_size=8, **options)
        return ds.cache_info, [tf.nest.map_structure(np.asarray, b) for b in ds]

    info, reference = batches(cache="none")
    assert info["mode"] == "none"
    for options in ({"cache": "memory"}, {"cache": "disk", "cache_dir": str(tmp_path / "c")}):
        info, got = batches(**options)
        assert info["mode"] == options["cache"]
        for a, b in zip(tf.nest.flatten(reference), tf.nest.flatten(got)):
            np.testing.assert_array_equal(a, b)
    assert any(f.startswith("examples") for f in os.listdir(tmp_path / "c"))
    assert pipeline_module.cache_bytes(info) > 0
    # auto: 4 small photos fit in memory; past the limit they go to disk; text alone: none
    info, _ = batches()
    assert info["mode"] == "memory" and 0 < info["estimate_bytes"] < 2**20
    monkeypatch.setattr(pipeline_module, "MEMORY_CACHE_MAX", info["estimate_bytes"] - 1)
    assert batches(cache_dir=str(tmp_path / "d"))[0]["mode"] == "disk"
    rows = tf.data.Dataset.from_tensor_slices({"text": ["a b", "c d"], "label": ["1", "2"]})
    text_model = mmzoo.build("text_word_vector_mlp", **{
        **mmzoo.registry.get_spec("text_word_vector_mlp").test_config,
        **mmzoo.data.adapt("text_word_vector_mlp", rows)})
    assert mmzoo.data.pipeline(text_model, rows).cache_info["mode"] == "none"
    with pytest.raises(ValueError, match="cache must be one of"):
        mmzoo.data.pipeline(text_model, rows, cache=3)


def test_adapt_caps_the_vocabulary_by_frequency_in_one_pass():
    from mmzoo.data.adapt import MAX_TOKENS

    # 30,000 words once each, and "common" and "often" in every row
    texts = [f"common often w{i}" for i in range(30_000)]
    rows = tf.data.Dataset.from_tensor_slices({"text": texts, "label": ["a", "b"] * 15_000})
    vocabulary = mmzoo.data.adapt("text_word_vector_mlp", rows)["vocabulary"]
    assert len(vocabulary) == MAX_TOKENS - 2 == 19_998       # padding and OOV are the other two
    assert set(vocabulary[:2]) == {"common", "often"}
    assert len(mmzoo.data.adapt("text_word_vector_mlp", rows, max_tokens=None)["vocabulary"]) \
        == 30_002


def test_mfcc_augmentation_is_waveform_gain_shift_and_masks(data_dir):
    from mmzoo.data.waveform import augment_mfcc, fit_length

    mfcc = MFCC(8000, n_fft=256, hop_length=80, n_mels=40)
    wave = next(iter(mmzoo.data.load(f"fsdd:{data_dir}/fsdd", split="test")))["audio"]
    wave = fit_length(wave, 8000).numpy()
    clean, louder = mfcc(wave[None]).numpy(), mfcc(wave[None] * 10 ** (5 / 20)).numpy()
    # a +5 dB gain moves c0 by 5 * sqrt(n_mels) and nothing else (orthonormal DCT)
    np.testing.assert_allclose(louder[..., 0] - clean[..., 0], 5 * 40 ** 0.5, atol=1e-3)
    np.testing.assert_allclose(louder[..., 1:], clean[..., 1:], atol=1e-3)
    batch = np.repeat(clean, 64, axis=0)
    out = augment_mfcc(batch, 100.0, 40, gain_db=0.0, max_shift=0.0).numpy()
    assert out.shape == batch.shape
    changed = out != batch
    assert changed.any() and not changed.all()
    # masked values are the clip's mean of that coefficient; masks are whole frames / columns
    mean = batch.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out[changed], np.broadcast_to(mean, batch.shape)[changed],
                               rtol=1e-5)
    assert (changed.sum(axis=1) <= 2 * 8 + 100).all()
    shifted = augment_mfcc(batch, 100.0, 40, gain_db=0.0, time_masks=0,
                           coefficient_masks=0).numpy()
    for row in shifted:                    # each clip rolled by at most 0.1 s (10 frames)
        assert any(np.allclose(row, np.roll(clean[0], k, axis=0)) for k in range(-10, 11))


@pytest.mark.parametrize("values, names", [
    ([2.0, 0.5, 1.0, 0.5], ["0.5", "1", "2"]),        # floats, in their shortest form
    ([10, 2, 0, 2], ["0", "2", "10"]),                 # integers, sorted as numbers
    ([True, False, True, True], ["false", "true"]),
    ([b"b", b"a", b"b", b"c"], ["a", "b", "c"]),
])
def test_labels_of_any_type_read_the_same_in_adapt_and_pipeline(values, names):
    """What `adapt` names a class is what the pipeline looks up (a float label 1.0 was '1.0'
    to one and '1.000000' to the other, and failed as an unknown label)."""
    from mmzoo.data.adapt import label_names

    texts = ["a red circle", "a blue square", "a green triangle", "a red square"]
    raw = tf.data.Dataset.from_tensor_slices({"text": texts, "label": values})
    assert label_names(raw) == names
    config = {**mmzoo.registry.get_spec("text_word_vector_mlp").test_config,
              "labels": tuple(names)}
    model = mmzoo.build("text_word_vector_mlp", **config)
    _, ids = next(iter(mmzoo.data.pipeline(model, raw, batch_size=4)))
    as_text = [v.decode() if isinstance(v, bytes) else v for v in values]
    expected = [names.index(n) for n in (
        as_text if isinstance(values[0], bytes) else
        ["true" if v is True else "false" if v is False else
         (str(int(v)) if float(v).is_integer() else str(v)) for v in values])]
    assert ids.numpy().tolist() == expected
