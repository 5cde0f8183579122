"""Encoders from KerasHub presets: `image_encoder="keras_hub:PRESET"` and
`text_encoder="keras_hub:PRESET"`.

A preset is a KerasHub handle (`kaggle://...`, `hf://...` or a built-in name such as
`resnet_50_imagenet`, downloaded by KerasHub on a machine that can) or a local preset directory
(what `save_to_preset` writes). The preset's own `ImageConverter` (resizing, scaling and
normalisation for that backbone) sits in the graph before its `Backbone`, so the model still
takes pixels in [0, 255] and an exported one raw image bytes.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from mmzoo.blocks.pooling import pool
from mmzoo.errors import InvalidValue, MissingFile
from mmzoo.layers.pooling import MaskedAverage
from mmzoo.layers.vocab import HubTokenizer
from mmzoo.layers.wrapped import Wrapped


def _local(preset):
    return preset.startswith((".", "/", "~")) or os.sep in preset and "://" not in preset


def hub_image_encoder(image, preset, *, trainable=None, pooling="avg", prefix="image"):
    """A KerasHub preset's image converter and backbone as one sub-model `{prefix}_backbone`.

    Args:
        image: Keras tensor. `[batch, height, width, 3]`, values in [0, 255].
        preset: str. A KerasHub preset handle or a local preset directory.
        trainable: bool or None. False or None freezes the backbone (its features are then
            cached in training, `mmzoo.features`); True fine-tunes all of it.
        pooling: str. `avg`, `max` or `flatten` over the backbone's feature map (or its tokens,
            for a Transformer backbone: `avg` and `max` over the sequence).
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.hub.hub_image_encoder(image, "resnet_18_imagenet")
    ```
    """
    import keras_hub

    preset = _checked(preset)
    if trainable is not None and not isinstance(trainable, bool):
        raise InvalidValue(f"image_trainable={trainable!r}: a KerasHub backbone is frozen "
                           "(None/False) or fine-tuned whole (True)")
    backbone = _from_preset(keras_hub.models.Backbone, preset, "backbone")
    converter = _from_preset(
        keras_hub.layers.ImageConverter, preset,
        f"image converter (mmzoo needs it to preprocess images for {type(backbone).__name__}; "
        "save one with ImageConverter.save_to_preset)")

    backbone = Wrapped(backbone, trainable=bool(trainable), name=f"{prefix}_hub_backbone")
    pixels = keras.Input(shape=tuple(image.shape[1:]), name=f"{prefix}_pixels")
    x = backbone(converter(pixels))
    if len(x.shape) == 3:      # tokens [batch, sequence, dim]: ViT-style backbones
        if pooling == "avg":
            x = layers.GlobalAveragePooling1D(name=f"{prefix}_avgpool")(x)
        elif pooling == "max":
            x = layers.GlobalMaxPooling1D(name=f"{prefix}_maxpool")(x)
        else:
            x = layers.Flatten(name=f"{prefix}_flatten")(x)
    elif len(x.shape) == 4:
        x = pool(x, pooling, prefix)
    else:
        raise InvalidValue(f"KerasHub preset {preset!r}: {type(backbone).__name__} gives "
                           f"outputs of shape {x.shape}; an image encoder needs a feature map "
                           "or a token sequence")
    encoder = keras.Model(pixels, x, name=f"{prefix}_backbone")
    encoder.trainable = bool(trainable)
    return encoder(image)


def hub_text_encoder(ids, preset, *, pad_id=0, trainable=False, prefix="text"):
    """A KerasHub preset's text backbone over token ids from its own tokenizer.

    `ids` come from the preset's tokenizer (`mmzoo.layers.HubTokenizer`, which the caller puts
    on the text input); the padding mask is `ids != pad_id` (the tokenizer layer's `pad_id`),
    segment ids (BERT) are zeros. Returns
    the backbone's `pooled_output` where it has one, else the average of `sequence_output` over
    the tokens that are not padding.

    Args:
        ids: Keras tensor. int32 `[batch, length]` from the preset's tokenizer.
        preset: str. A KerasHub preset handle or a local preset directory.
        pad_id: int. The tokenizer's padding id (`mmzoo.layers.HubTokenizer.pad_id`).
        trainable: bool. Fine-tune the backbone (False: frozen).
        prefix: str. Prefix of the layer names.
    """
    import keras_hub

    backbone = _from_preset(keras_hub.models.Backbone, _checked(preset), "text backbone")
    mask = keras.ops.cast(keras.ops.not_equal(ids, pad_id), "int32")
    feeds = {"token_ids": ids, "padding_mask": mask}
    names = set(backbone.input) if isinstance(backbone.input, dict) else {"token_ids"}
    if "segment_ids" in names:
        feeds["segment_ids"] = keras.ops.zeros_like(ids)
    unknown = names - set(feeds)
    if unknown:
        raise InvalidValue(f"KerasHub preset {preset!r}: {type(backbone).__name__} takes "
                           f"{sorted(names)}; mmzoo feeds token_ids, padding_mask and "
                           f"segment_ids, not {sorted(unknown)}")
    out = Wrapped(backbone, trainable=bool(trainable), name=f"{prefix}_hub_backbone")(
        {k: feeds[k] for k in names})
    if isinstance(out, dict) and "pooled_output" in out:
        return out["pooled_output"]
    sequence = out["sequence_output"] if isinstance(out, dict) else out
    return MaskedAverage(name=f"{prefix}_average")(sequence, mask=keras.ops.cast(mask, "bool"))


def hub_tokenizer_layer(preset, name):
    """The preset's tokenizer in a `mmzoo.layers.HubTokenizer` named `name`."""
    import keras_hub

    preset = _checked(preset)
    return HubTokenizer(_from_preset(keras_hub.tokenizers.Tokenizer, preset, "tokenizer"),
                        name=name)


def _from_preset(cls, preset, what):
    """`cls.from_preset(preset)`; a preset without one fails naming the preset and `what`."""
    try:
        return cls.from_preset(preset)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise InvalidValue(f"cannot load a KerasHub {what} from preset {preset!r}: {e}") from e


def _checked(preset):
    if _local(preset):
        path = os.path.expanduser(preset)
        if not os.path.isdir(path):
            raise MissingFile(f"KerasHub preset directory {path!r} does not exist; give a "
                              "directory written by save_to_preset, or a KerasHub handle")
        return path
    return preset


__all__ = ["hub_image_encoder", "hub_text_encoder", "hub_tokenizer_layer"]
