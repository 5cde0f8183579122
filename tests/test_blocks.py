import keras
import numpy as np
import pytest

import mmzoo
from mmzoo import blocks
from mmzoo.layers import WeightedAverage


def test_resnet_encoder_random_and_from_a_local_weights_file(tmp_path):
    image = keras.Input(shape=(32, 32, 3))
    features = blocks.resnet_encoder(image, depth=50)
    model = keras.Model(image, features)
    assert features.shape[1:] == (2048,)
    weights = tmp_path / "resnet50v2_notop.weights.h5"
    backbone = model.get_layer("image_backbone").get_layer("image_resnet50_v2")
    backbone.save_weights(weights)

    image2 = keras.Input(shape=(32, 32, 3))
    model2 = keras.Model(image2, blocks.resnet_encoder(image2, depth=50, weights=str(weights)))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), model2.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_models_take_a_resnet_image_branch():
    model = mmzoo.build("vqa_cnn_lstm", image_encoder="resnet", image_size=32)
    assert model.get_layer("image_backbone").get_layer("image_resnet50_v2") is not None


def test_bidirectional_lstm_encoder():
    ids = keras.Input(shape=(5,), dtype="int32")
    assert blocks.lstm_encoder(ids, vocab_size=10, units=6, bidirectional=True).shape[1:] == (12,)


def test_late_fusion_is_a_learned_convex_combination():
    a = np.array([[1.0, 0.0]], "float32")
    b = np.array([[0.0, 1.0]], "float32")
    layer = WeightedAverage()
    np.testing.assert_allclose(np.asarray(layer([a, b])), [[0.5, 0.5]])
    layer.logits.assign([np.log(3.0), 0.0])
    np.testing.assert_allclose(np.asarray(layer([a, b])), [[0.75, 0.25]], rtol=1e-6)


def test_fuse_rejects_unknown_methods():
    x = keras.Input(shape=(4,))
    with pytest.raises(ValueError, match="unknown fusion 'mean'"):
        blocks.fuse({"a": x, "b": x}, "mean")


def test_classifier_head_regularizes():
    x = keras.Input(shape=(4,))
    model = keras.Model(x, blocks.classifier_head(x, labels=["a", "b"], l1=0.01, l2=0.01))
    assert model.losses and float(sum(model.losses)) > 0
