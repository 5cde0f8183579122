"""Pretrained image backbones (keras.applications), fine-tuning and frozen-feature training.

The weights are the real ImageNet MobileNet v1 (alpha 0.25) in ../shared/data/weights; nothing is
downloaded.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import blocks
from mmzoo import contract as feats
from mmzoo.features import feature_model

WEIGHTS = "weights/mobilenet_v1_0.25_224_imagenet_no_top.h5"
MOBILENET = dict(image_encoder="mobilenet", image_alpha=0.25, image_size=32)
IMAGE_MODELS = [n for n in mmzoo.list_models() if "image" in mmzoo.registry.get_spec(n).inputs]


@pytest.fixture(scope="module")
def weights(data_dir):
    path = os.path.join(data_dir, WEIGHTS)
    if not os.path.exists(path):
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def photos(data_dir):
    folder = os.path.join(data_dir, "flickr8k_1k", "Images")
    names = sorted(os.listdir(folder))[:4]
    return np.stack([tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(os.path.join(folder, n))),
                                     (224, 224)).numpy() for n in names])


def test_mobilenet_features_are_keras_applications_own(weights, photos):
    image = keras.Input(shape=(224, 224, 3))
    ours = keras.Model(image, blocks.pretrained_encoder(image, "mobilenet", alpha=0.25,
                                                        weights=weights))
    reference = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None,
                                             input_shape=(224, 224, 3), pooling="avg")
    reference.load_weights(weights)
    expected = reference.predict(keras.applications.mobilenet.preprocess_input(photos.copy()),
                                 verbose=0)
    np.testing.assert_allclose(ours.predict(photos, verbose=0), expected, rtol=1e-4, atol=1e-5)
    assert np.std(expected, axis=0).mean() > 0.01  # the photos differ in their features


def test_weights_errors_name_the_file_and_the_backbone(weights, tmp_path):
    image = keras.Input(shape=(64, 64, 3))
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match=f"{missing}.*'mobilenet'"):
        blocks.pretrained_encoder(image, "mobilenet", weights=missing)
    with pytest.raises(ValueError, match=f"{weights}.*mobilenet_v2|mobilenet_v2.*{weights}"):
        blocks.pretrained_encoder(image, "mobilenet_v2", weights=weights)
    with pytest.raises(ValueError, match="did you mean 'mobilenet_v2'"):
        mmzoo.build("vqa_cnn_lstm", image_encoder="mobilnet_v2")
    with pytest.raises(ValueError, match="'cnn' is trained from scratch"):
        mmzoo.build("vqa_cnn_lstm", image_weights=weights)
    with pytest.raises(ValueError, match="no width multiplier"):
        blocks.pretrained_encoder(image, "efficientnet_b0", alpha=0.5)


def test_a_weights_file_of_another_architecture_says_which_it_needs(weights, data_dir):
    image = keras.Input(shape=(224, 224, 3))
    with pytest.raises(ValueError) as e:  # the 0.25 file into a MobileNet of width 1.0
        blocks.pretrained_encoder(image, "mobilenet", weights=weights, alpha=1.0)
    assert ("does not fit backbone 'mobilenet' (image_alpha=1.0, 224x224 pixels, without its "
            "classifier top)") in str(e.value)
    assert "its name says width 0.25: pass image_alpha=0.25" in str(e.value)
    with_top = os.path.join(data_dir, "weights", "mobilenet_v1_0.25_224_imagenet.h5")
    with pytest.raises(ValueError, match="include_top=True.* give the `_no_top` one"):
        blocks.pretrained_encoder(image, "mobilenet", weights=with_top, alpha=0.25)


def test_offline_imagenet_weights_say_what_to_pass(tmp_path):
    # offline for real: an empty Keras cache, and every download through a closed local port
    code = textwrap.dedent("""
        import mmzoo
        try:
            mmzoo.build("image_classifier", image_encoder="mobilenet", image_alpha=0.25,
                        image_size=160, image_weights="imagenet")
        except FileNotFoundError as e:
            print(e)
    """)
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3",
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    said = out.stdout.strip().splitlines()[-1]  # after Keras' "Downloading data from ..."
    assert said.startswith("cannot download the ImageNet weights of backbone 'mobilenet' "
                           "(image_alpha=0.25, 160x160 pixels"), out.stderr[-2000:]
    assert "pass image_weights=PATH, that file (mobilenet_2_5_160_tf_no_top.h5)" in said
    assert "or image_weights=None" in said


def test_imagenet_weights_come_through_keras_own_cache(weights, tmp_path):
    """`image_weights="imagenet"` is keras.applications' download, read from KERAS_HOME's cache
    (where Keras would have saved it), so it is the same backbone as the local file."""
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(weights, models / "mobilenet_2_5_224_tf_no_top.h5")
    code = textwrap.dedent(f"""
        import numpy as np, mmzoo
        x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
        a = mmzoo.build("vqa_cnn_lstm", image_encoder="mobilenet", image_alpha=0.25,
                        image_size=224, image_weights="imagenet").get_layer("image_backbone")
        b = mmzoo.build("vqa_cnn_lstm", image_encoder="mobilenet", image_alpha=0.25,
                        image_size=224, image_weights={weights!r}).get_layer("image_backbone")
        np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-5)
        print("same")
    """)
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "same" in out.stdout, out.stderr[-2000:]


def test_image_trainable_freezes_tunes_the_last_blocks_or_trains_all(weights):
    def backbone(**kw):
        return mmzoo.build("vqa_cnn_lstm", **MOBILENET, image_weights=weights,
                           **kw).get_layer("image_backbone")

    assert not backbone().trainable_weights                   # weights: frozen by default
    assert not backbone(image_trainable=False).trainable_weights
    every = backbone(image_trainable=True)   # all but the pretrained batch normalisation
    kernels = [w for w in every.weights if w.path.endswith("kernel")]
    assert kernels and all(w.trainable for w in kernels)
    assert not any(w.trainable for w in every.weights if "bn" in w.path)
    tuned = backbone(image_trainable=2)
    names = {w.path.split("/")[-2] for w in tuned.trainable_weights}
    assert names and all(n.startswith(("conv_dw_12", "conv_pw_12", "conv_dw_13", "conv_pw_13"))
                         for n in names), names
    random = mmzoo.build("vqa_cnn_lstm", **MOBILENET).get_layer("image_backbone")
    assert random.trainable_weights                           # no weights: trained from scratch
    with pytest.raises(ValueError, match="has 13 blocks"):
        backbone(image_trainable=14)


def test_fine_tuning_keeps_the_pretrained_batch_norm_statistics(weights, photos):
    model = mmzoo.build("dual_encoder", **MOBILENET, image_weights=weights, image_trainable=1,
                        sequence_length=4, embedding_dim=8)
    backbone = model.get_layer("image_encoder").get_layer("image_backbone")
    stats = {w.path: w.numpy().copy() for w in backbone.weights if "moving" in w.path}
    tuned = {w.path: w.numpy().copy() for w in backbone.trainable_weights}
    images = tf.image.resize(photos, (32, 32)).numpy()
    model.fit({"image": images, "text": np.array([[2, 3, 0, 0]] * 4)}, np.zeros(4), epochs=2,
              verbose=0)
    assert all(np.array_equal(w.numpy(), stats[w.path]) for w in backbone.weights
               if "moving" in w.path)
    assert any(not np.array_equal(w.numpy(), tuned[w.path]) for w in backbone.trainable_weights)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_feature_model_is_the_model_after_its_backbone(name, weights):
    spec = mmzoo.registry.get_spec(name)
    model = mmzoo.build(name, **{**spec.test_config, **MOBILENET, "image_weights": weights})
    backbone = feats.frozen_backbone(model)
    assert backbone is not None
    head = feature_model(model)
    assert not any(layer is backbone for layer in mmzoo.contract.walk(head))
    rng = np.random.default_rng(0)
    x = {}
    for t in model.inputs:
        shape = (3, *t.shape[1:])
        x[t.name] = (rng.integers(0, 4, shape).astype("int32") if "int" in str(t.dtype)
                     else rng.uniform(0, 255, shape).astype("float32"))
    # every fixed front end: the backbone, and the MFCC layer of a model that hears audio
    fronts = feats.front_ends(model)
    assert fronts["image"] is backbone and ("audio" in fronts) == ("audio" in spec.inputs)
    on_features = {**x, **{name: keras.ops.convert_to_numpy(front(x[name]))
                           for name, front in fronts.items()}}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(on_features)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    shared = {id(w) for w in model.trainable_weights}
    assert {id(w) for w in head.trainable_weights} == shared


def test_frozen_feature_training_equals_running_the_backbone(weights, tiny_easy_vqa, tmp_path):
    """The cached features give the same training as the backbone run every step, the saved
    model is the whole graph, and the disk cache is reused by the next run."""
    overrides = {**MOBILENET, "image_weights": weights, "units": 16, "embed_dim": 8}
    losses = {}
    for cache in ("off", "memory", "disk"):
        model, history = mmzoo.train("caption_lstm", f"easy_vqa:{tiny_easy_vqa}", epochs=2,
                                     batch_size=16, out=str(tmp_path / cache), verbose=0,
                                     overrides=overrides, feature_cache=cache)
        losses[cache] = history.history["loss"] + history.history["val_loss"]
        assert model.get_layer("image_encoder").get_layer("image_backbone") is not None
    np.testing.assert_allclose(losses["memory"], losses["off"], rtol=1e-4)
    np.testing.assert_allclose(losses["disk"], losses["off"], rtol=1e-4)
    from mmzoo.artifacts import MANIFEST, artifacts

    folder = tmp_path / "disk" / "feature_cache"
    cached = artifacts(folder)
    assert len(cached) == 2, os.listdir(folder)  # train and validation features
    made = {n: os.stat(folder / n / MANIFEST).st_ino for n in cached}
    # a retrain with other head settings reads them again (same data, backbone and sizes) ...
    mmzoo.train("caption_lstm", f"easy_vqa:{tiny_easy_vqa}", epochs=1, batch_size=16,
                out=str(tmp_path / "disk"), verbose=0, overrides={**overrides, "units": 8},
                feature_cache="disk", overwrite=True)
    assert {n: os.stat(folder / n / MANIFEST).st_ino for n in artifacts(folder)} == made
    # ... keyed by the front ends' architecture and weights as well as by the data
    assert all(json.load(open(folder / n / MANIFEST))["parts"]["features"] for n in cached)
    reference = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None,
                                             input_shape=(32, 32, 3), pooling="avg")
    reference.load_weights(weights)
    served = model.get_layer("image_encoder").get_layer("image_backbone")
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        served.predict(x, verbose=0),
        reference.predict(keras.applications.mobilenet.preprocess_input(x.copy()), verbose=0),
        rtol=1e-4, atol=1e-5)


# Texts a tokenizer may stumble on: accents, a dash, nothing, spaces, a word past 100 bytes,
# tabs and newlines, CJK, a soft hyphen and a zero-width space (Unicode's default ignorables)
ODD_TEXTS = ["Café déjà vu — naïve façade!", "", "   ", "A" * 150, "tab\tnew\nline",
             "中文 text", "soft\u00adhyphen zero\u200bwidth", "ÉCOLE Straße"]


def news_texts(data_dir, rows=300):
    """The first AG News rows' titles and descriptions."""
    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        return [" ".join(row[1:3]) for row in list(csv.reader(f))[1:rows + 1]]


@pytest.mark.parametrize("lowercase,strip_accents", [(True, True), (False, False)])
def test_the_runtime_tokenizes_as_a_keras_hub_wordpiece_tokenizer(data_dir, lowercase,
                                                                  strip_accents):
    """`mmzoo.runtime.tokenize` (no TensorFlow) against the KerasHub tokenizer a model carries,
    as the pipeline runs it (TensorFlow Text, in a tf.function), on real news text with a
    WordPiece vocabulary learnt from it."""
    import keras_hub

    from mmzoo import runtime
    from mmzoo.layers import HubTokenizer
    from mmzoo.portable import hub_text_preprocessing

    texts = news_texts(data_dir) + ODD_TEXTS
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts[:200]), vocabulary_size=600,
        lowercase=lowercase, strip_accents=strip_accents,
        reserved_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    layer = HubTokenizer(keras_hub.tokenizers.BertTokenizer(
        vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents))
    want = tf.function(lambda s: layer.ids(s, 24))(tf.constant(texts)).numpy()
    got = runtime.tokenize(texts, hub_text_preprocessing(layer, 24))
    np.testing.assert_array_equal(got, want)
    assert (got == vocabulary.index("[UNK]")).any() and (got > 100).any()


@pytest.fixture(scope="module")
def hub_presets(tmp_path_factory, data_dir):
    """Tiny randomly initialised KerasHub presets, saved by the test (nothing downloaded)."""
    import keras_hub

    root = tmp_path_factory.mktemp("presets")
    resnet = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")
    resnet.save_to_preset(str(root / "resnet"))
    keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0).save_to_preset(
        str(root / "resnet"))
    vit = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1,
                                       num_heads=2, hidden_dim=16, mlp_dim=32)
    vit.save_to_preset(str(root / "vit"))
    keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5,
                                       offset=-1.0).save_to_preset(str(root / "vit"))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "there", "is", "a", "red",
                  "blue", "green", "circle", "triangle", "rectangle", "##s"]
    bert = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1,
                                         num_heads=2, hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=16)
    bert.save_to_preset(str(root / "bert"))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(
        str(root / "bert"))
    return {"resnet": str(root / "resnet"), "vit": str(root / "vit"), "bert": str(root / "bert"),
            "data_dir": data_dir}


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_keras_hub_preset_image_encoder(kind, hub_presets, tmp_path):
    import keras_hub

    preset = hub_presets[kind]
    model = mmzoo.build("vqa_cnn_lstm", image_encoder=f"keras_hub:{preset}", image_size=48,
                        sequence_length=4, labels=("a", "b"))
    backbone = feats.frozen_backbone(model)
    assert backbone is not None           # a preset is pretrained: frozen unless asked
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    reference = keras_hub.models.Backbone.from_preset(preset)(converter(x))
    reference = keras.ops.mean(reference, axis=(1, 2) if kind == "resnet" else 1)
    np.testing.assert_allclose(backbone.predict(x, verbose=0), reference, rtol=1e-4, atol=1e-5)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    inputs = {"image": x, "question": np.array([[2, 3, 0, 0], [3, 0, 0, 0]])}
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0),
                               rtol=1e-5, atol=1e-6)
    tuned = mmzoo.build("vqa_cnn_lstm", image_encoder=f"keras_hub:{preset}", image_size=48,
                        image_trainable=True)
    assert feats.frozen_backbone(tuned) is None
    with pytest.raises(FileNotFoundError, match="preset directory"):
        mmzoo.build("vqa_cnn_lstm", image_encoder=f"keras_hub:{tmp_path / 'missing'}")


def test_keras_hub_preset_trains_on_cached_features_and_exports_raw_bytes(
        hub_presets, tiny_easy_vqa, tmp_path):
    model, history = mmzoo.train(
        "caption_lstm", f"easy_vqa:{tiny_easy_vqa}", epochs=1, batch_size=16, verbose=0,
        out=str(tmp_path / "run"), overrides={"image_encoder": f"keras_hub:{hub_presets['vit']}",
                                              "image_size": 32, "units": 8, "embed_dim": 8})
    assert np.isfinite(history.history["loss"]).all()
    mmzoo.export(model, str(tmp_path / "sm"))
    served = tf.saved_model.load(str(tmp_path / "sm"))
    png = tf.io.encode_png(tf.zeros((20, 30, 3), tf.uint8))
    out = served.signatures["serving_default"](image=tf.stack([png]))
    assert out["caption"].dtype == tf.string and out["caption"].shape == (1,)


def test_keras_hub_preset_text_encoder_serves_raw_strings(hub_presets, tiny_easy_vqa, tmp_path):
    """`text_encoder="keras_hub:PRESET"`: the preset's tokenizer makes the ids (in training and
    in the export), its backbone is frozen, and the SavedModel embeds raw strings in a process
    without mmzoo or keras_hub (tensorflow_text registers the tokenizer's ops)."""
    import keras_hub

    preset = hub_presets["bert"]
    model, history = mmzoo.train(
        "dual_encoder", f"easy_vqa:{tiny_easy_vqa}", epochs=1, batch_size=16, verbose=0,
        out=str(tmp_path / "run"), overrides={"text_encoder": f"keras_hub:{preset}",
                                              "image_size": 16, "filters": (4,),
                                              "embedding_dim": 8})
    assert np.isfinite(history.history["loss"]).all()
    texts = ["There is a red circle", "a blue triangles"]
    ids = mmzoo.data.Preprocessor(model).text("text", tf.constant(texts)).numpy()
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    packer = keras_hub.layers.StartEndPacker(ids.shape[1], start_value=2, end_value=3,
                                             pad_value=0)
    np.testing.assert_array_equal(ids, packer(tokenizer(texts)))
    assert ids[1].tolist()[:6] == [2, 7, 9, 12, 14, 3]   # [CLS] a blue triangle ##s [SEP]
    backbone = model.get_layer("text_encoder").get_layer("text_hub_backbone")
    assert not backbone.trainable_weights
    # a runtime without TensorFlow makes the same ids from metadata.json's `preprocessing`
    # (KerasHub's WordPiece), here on real news text with its punctuation and accents
    from mmzoo import runtime
    from mmzoo.portable import text_preprocessing

    news = news_texts(hub_presets["data_dir"]) + ODD_TEXTS
    steps = runtime.tokenize(news, text_preprocessing(model, "text"))
    graph = tf.function(lambda s: mmzoo.data.Preprocessor(model).text("text", s))
    np.testing.assert_array_equal(steps, graph(tf.constant(news)).numpy())
    np.testing.assert_array_equal(
        steps, mmzoo.data.Preprocessor(model).text("text", tf.constant(news)).numpy())
    with pytest.raises(ValueError, match="not keras_hub.tokenizers.BytePairTokenizer"):
        runtime.tokenize(["a"], {"tokenizer": "keras_hub.tokenizers.BytePairTokenizer",
                                 "config": {}, "vocabulary": [], "length": 4})

    text_encoder, _ = mmzoo.tasks.retrieval.encoders(model)
    want = text_encoder.predict(ids, verbose=0)
    mmzoo.export(model, str(tmp_path / "sm"))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["mmzoo"] = None
        sys.modules["keras_hub"] = None
        import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401
        served = tf.saved_model.load({str(tmp_path / "sm")!r})
        out = served.signatures["embed_text"](text=tf.constant({texts!r}))
        np.save({str(tmp_path / "served.npy")!r}, out["embedding"].numpy())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), want, rtol=1e-5, atol=1e-6)
