"""Image encoders: images `[batch, height, width, 3]` with values in [0, 255] in, features out."""

from __future__ import annotations

import os

import keras
from keras import layers

from mmzoo.errors import InvalidValue, MissingFile

# Moving statistics that settle within a few hundred steps (Keras' 0.99 needs thousands).
BN_MOMENTUM = 0.9


def normalization(kind, filters, name):
    """The normalisation layer after a convolution: `batch` or `group`.

    The zoo's small conv stacks default to none. Batch normalisation's moving statistics lag
    behind fast-changing weights in short CPU trainings (measured on easy-VQA captions: 0.02
    training-mode loss against 0.12 inference-mode loss on the same batch after 3 epochs);
    group normalisation with few channels per group removes each example's channel means,
    which global pooling needs (colour intensity, a tone's pitch), and halves the speed.
    """
    if kind == "group":
        return layers.GroupNormalization(groups=min(8, filters), name=name)
    if kind == "batch":
        return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)
    raise InvalidValue(f"unknown normalization {kind!r}; use 'group', 'batch' or None")


RESNETS = {50: "ResNet50V2", 101: "ResNet101V2", 152: "ResNet152V2"}


def cnn_encoder(image, *, filters=(32, 64, 128), pooling="max", norm=None, prefix="image"):
    """A Conv2D/MaxPool stack: per stage a 3x3 ReLU convolution and a 2x2 max-pool.

    Args:
        image: Keras tensor. `[batch, height, width, 3]`, values in [0, 255] (rescaled here).
        filters: tuple of int. Filters of each stage.
        pooling: str. `max` (global max pooling: finds a feature anywhere in the image), `avg`
            or `flatten`.
        norm: str or None. Normalisation after each convolution: None, `batch` or `group`.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    image = keras.Input(shape=(64, 64, 3))
    x = mmzoo.blocks.cnn_encoder(image, filters=(32, 64))   # (None, 64)
    ```
    """
    x = layers.Rescaling(1.0 / 255, name=f"{prefix}_rescale")(image)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, 3, padding="same", use_bias=norm is None, name=f"{prefix}_conv{i}")(x)
        if norm:
            x = normalization(norm, f, f"{prefix}_norm{i}")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool{i}")(x)
    return _pool(x, pooling, prefix)


def resnet_encoder(image, *, depth=50, weights=None, pooling="avg", trainable=True,
                   prefix="image"):
    """A ResNet V2 from `keras.applications`, randomly initialised or from a local weights file.

    Args:
        image: Keras tensor. `[batch, height, width, 3]`, values in [0, 255]; at least 32x32.
        depth: int. 50, 101 or 152.
        weights: str or None. None for random initialisation, or the path of a local
            `include_top=False` weights file (`.h5` / `.weights.h5`). mmzoo never downloads.
        pooling: str. `avg`, `max` or `flatten`.
        trainable: bool. False freezes the ResNet (feature extraction).
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.resnet_encoder(image, weights="~/weights/resnet50v2_notop.h5")
    ```
    """
    if depth not in RESNETS:
        raise InvalidValue(f"resnet_encoder: depth must be one of {sorted(RESNETS)}, got {depth!r}")
    if weights is not None:
        weights = os.path.expanduser(str(weights))
        if not os.path.isfile(weights):
            raise MissingFile(
                f"resnet_encoder: weights file {weights!r} does not exist; pass weights=None for "
                "random initialisation or the path of a local include_top=False weights file "
                "(mmzoo never downloads weights)")
    builder = getattr(keras.applications, RESNETS[depth])
    backbone = builder(include_top=False, weights=weights, input_shape=tuple(image.shape[1:]),
                       pooling=None, name=f"{prefix}_resnet{depth}")
    backbone.trainable = trainable
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{prefix}_rescale")(image)
    x = backbone(x)
    return _pool(x, pooling, prefix)


def image_encoder(kind, image, *, filters=(32, 64, 128), pooling="max", norm=None,
                  resnet_depth=50, resnet_weights=None, prefix="image"):
    """Dispatch on `kind` (`cnn` or `resnet`)."""
    if kind == "cnn":
        return cnn_encoder(image, filters=filters, pooling=pooling, norm=norm, prefix=prefix)
    if kind == "resnet":
        return resnet_encoder(image, depth=resnet_depth, weights=resnet_weights, pooling=pooling,
                              prefix=prefix)
    raise InvalidValue(f"unknown image encoder {kind!r}; use 'cnn' or 'resnet'")


def _pool(x, pooling, prefix):
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=f"{prefix}_avgpool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=f"{prefix}_maxpool")(x)
    if pooling == "flatten":
        return layers.Flatten(name=f"{prefix}_flatten")(x)
    raise InvalidValue(f"unknown pooling {pooling!r}; use 'avg', 'max' or 'flatten'")
