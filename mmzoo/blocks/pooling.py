"""Pooling a feature map or a token sequence into one vector: the end of every image encoder."""

from __future__ import annotations

from keras import layers

from mmzoo.errors import InvalidValue


def pool(x, pooling, prefix):
    """`x` (`[batch, height, width, channels]`) pooled as `pooling` says: `avg`, `max` or
    `flatten`, the layer named `{prefix}_avgpool` / `_maxpool` / `_flatten`."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=f"{prefix}_avgpool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=f"{prefix}_maxpool")(x)
    if pooling == "flatten":
        return layers.Flatten(name=f"{prefix}_flatten")(x)
    raise InvalidValue(f"unknown pooling {pooling!r}; use 'avg', 'max' or 'flatten'")
