import dataclasses

import keras
import pytest

import mmzoo
from mmzoo import registry


def test_list_models_covers_tasks_and_modalities():
    names = mmzoo.list_models()
    assert len(names) >= 10 and names == sorted(names)
    for task in registry.TASKS:
        assert mmzoo.list_models(task=task), f"no model for task {task}"
    assert set(mmzoo.list_models(modality="audio")) >= {"audio_mfcc_cnn", "trimodal_classifier"}
    assert mmzoo.list_models(task="captioning") == ["caption_lstm"]
    assert mmzoo.list_models("text_*") == ["text_image_concat", "text_lstm", "text_transformer",
                                           "text_word_vector_mlp"]
    assert "vqa_cnn_lstm" in mmzoo.list_models(modality="text")  # its question is text


def test_list_models_rejects_unknown_filters():
    with pytest.raises(ValueError, match="unknown task 'caption'"):
        mmzoo.list_models(task="caption")
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        mmzoo.list_models(modality="video")


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match=r"unknown model 'captionlstm'; did you mean "
                                       r"'caption_lstm'\? see mmzoo.list_models\(\)"):
        mmzoo.build("captionlstm")
    with pytest.raises(KeyError, match="unknown model 'zzz'; see mmzoo.list_models"):
        mmzoo.describe("zzz")


def test_unknown_override_lists_valid_keys():
    with pytest.raises(TypeError, match=r"unknown config key\(s\) \['fusoin'\] for model "
                                        r"'vqa_cnn_lstm'; valid keys: \[.*'fusion'"):
        mmzoo.build("vqa_cnn_lstm", fusoin="sum")


@pytest.mark.parametrize("key,value,message", [
    ("image_size", "64", "field 'image_size' of model 'vqa_cnn_lstm' must be int, got str"),
    ("image_size", 6.5, "must be int, got float"),
    ("dropout", True, "field 'dropout' .* must be float, got bool"),
    ("filters", 32, "field 'filters' .* must be tuple"),
    ("fusion", "mean", r"field 'fusion' .* must be one of \['concat', 'sum', 'product', "
                       r"'attention', 'gated'\], got 'mean'"),
])
def test_wrong_type_names_the_field(key, value, message):
    with pytest.raises(TypeError, match=message):
        mmzoo.build("vqa_cnn_lstm", **{key: value})


def test_overrides_are_applied_and_coerced():
    model = mmzoo.build("vqa_cnn_lstm", image_size=32, filters=[8, 16], dropout=0, fusion="gated")
    assert model.get_layer("image").output.shape[1:] == (32, 32, 3)
    assert model.get_layer("image_conv2").filters == 16
    assert model.get_layer("fusion_gated_sum") is not None


@pytest.mark.parametrize("fusion", ["concat", "sum", "product", "attention", "gated"])
def test_every_fusion_method_builds(fusion):
    model = mmzoo.build("text_image_concat", fusion=fusion, image_size=16, filters=(4,),
                        fusion_dim=8)
    assert any(layer.name.startswith("fusion_") for layer in model.layers)


def test_describe_is_a_model_card():
    card = mmzoo.describe("caption_lstm")
    for part in ("task:       captioning", "image      shape=(None, 64, 64, 3) dtype=float32",
                 "text       shape=(None, 8) dtype=int32", "max_length = 8", "parameters: "):
        assert part in card, card


@dataclasses.dataclass(frozen=True)
class _TinyConfig:
    units: int = 4


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_register_from_user_code(scratch_registry):
    @mmzoo.register("user_audio_dense", task="classification", inputs=("audio",),
                    config=_TinyConfig)
    def user_audio_dense(cfg):
        """A dense layer over a raw waveform."""
        audio = keras.Input(shape=(100,), name="audio")
        out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(cfg.units)(audio))
        model = keras.Model({"audio": audio}, out, name="user_audio_dense")
        model.compile(loss="sparse_categorical_crossentropy")
        return model

    assert "user_audio_dense" in mmzoo.list_models(modality="audio")
    assert mmzoo.build("user_audio_dense", units=7).layers[1].units == 7
    with pytest.raises(ValueError, match="already registered"):
        mmzoo.register("user_audio_dense", task="classification", inputs=("audio",),
                       config=_TinyConfig)(user_audio_dense)


def test_register_validates_its_arguments(scratch_registry):
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        mmzoo.register("x", task="ranking", inputs=("text",), config=_TinyConfig)
    with pytest.raises(ValueError, match=r"unknown input names \['video'\]"):
        mmzoo.register("x", task="classification", inputs=("video",), config=_TinyConfig)
    with pytest.raises(TypeError, match="must be a frozen dataclass"):
        mmzoo.register("x", task="classification", inputs=("text",), config=dict)
