"""Classifiers: text, image, audio, and their fusions (feature-level and decision-level)."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

import keras

from mmzoo.blocks import fuse, late_fusion, spelling
from mmzoo.layers.vocab import LabelNames
from mmzoo.models.common import (
    DIGITS,
    SHAPES,
    TINY_AUDIO,
    TINY_HEAD,
    TINY_IMAGE,
    TINY_TEXT,
    AudioConfig,
    HeadConfig,
    ImageConfig,
    TextConfig,
    audio_input,
    compile_classifier,
    encode_audio,
    encode_image,
    encode_text,
    head,
    image_input,
    text_input,
)
from mmzoo.registry import register

FusionMethod = Literal["concat", "sum", "product", "attention", "gated"]


@dataclasses.dataclass(frozen=True)
class TextImageConfig(TextConfig, ImageConfig, HeadConfig):
    fusion: FusionMethod = "concat"
    fusion_dim: int = 64
    # the defaults of vqa_cnn_lstm (mmzoo/models/vqa.py): what relates text to image needs a
    # wider head than a single 64-unit layer
    filters: tuple[int, ...] = (16, 32, 64)
    hidden_units: tuple[int, ...] = (256, 256)


@register("text_image_concat", task="classification", inputs=("text", "image"),
          config=TextImageConfig, test_config={**TINY_TEXT, **TINY_IMAGE, **TINY_HEAD,
                                               "fusion_dim": 8})
def text_image_concat(cfg):
    """Embedding+LSTM text and Conv2D/MaxPool image branches, fused (concat), softmax head."""
    text, ids, vocab_size = text_input(cfg)
    image = image_input(cfg)
    x = fuse({"text": encode_text(cfg, ids, vocab_size), "image": encode_image(cfg, image)},
             cfg.fusion, dim=cfg.fusion_dim)
    scores = head(cfg, x)
    return compile_classifier(keras.Model({"text": text, "image": image}, scores,
                                          name="text_image_concat"), cfg)


@dataclasses.dataclass(frozen=True)
class TrimodalConfig(TextConfig, ImageConfig, AudioConfig, HeadConfig):
    audio_encoder: Literal["cnn", "lstm"] = "cnn"
    fusion: FusionMethod = "gated"
    fusion_dim: int = 64


@register("trimodal_classifier", task="classification", inputs=("text", "image", "audio"),
          config=TrimodalConfig, test_config={**TINY_TEXT, **TINY_IMAGE, **TINY_AUDIO,
                                              **TINY_HEAD, "fusion_dim": 8})
def trimodal_classifier(cfg):
    """Text (LSTM), image (CNN) and audio (MFCC+CNN) branches, fused (gated), softmax head."""
    text, ids, vocab_size = text_input(cfg)
    image, audio = image_input(cfg), audio_input(cfg)
    features = {"text": encode_text(cfg, ids, vocab_size), "image": encode_image(cfg, image),
                "audio": encode_audio(cfg, audio, kind=cfg.audio_encoder)}
    x = fuse(features, cfg.fusion, dim=cfg.fusion_dim)
    scores = head(cfg, x)
    inputs = {"text": text, "image": image, "audio": audio}
    return compile_classifier(keras.Model(inputs, scores, name="trimodal_classifier"), cfg)


@dataclasses.dataclass(frozen=True)
class LateFusionConfig(TextConfig, ImageConfig, HeadConfig):
    filters: tuple[int, ...] = (16, 32, 64)  # as text_image_concat's


@register("late_fusion_classifier", task="classification", inputs=("text", "image"),
          config=LateFusionConfig, test_config={**TINY_TEXT, **TINY_IMAGE, **TINY_HEAD})
def late_fusion_classifier(cfg):
    """Decision-level fusion: a softmax per modality, combined by a learned weighted average."""
    text, ids, vocab_size = text_input(cfg)
    image = image_input(cfg)
    per_modality = []
    for name, features in (("text", encode_text(cfg, ids, vocab_size)),
                           ("image", encode_image(cfg, image))):
        x = features
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name=f"{name}_head_dropout")(x)
        per_modality.append(keras.layers.Dense(len(cfg.labels), activation="softmax",
                                               dtype="float32", name=f"{name}_softmax")(x))
    scores = LabelNames(cfg.labels, name="scores")(late_fusion(per_modality))
    return compile_classifier(keras.Model({"text": text, "image": image}, scores,
                                          name="late_fusion_classifier"), cfg)


@dataclasses.dataclass(frozen=True)
class ImageClassifierConfig(ImageConfig, HeadConfig):
    # the class names are adapted on the training data (`mmzoo.data.adapt`); these are the
    # shapes of easy-VQA's images (`images:DIR` of them arranged by shape)
    labels: tuple[str, ...] = SHAPES


@register("image_classifier", task="classification", inputs=("image",),
          config=ImageClassifierConfig, test_config={**TINY_IMAGE, **TINY_HEAD})
def image_classifier(cfg):
    """An image encoder (Conv2D/MaxPool, ResNet or a pretrained backbone), softmax head."""
    image = image_input(cfg)
    scores = head(cfg, encode_image(cfg, image))
    return compile_classifier(keras.Model({"image": image}, scores, name="image_classifier"),
                              cfg)


@dataclasses.dataclass(frozen=True)
class AudioClassifierConfig(AudioConfig, HeadConfig):
    labels: tuple[str, ...] = DIGITS
    dropout: float = 0.1


@register("audio_mfcc_cnn", task="classification", inputs=("audio",),
          config=AudioClassifierConfig, test_config={**TINY_AUDIO, **TINY_HEAD})
def audio_mfcc_cnn(cfg):
    """Raw waveform -> MFCC (in the graph) -> Conv1D/MaxPool stack -> softmax."""
    return _audio_classifier(cfg, "cnn", "audio_mfcc_cnn")


@register("audio_mfcc_lstm", task="classification", inputs=("audio",),
          config=AudioClassifierConfig, test_config={**TINY_AUDIO, **TINY_HEAD})
def audio_mfcc_lstm(cfg):
    """Raw waveform -> MFCC (in the graph) -> LSTM over the frames -> softmax."""
    return _audio_classifier(cfg, "lstm", "audio_mfcc_lstm")


@dataclasses.dataclass(frozen=True)
class SpellingClassifierConfig(HeadConfig):
    """A head on SpellingCNN's pretrained 640-wide embedding (`mmzoo.blocks.spelling`): 1 s of
    16 kHz audio (a longer clip cut to its loudest second, a shorter one padded)."""

    labels: tuple[str, ...] = DIGITS
    # the SpellingCNN files' folder, or "spelling_cnn": the published files (fetched once)
    audio_weights: Optional[str] = "spelling_cnn"
    audio_trainable: bool = False   # frozen: its embeddings are computed once and cached
    hidden_units: tuple[int, ...] = (128,)
    dropout: float = 0.2


@register("audio_spelling_cnn", task="classification", inputs=("audio",),
          config=SpellingClassifierConfig,
          test_config={**TINY_HEAD, "audio_weights": None})
def audio_spelling_cnn(cfg):
    """SpellingCNN (pretrained on many voices, frozen) -> its embedding -> softmax."""
    audio = keras.Input((spelling.CLIP_SAMPLES,), name="audio")
    x = spelling.spelling_backbone(cfg.audio_weights, cfg.audio_trainable)(audio)
    return compile_classifier(keras.Model({"audio": audio}, head(cfg, x),
                                          name="audio_spelling_cnn"), cfg)


def _audio_classifier(cfg, kind, name):
    audio = audio_input(cfg)
    x = encode_audio(cfg, audio, kind=kind)
    scores = head(cfg, x)
    return compile_classifier(keras.Model({"audio": audio}, scores, name=name), cfg)


@dataclasses.dataclass(frozen=True)
class TextClassifierConfig(TextConfig, HeadConfig):
    # documents, not questions: AG News title + description is 40 words on average
    sequence_length: int = 64


def _text_classifier(cfg, kind, name):
    text, ids, vocab_size = text_input(cfg)
    x = encode_text(cfg, ids, vocab_size, kind=kind)
    scores = head(cfg, x)
    return compile_classifier(keras.Model({"text": text}, scores, name=name), cfg)


TINY_TEXT_CLASSIFIER = {**TINY_TEXT, **TINY_HEAD}


@register("text_word_vector_mlp", task="classification", inputs=("text",),
          config=TextClassifierConfig, test_config=TINY_TEXT_CLASSIFIER,
          limits=(
                  "On AG News it misses its 0.88 target (86.6%).",))
def text_word_vector_mlp(cfg):
    """Averaged word vectors and an MLP (fastText-style), softmax head."""
    return _text_classifier(cfg, "word_vector_mlp", "text_word_vector_mlp")


@register("text_lstm", task="classification", inputs=("text",), config=TextClassifierConfig,
          test_config=TINY_TEXT_CLASSIFIER)
def text_lstm(cfg):
    """Embedding + LSTM (bidirectional with `bidirectional=True`), softmax head."""
    return _text_classifier(cfg, "lstm", "text_lstm")


@dataclasses.dataclass(frozen=True)
class FastTextConfig(TextClassifierConfig):
    # fastText's (Joulin et al. 2016, "Bag of tricks"): the words and pairs of neighbouring
    # words, their vectors averaged, a linear softmax. 128 ids hold a 64-word text's words and
    # its word pairs. Measured on AG News against a TF-IDF + linear SVM (README, Quality).
    ngrams: int = 2
    sequence_length: int = 128
    text_units: int = 0  # no hidden layer: the averaged vectors go to the softmax
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.0


@register("text_fasttext", task="classification", inputs=("text",), config=FastTextConfig,
          test_config=TINY_TEXT_CLASSIFIER)
def text_fasttext(cfg):
    """fastText: word and word-pair vectors averaged, a linear softmax."""
    text, ids, vocab_size = text_input(cfg)
    x = encode_text(cfg, ids, vocab_size, kind="word_vector_mlp")
    scores = head(cfg, x)
    return compile_classifier(keras.Model({"text": text}, scores, name="text_fasttext"), cfg)


@dataclasses.dataclass(frozen=True)
class TransformerClassifierConfig(TextClassifierConfig):
    num_heads: int = 2
    num_layers: int = 1


@register("text_transformer", task="classification", inputs=("text",),
          config=TransformerClassifierConfig, test_config=TINY_TEXT_CLASSIFIER)
def text_transformer(cfg):
    """BERT-style Transformer encoder (keras_hub layers), mean-pooled, softmax head."""
    return _text_classifier(cfg, "transformer", "text_transformer")
