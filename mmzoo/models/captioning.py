"""Image captioning: a CNN encoder and an LSTM decoder, with greedy and beam-search decoding."""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import keras_hub
import numpy as np
from keras import ops

from mmzoo import contract
from mmzoo.blocks import caption_decoder
from mmzoo.contract import END, START
from mmzoo.data.easy_vqa import CAPTION_VOCABULARY
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import Vocabulary
from mmzoo.models.classification import TINY_IMAGE
from mmzoo.models.common import ImageConfig, encode_image, image_input
from mmzoo.registry import register


@dataclasses.dataclass(frozen=True)
class CaptionConfig(ImageConfig):
    vocabulary: tuple[str, ...] = CAPTION_VOCABULARY
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


# The beam search the bench reports and the SavedModel serves (`serving_default`).
NUM_BEAMS, LENGTH_PENALTY = 3, 0.7


def generate(model, images, method="greedy", *, num_beams=NUM_BEAMS,
             length_penalty=LENGTH_PENALTY):
    """Captions for a batch of images, decoded with a `keras_hub.samplers` sampler.

    Beam search keeps `num_beams` captions per image; a caption that has ended stays as it is
    (every later step adds nothing to its log-probability), and the finished beams are ranked
    by their log-probability divided by GNMT's length penalty `((5 + length) / 6) **
    length_penalty` (Wu et al. 2016), so short captions are not favoured just for being short.

    Args:
        model: keras.Model. A `caption_lstm` model (or any captioner of `mmzoo.contract`).
        images: array `[batch, height, width, 3]`, values in [0, 255].
        method: str. `greedy` or `beam`.
        num_beams: int. Beam width for `beam`.
        length_penalty: float. The exponent of the length penalty (0: rank by log-probability).

    Returns:
        A list of str, one caption per image.

    Examples:
    ```python
    mmzoo.models.captioning.generate(model, images, "beam")   # ['there is a blue circle', ...]
    ```
    """
    parts = contract.captioner(model)
    features = parts.encoder(ops.convert_to_tensor(np.asarray(images, dtype="float32")),
                             training=False)
    ids = caption_ids(parts, features, method, num_beams=num_beams,
                      length_penalty=length_penalty)
    return decode(model, ops.convert_to_numpy(ids))


def caption_ids(parts, features, method="greedy", *, num_beams=NUM_BEAMS,
                length_penalty=LENGTH_PENALTY):
    """Caption token ids `[batch, max_length - 1]` (without `[start]`; `[end]` and padding
    after the words) of image `features`, in `keras.ops` only, so the same decoding runs eagerly
    (`generate`) and inside an exported SavedModel's graph (`mmzoo.export`).

    Args:
        parts: `mmzoo.contract.Captioner`. The captioner's encoder, decoder and ids.
        features: tensor `[batch, ...]`. `parts.encoder`'s output for the images.
        method, num_beams, length_penalty: as `generate`.
    """
    if method == "greedy":
        sampler = keras_hub.samplers.GreedySampler()
    elif method == "beam":
        sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams, return_all_beams=True)
    else:
        raise InvalidValue(f"unknown decoding method {method!r}; use 'greedy' or 'beam'")
    batch = ops.shape(features)[0]
    prompt = ops.pad(ops.full((batch, 1), parts.start_id, dtype="int32"),
                     [[0, 0], [0, parts.max_length - 1]])
    # An ended caption's next token is padding with probability 1.
    ended_logits = ops.where(ops.equal(ops.arange(parts.decoder.output.shape[-1]), 0), 0.0, -1e9)

    def next_token(prompt, cache, index):
        probs = parts.decoder({"features": cache, "ids": prompt}, training=False)
        logits = ops.log(ops.take(probs, index - 1, axis=1) + 1e-9)
        ended = ops.any(ops.equal(prompt[:, 1:], parts.end_id), axis=1, keepdims=True)
        return ops.where(ended, ended_logits[None, :], logits), None, cache

    out = sampler(next_token, prompt, cache=features, index=1, mask=ops.not_equal(prompt, 0),
                  stop_token_ids=(parts.end_id,))
    if method == "greedy":
        return ops.cast(out, "int32")[:, 1:]
    beams, log_probs = out
    ids = ops.cast(beams, "int32")[:, :, 1:]                       # [batch, beams, length]
    stop = ops.logical_or(ops.equal(ids, parts.end_id), ops.equal(ids, 0))
    first_stop = ops.argmax(ops.cast(stop, "int32"), axis=-1)
    lengths = ops.where(ops.any(stop, axis=-1), first_stop, ops.shape(ids)[-1]) + 1  # + [end]
    penalty = ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, length_penalty)
    best = ops.argmax(ops.cast(log_probs, "float32") / penalty, axis=1)
    return ops.take_along_axis(ids, ops.cast(best, "int32")[:, None, None], axis=1)[:, 0]


def decode(model, ids):
    """Caption strings from token-id rows (without the leading `[start]`): the words up to the
    first `[end]` or padding (`mmzoo.data.Preprocessor.caption_strings`).

    Args:
        model: keras.Model. The captioning model whose vocabulary the ids index.
        ids: int array `[batch, length]`.

    Examples:
    ```python
    decode(model, targets)   # ['there is a red circle', ...]
    ```
    """
    strings = Preprocessor(model).caption_strings(np.asarray(ids, dtype="int32"))
    return [s.decode() for s in strings.numpy()]
