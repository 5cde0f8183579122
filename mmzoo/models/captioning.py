"""Image captioning: a CNN encoder and an LSTM decoder, with greedy and beam-search decoding."""

from __future__ import annotations

import dataclasses

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
    embed_dim: int = 64
    units: int = 128
    dropout: float = 0.1
    learning_rate: float = 2e-3


@register("caption_lstm", task="captioning", inputs=("image", "text"), config=CaptionConfig,
          test_config={**TINY_IMAGE, "max_length": 5, "embed_dim": 8, "units": 8})
def caption_lstm(cfg):
    """CNN image encoder + LSTM decoder (Show and Tell), trained with teacher forcing."""
    if START not in cfg.vocabulary or END not in cfg.vocabulary:
        raise InvalidValue(f"caption_lstm: vocabulary must contain {START!r} and {END!r}")
    image_in = image_input(cfg)
    encoder = keras.Model(image_in, encode_image(cfg, image_in), name="image_encoder")

    vocab = Vocabulary(cfg.vocabulary, name="text_vocabulary")
    features_in = keras.Input(shape=encoder.output.shape[1:], name="features")
    ids_in = keras.Input(shape=(cfg.max_length,), dtype="int32", name="ids")
    probs = caption_decoder(features_in, ids_in, vocab_size=vocab.size, embed_dim=cfg.embed_dim,
                            units=cfg.units, dropout=cfg.dropout)
    decoder = keras.Model({"features": features_in, "ids": ids_in}, probs, name="caption_decoder")

    image = image_input(cfg)
    text = keras.Input(shape=(cfg.max_length,), dtype="int32", name="text")
    out = decoder({"features": encoder(image), "ids": vocab(text)})
    model = keras.Model({"image": image, "text": text}, out, name="caption_lstm")
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
                  metrics=["accuracy"])
    return model


def generate(model, images, method="greedy", *, num_beams=3):
    """Captions for a batch of images, decoded with a `keras_hub.samplers` sampler.

    Args:
        model: keras.Model. A `caption_lstm` model (or any captioner of `mmzoo.contract`).
        images: array `[batch, height, width, 3]`, values in [0, 255].
        method: str. `greedy` or `beam`.
        num_beams: int. Beam width for `beam`.

    Returns:
        A list of str, one caption per image.

    Examples:
    ```python
    mmzoo.models.captioning.generate(model, images, "beam")   # ['there is a blue circle', ...]
    ```
    """
    if method == "greedy":
        sampler = keras_hub.samplers.GreedySampler()
    elif method == "beam":
        sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams)
    else:
        raise InvalidValue(f"unknown decoding method {method!r}; use 'greedy' or 'beam'")
    parts = contract.captioner(model)
    features = parts.encoder(ops.convert_to_tensor(np.asarray(images, dtype="float32")),
                             training=False)
    batch = ops.shape(features)[0]
    prompt = ops.pad(ops.full((batch, 1), parts.start_id, dtype="int32"),
                     [[0, 0], [0, parts.max_length - 1]])

    def next_token(prompt, cache, index):
        probs = parts.decoder({"features": cache, "ids": prompt}, training=False)
        logits = ops.log(ops.take(probs, index - 1, axis=1) + 1e-9)
        return logits, None, cache

    out = sampler(next_token, prompt, cache=features, index=1, mask=ops.not_equal(prompt, 0),
                  stop_token_ids=(parts.end_id,))
    return decode(model, ops.convert_to_numpy(out)[:, 1:])


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
