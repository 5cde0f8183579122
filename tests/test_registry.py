import dataclasses

import keras
import pytest

import mmzoo
from mmzoo import registry


def test_list_models_covers_tasks_and_modalities():
    names = mmzoo.list_models()
    assert len(names) >= 10 and names == sorted(names)
    for task in registry.task_names():
        assert mmzoo.list_models(task=task), f"no model for task {task}"
    assert set(mmzoo.list_models(modality="audio")) >= {"audio_mfcc_cnn", "trimodal_classifier"}
    assert mmzoo.list_models(task="captioning") == ["caption_lstm", "caption_lstm_mobilenet"]
    assert mmzoo.list_models(task="transcription") == ["speech_ctc", "speech_ctc_transformer"]
    assert mmzoo.list_models("*_mobilenet") == ["caption_lstm_mobilenet", "dual_encoder_mobilenet"]
    assert mmzoo.list_models("text_*") == ["text_fasttext", "text_image_concat", "text_lstm",
                                           "text_transformer", "text_word_vector_mlp"]
    assert "vqa_cnn_lstm" in mmzoo.list_models(modality="text")  # its question is text


def test_list_models_rejects_unknown_filters():
    with pytest.raises(ValueError, match="unknown task 'caption'"):
        mmzoo.list_models(task="caption")
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        mmzoo.list_models(modality="video")


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match=r"unknown model 'captionlstm'; did you mean "
                                       r"'caption_lstm' or 'caption_lstm_mobilenet'\? see "
                                       r"mmzoo.list_models\(\)"):
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
    ("filters", "wide", "field 'filters' .* must be int, got str 'wide'"),
    ("filters", {"a": 1}, "field 'filters' .* must be tuple"),
    ("bidirectional", "maybe", "field 'bidirectional' .* must be bool, got str 'maybe'"),
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
    # as `--set` gives them: one number for a list of one, yes/no for a boolean
    cfg = mmzoo.registry.get_spec("vqa_cnn_lstm").make_config(filters=32, bidirectional="yes")
    assert cfg.filters == (32,) and cfg.bidirectional is True


# The layer that makes each fusion what it is: (name, Keras class).
FUSION_LAYERS = {"concat": ("fusion_concat", "Concatenate"), "sum": ("fusion_sum", "Add"),
                 "product": ("fusion_product", "Multiply"),
                 "attention": ("fusion_attention", "MultiHeadAttention"),
                 "gated": ("fusion_text_gate", "Dense")}


def test_each_fusion_method_builds_its_own_layers():
    graphs = {}
    for fusion, (own, cls) in FUSION_LAYERS.items():
        model = mmzoo.build("text_image_concat", fusion=fusion, image_size=16, filters=(4,),
                            fusion_dim=8)
        names = {layer.name: type(layer).__name__ for layer in model.layers}
        assert names.get(own) == cls, (fusion, sorted(n for n in names if "fusion" in n))
        others = [o for f, (o, _) in FUSION_LAYERS.items() if f != fusion and o in names]
        assert not others, f"{fusion} fusion also has the layers of {others}"
        graphs[fusion] = tuple(sorted((n, c) for n, c in names.items() if n.startswith("fusion")))
    assert len(set(graphs.values())) == len(FUSION_LAYERS)  # five different fusion graphs
    # gated: one sigmoid gate per modality, each computed from both features
    model = mmzoo.build("text_image_concat", fusion="gated", image_size=16, filters=(4,),
                        fusion_dim=8)
    for modality in ("text", "image"):
        gate = model.get_layer(f"fusion_{modality}_gate")
        assert gate.activation.__name__ == "sigmoid"
        assert gate.input.shape[-1] == model.get_layer("fusion_gate_input").output.shape[-1]


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


def _user_audio_classifier(cfg):
    """A user's model that keeps the contract: inputs named by modality, a front end that
    declares its sample rate, class names on the scores."""
    audio = keras.Input(shape=(1000,), name="audio")
    x = mmzoo.layers.MFCC(4000, n_mfcc=8, n_fft=64, hop_length=32, n_mels=16,
                          name="audio_mfcc")(audio)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(cfg.units)(x))
    scores = mmzoo.layers.LabelNames(("a", "b", "c"), name="scores")(x)
    model = keras.Model({"audio": audio}, scores, name="user_audio_dense")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def test_register_from_user_code_works_with_every_command(scratch_registry, tmp_path):
    import numpy as np
    import tensorflow as tf

    @mmzoo.register("user_audio_dense", task="classification", inputs=("audio",),
                    config=_TinyConfig)
    def user_audio_dense(cfg):
        """An MFCC front end and two dense layers."""
        return _user_audio_classifier(cfg)

    assert "user_audio_dense" in mmzoo.list_models(modality="audio")
    model = mmzoo.build("user_audio_dense", units=7)
    assert model.layers[-3].units == 7
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype("float32") for n in (900, 1000, 1200, 800)]
    raw = tf.data.Dataset.from_generator(
        lambda: ({"audio": w, "label": lab, "sample_rate": 4000}
                 for w, lab in zip(waves, "abca")),
        output_signature={"audio": tf.TensorSpec([None], tf.float32),
                          "label": tf.TensorSpec([], tf.string),
                          "sample_rate": tf.TensorSpec([], tf.int32)})
    model.fit(mmzoo.data.pipeline(model, raw, batch_size=2, training=True), verbose=0)
    assert mmzoo.evaluate(model, raw)["examples"] == 4
    served = tf.saved_model.load(mmzoo.export(model, tmp_path / "sm"))
    out = served.signatures["serving_default"](audio=tf.constant(waves[2][None]))
    centred = mmzoo.data.waveform.fit_length(waves[2], 1000)[None]   # 1200 samples, cropped
    scores = model.predict({"audio": centred}, verbose=0)
    np.testing.assert_allclose(out["scores"].numpy(), scores, rtol=1e-5, atol=1e-6)
    assert out["label"].numpy()[0].decode() == "abc"[int(np.argmax(scores))]
    with pytest.raises(ValueError, match="already registered"):
        mmzoo.register("user_audio_dense", task="classification", inputs=("audio",),
                       config=_TinyConfig)(user_audio_dense)


def test_a_user_model_without_the_contract_fails_at_build_naming_what_it_lacks(
        scratch_registry):
    @mmzoo.register("user_text_plain", task="classification", inputs=("text",),
                    config=_TinyConfig)
    def user_text_plain(cfg):
        """Embedding and softmax, without the layers the commands read."""
        text = keras.Input(shape=(5,), dtype="int32", name="text")
        x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, cfg.units)(text))
        model = keras.Model({"text": text}, keras.layers.Dense(2, activation="softmax")(x),
                            name="user_text_plain")
        model.compile(loss="sparse_categorical_crossentropy")
        return model

    with pytest.raises(mmzoo.errors.ContractError) as info:
        mmzoo.build("user_text_plain")
    message = str(info.value)
    assert "model 'user_text_plain' (classification) does not carry" in message
    assert "no mmzoo.layers.Vocabulary layer named 'text_vocabulary'" in message
    assert "carries no class names" in message and "LabelNames" in message

    @mmzoo.register("user_named_wrong", task="classification", inputs=("audio",),
                    config=_TinyConfig)
    def user_named_wrong(cfg):
        """Inputs not named by modality."""
        wave = keras.Input(shape=(100,), name="waveform")
        scores = mmzoo.layers.LabelNames(("a", "b"), name="scores")(
            keras.layers.Dense(2, activation="softmax")(wave))
        return keras.Model({"waveform": wave}, scores, name="user_named_wrong")

    with pytest.raises(mmzoo.errors.ContractError,
                       match=r"has inputs \['waveform'\], not the registered \['audio'\]"):
        mmzoo.build("user_named_wrong")


def test_register_validates_its_arguments(scratch_registry):
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        mmzoo.register("x", task="ranking", inputs=("text",), config=_TinyConfig)
    with pytest.raises(ValueError, match=r"unknown input names \['video'\]"):
        mmzoo.register("x", task="classification", inputs=("video",), config=_TinyConfig)
    with pytest.raises(TypeError, match="must be a frozen dataclass"):
        mmzoo.register("x", task="classification", inputs=("text",), config=dict)


def test_fasttext_reads_words_and_word_pairs_and_adapts_them():
    import tensorflow as tf

    from mmzoo.data import Preprocessor

    model = mmzoo.build("text_fasttext", vocabulary=("new", "york", "new york", "city"),
                        sequence_length=6, labels=("a", "b"))
    ids = Preprocessor(model).text("text", tf.constant(["New York city!"])).numpy()[0]
    # the words, then the pairs ("york city" is not in the vocabulary: out of vocabulary, 1)
    assert ids.tolist() == [2, 3, 5, 4, 1, 0]
    train = tf.data.Dataset.from_tensor_slices({"text": ["new york", "new york city"] * 3,
                                                "label": ["a", "b"] * 3})
    adapted = mmzoo.data.adapt("text_fasttext", train)
    assert {"new york", "york city"} <= set(adapted["vocabulary"])
    assert "new york" not in mmzoo.data.adapt("text_word_vector_mlp", train)["vocabulary"]
