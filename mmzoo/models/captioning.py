"""Image captioning: a CNN encoder and an LSTM decoder (decoded by `mmzoo.tasks.captioning`:
greedy and beam search)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras

from mmzoo.blocks import caption_decoder
from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import END, START, Vocabulary
from mmzoo.models.common import CAPTION_WORDS, TINY_IMAGE, ImageConfig, encode_image, image_input
from mmzoo.registry import register


@dataclasses.dataclass(frozen=True)
class CaptionConfig(ImageConfig):
    vocabulary: tuple[str, ...] = (START, END) + CAPTION_WORDS
    max_length: int = 8
    embed_dim: int = 128
    units: int = 256
    dropout: float = 0.3
    image_every_step: bool = True
    learning_rate: float = 2e-3


@dataclasses.dataclass(frozen=True)
class MobileNetCaptionConfig(CaptionConfig):
    """`caption_lstm` on an ImageNet-pretrained MobileNet (frozen), for real photographs."""

    image_encoder: str = "mobilenet"
    image_size: int = 224
    image_weights: Optional[str] = "imagenet"


TINY_CAPTION = {**TINY_IMAGE, "max_length": 5, "embed_dim": 8, "units": 8}
# The pretrained variants' tiny test builds: a small random MobileNet, nothing downloaded.
TINY_MOBILENET = {"image_size": 32, "image_alpha": 0.25, "image_weights": None}


@register("caption_lstm", task="captioning", inputs=("image", "text"), config=CaptionConfig,
          test_config=TINY_CAPTION)
def caption_lstm(cfg):
    """CNN image encoder + LSTM decoder (Show and Tell), trained with teacher forcing."""
    return _captioner(cfg, "caption_lstm")


@register("caption_lstm_mobilenet", task="captioning", inputs=("image", "text"),
          config=MobileNetCaptionConfig, test_config={**TINY_CAPTION, **TINY_MOBILENET})
def caption_lstm_mobilenet(cfg):
    """ImageNet MobileNet (frozen; features cached in training) + LSTM decoder, for photos."""
    return _captioner(cfg, "caption_lstm_mobilenet")


def _captioner(cfg, name):
    if START not in cfg.vocabulary or END not in cfg.vocabulary:
        raise InvalidValue(f"caption_lstm: vocabulary must contain {START!r} and {END!r}")
    image_in = image_input(cfg)
    encoder = keras.Model(image_in, encode_image(cfg, image_in), name="image_encoder")

    vocab = Vocabulary(cfg.vocabulary, name="text_vocabulary")
    features_in = keras.Input(shape=encoder.output.shape[1:], name="features")
    ids_in = keras.Input(shape=(cfg.max_length,), dtype="int32", name="ids")
    probs = caption_decoder(features_in, ids_in, vocab_size=vocab.size, embed_dim=cfg.embed_dim,
                            units=cfg.units, dropout=cfg.dropout,
                            image_every_step=cfg.image_every_step)
    decoder = keras.Model({"features": features_in, "ids": ids_in}, probs, name="caption_decoder")

    image = image_input(cfg)
    text = keras.Input(shape=(cfg.max_length,), dtype="int32", name="text")
    out = decoder({"features": encoder(image), "ids": vocab(text)})
    model = keras.Model({"image": image, "text": text}, out, name=name)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
                  metrics=["accuracy"])
    return model
