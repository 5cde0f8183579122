"""Config fields and graph helpers shared by the model builders."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Union

import keras

from mmzoo.blocks.audio import audio_encoder
from mmzoo.blocks.heads import classifier_head
from mmzoo.blocks.image import image_encoder
from mmzoo.blocks.text import text_encoder
from mmzoo.layers.vocab import Vocabulary

# The defaults a model is built with before it meets data (`mmzoo.data.adapt` replaces them with
# the training data's): those of the bundled easy-VQA data, so that `mmzoo.build(NAME)` fits
# it at once (tests check them against `mmzoo.data.easy_vqa`'s), and FSDD's digits.
DIGITS = tuple(str(d) for d in range(10))
SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
ANSWERS = ("circle", "green", "red", "gray", "yes", "teal", "black", "rectangle", "yellow",
           "triangle", "brown", "blue", "no")
QUESTION_VOCABULARY = (
    "the", "shape", "is", "what", "image", "a", "there", "color", "not", "does", "contain",
    "present", "in", "of", "no", "rectangle", "circle", "triangle", "brown", "yellow", "gray",
    "teal", "red", "blue", "green", "black")
CAPTION_WORDS = ("there", "is", "a") + COLORS + SHAPES

# The tiny variants the generic tests build (`register(..., test_config=...)`).
TINY_TEXT = dict(sequence_length=6, embed_dim=8, text_units=8)
TINY_IMAGE = dict(image_size=16, filters=(4, 8))
TINY_AUDIO = dict(sample_rate=4000, clip_seconds=0.25, n_fft=128, hop_length=64, n_mels=20,
                  audio_filters=(8, 8), audio_units=8)
TINY_HEAD = dict(hidden_units=(8,), labels=("a", "b", "c"))


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Text branch: `vocabulary` is adapted on the training split (`mmzoo.data.adapt`)."""

    vocabulary: tuple[str, ...] = QUESTION_VOCABULARY
    sequence_length: int = 12
    embed_dim: int = 64
    text_units: int = 64
    bidirectional: bool = False


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Image branch: a Conv2D/MaxPool stack (`cnn`) or a pretrained backbone.

    `image_encoder` is `cnn`, `resnet` (ResNet V2 of `resnet_depth`) or a `keras.applications`
    backbone of `mmzoo.blocks.BACKBONES` (`mobilenet`, `mobilenet_v2`, `mobilenet_v3_small`,
    `mobilenet_v3_large`, `efficientnet_b0`..`b7`, `efficientnet_v2_b0`..`b3`, `resnet50_v2`,
    ...); `image_weights` None, `"imagenet"` or a local file; `image_alpha` the MobileNets'
    width; `image_trainable` None (frozen with weights), True, False or the number of last
    blocks to fine-tune. `image_pooling="auto"`: `max` for `cnn`, `avg` for backbones.
    """

    image_size: int = 64
    image_encoder: str = "cnn"
    filters: tuple[int, ...] = (32, 64, 128)
    image_pooling: Literal["auto", "max", "avg", "flatten"] = "auto"
    image_norm: Optional[Literal["batch", "group"]] = None
    resnet_depth: int = 50
    image_weights: Optional[str] = None
    image_alpha: float = 1.0
    image_trainable: Optional[Union[bool, int]] = None


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Audio branch: a raw waveform of `clip_seconds` at `sample_rate`, MFCCs in the graph."""

    sample_rate: int = 8000
    clip_seconds: float = 1.0
    n_mfcc: int = 13
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    audio_filters: tuple[int, ...] = (64, 128, 128)
    audio_units: int = 64


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """Softmax head and training defaults."""

    labels: tuple[str, ...] = ANSWERS
    hidden_units: tuple[int, ...] = (64,)
    dropout: float = 0.2
    l1: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3


def text_input(cfg, name="text"):
    """`(input, ids)`: an int32 token-id input named `name` and its ids through the Vocabulary."""
    inp = keras.Input(shape=(cfg.sequence_length,), dtype="int32", name=name)
    vocab = Vocabulary(cfg.vocabulary, ngrams=getattr(cfg, "ngrams", 1),
                       name=f"{name}_vocabulary")
    return inp, vocab(inp), vocab.size


def image_input(cfg):
    """A float32 image input `[size, size, 3]` with values in [0, 255], named `image`."""
    return keras.Input(shape=(cfg.image_size, cfg.image_size, 3), name="image")


def audio_input(cfg):
    """A float32 waveform input `[clip_seconds * sample_rate]`, named `audio`."""
    return keras.Input(shape=(int(round(cfg.clip_seconds * cfg.sample_rate)),), name="audio")


def encode_text(cfg, ids, vocab_size, kind="lstm", prefix="text"):
    """The text branch of `cfg` over `ids`."""
    return text_encoder(kind, ids, vocab_size=vocab_size, sequence_length=cfg.sequence_length,
                        embed_dim=cfg.embed_dim, units=cfg.text_units,
                        bidirectional=cfg.bidirectional, dropout=getattr(cfg, "dropout", 0.0),
                        num_heads=getattr(cfg, "num_heads", 2),
                        num_layers=getattr(cfg, "num_layers", 1), prefix=prefix)


def encode_image(cfg, image, prefix="image"):
    """The image branch of `cfg` over `image`."""
    return image_encoder(cfg.image_encoder, image, filters=cfg.filters, pooling=cfg.image_pooling,
                         norm=cfg.image_norm, resnet_depth=cfg.resnet_depth,
                         weights=cfg.image_weights, alpha=cfg.image_alpha,
                         trainable=cfg.image_trainable, prefix=prefix)


def encode_audio(cfg, waveform, kind="cnn", prefix="audio"):
    """The audio branch of `cfg` over `waveform`: `kind` is `cnn` or `lstm`."""
    return audio_encoder(kind, waveform, sample_rate=cfg.sample_rate,
                         n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                         n_mels=cfg.n_mels, filters=cfg.audio_filters, units=cfg.audio_units,
                         prefix=prefix)


def head(cfg, x):
    """The softmax head of `cfg` (`HeadConfig` fields) over the features `x`: the class scores."""
    return classifier_head(x, labels=cfg.labels, hidden_units=cfg.hidden_units,
                           dropout=cfg.dropout, l1=cfg.l1, l2=cfg.l2)


def compile_classifier(model, cfg):
    """Compile with Adam, sparse categorical cross-entropy and accuracy; returns `model`."""
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
