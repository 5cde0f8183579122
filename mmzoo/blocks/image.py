"""Image encoders: images `[batch, height, width, 3]` with values in [0, 255] in, features out.

Two kinds: `cnn`, a small Conv2D/MaxPool stack trained from scratch, and pretrained backbones
from `keras.applications` (`BACKBONES`) or KerasHub presets (`mmzoo.blocks.hub`), each with its
own preprocessing inside the graph, so a model still takes raw pixels and an exported one raw
image bytes. A backbone is one sub-model named `{prefix}_backbone` (pixels -> pooled features):
frozen, it is what `mmzoo.train` runs once per image and caches (`mmzoo.features`).
"""

from __future__ import annotations

import os
import re

import keras
from keras import layers

from mmzoo.blocks.hub import hub_image_encoder
from mmzoo.blocks.pooling import pool
from mmzoo.errors import InvalidType, InvalidValue, MissingFile, did_you_mean

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


# name -> (keras.applications builder, preprocessing, takes `alpha`). Preprocessing "tf" scales
# [0, 255] to [-1, 1] (the backbone's `preprocess_input`); "builtin": the backbone's first layers
# rescale and normalise [0, 255] pixels themselves.
BACKBONES = {
    "mobilenet": ("MobileNet", "tf", True),
    "mobilenet_v2": ("MobileNetV2", "tf", True),
    "mobilenet_v3_small": ("MobileNetV3Small", "builtin", True),
    "mobilenet_v3_large": ("MobileNetV3Large", "builtin", True),
    **{f"efficientnet_b{i}": (f"EfficientNetB{i}", "builtin", False) for i in range(8)},
    **{f"efficientnet_v2_b{i}": (f"EfficientNetV2B{i}", "builtin", False) for i in range(4)},
    "resnet50_v2": ("ResNet50V2", "tf", False),
    "resnet101_v2": ("ResNet101V2", "tf", False),
    "resnet152_v2": ("ResNet152V2", "tf", False),
}
RESNETS = {50: "resnet50_v2", 101: "resnet101_v2", 152: "resnet152_v2"}
KERAS_HUB = "keras_hub:"
ENCODERS = ("cnn", "resnet", *BACKBONES, f"{KERAS_HUB}PRESET")

# The block a layer of a keras.applications backbone belongs to, from its name: MobileNet
# `conv_dw_3_bn`, MobileNetV2 `block_3_expand`, MobileNetV3 `expanded_conv_3_add`, EfficientNet
# `block3a_project_conv`, ResNet V2 `conv3_block2_out`. Layers after the last block (the top
# convolution, `post_bn`) belong to it; layers before the first (the stem) to none.
_BLOCK = re.compile(r"^(?:conv_(?:dw|pw)_(\d+)|block_?(\d+[a-z]?)|expanded_conv(?:_(\d+))?|"
                    r"conv(\d)_block(\d+))_")


def backbone_blocks(model):
    """The layers of a `keras.applications` backbone grouped in blocks, in order: a list of
    lists of layers (the stem, before the first block, is not in any)."""
    blocks, key = [], None
    for layer in model.layers:
        match = _BLOCK.match(layer.name)
        if match:
            k = match.groups()
            if k != key:
                blocks.append([])
                key = k
        if blocks:
            blocks[-1].append(layer)
    return blocks


def set_trainable(backbone, trainable, *, pretrained=True):
    """Freeze `backbone` (`False`), train all of it (`True`), or train only its last `n` blocks
    (an int `n`, counted by `backbone_blocks`; earlier layers and the stem stay frozen).

    A `pretrained` backbone keeps its batch normalisation frozen wherever it is tuned: a frozen
    `BatchNormalization` runs in inference mode in Keras 3, so its ImageNet statistics are
    not overwritten by a few small batches (Keras' fine-tuning guide)."""
    if isinstance(trainable, bool):
        backbone.trainable = trainable
        tuned = backbone.layers if trainable else []
    else:
        blocks = backbone_blocks(backbone)
        if not 0 <= trainable <= len(blocks):
            raise InvalidValue(f"image_trainable={trainable}: {backbone.name} has {len(blocks)} "
                               f"blocks; use 0..{len(blocks)}, True (all) or False (frozen)")
        backbone.trainable = True
        tuned = [layer for block in blocks[len(blocks) - trainable:] for layer in block]
    chosen = {id(layer) for layer in tuned
              if not (pretrained and isinstance(layer, layers.BatchNormalization))}
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen


def _check_weights(kind, weights):
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise InvalidType(f"image_weights must be None, 'imagenet' or a file path, got "
                          f"{weights!r}")
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise MissingFile(
            f"image weights file {path!r} for backbone {kind!r} does not exist; pass "
            "image_weights=None (random initialisation), 'imagenet' (downloaded by Keras on a "
            "machine that can reach the internet) or the path of an include_top=False weights "
            f"file of {kind}")
    return path


def _architecture(kind, alpha, shape, takes_alpha):
    width = f"image_alpha={alpha}, " if takes_alpha else ""
    return f"{kind!r} ({width}{shape[0]}x{shape[1]} pixels, without its classifier top)"


def _no_download(kind, alpha, shape, takes_alpha, error):
    """What to do when Keras cannot download a backbone's ImageNet weights (offline)."""
    found = re.search(r"on (https?://\S+?):", str(error))
    url = found.group(1) if found else "Keras' address"
    reason = str(error).split(" -- ")[-1].strip()
    return (f"cannot download the ImageNet weights of backbone "
            f"{_architecture(kind, alpha, shape, takes_alpha)} from {url} ({reason}); on a "
            f"machine without internet pass image_weights=PATH, that file "
            f"({url.rsplit('/', 1)[-1]}) copied from one that has it, or image_weights=None to "
            "start from random weights")


# The width a MobileNet weights file is for, from its name: Keras' `mobilenet_2_5_224_tf_...`
# (0.25), `..._tf_kernels_0.35_224_no_top`, or `mobilenet_v1_0.25_224_...`.
_FILE_ALPHA = re.compile(r"(?:^|_)(\d)_(\d{1,2})_\d{2,3}_tf|_(\d\.\d+)_\d{2,3}(?:_|\.)")


def _wrong_weights(kind, path, alpha, shape, takes_alpha, error):
    """A weights file that Keras cannot load into the backbone: which architecture it must be
    for, and what the file's name says it is for."""
    name = os.path.basename(str(path))
    hints = []
    if "no_top" not in name or "count mismatch" in str(error):
        hints.append("a file with the classifier top (include_top=True) does not fit: give "
                     "the `_no_top` one")
    found = _FILE_ALPHA.search(name)
    if takes_alpha and found:
        whole, part, dotted = found.groups()
        file_alpha = float(dotted) if dotted else float(f"{whole}.{part}")
        if file_alpha != alpha:
            hints.append(f"its name says width {file_alpha}: pass image_alpha={file_alpha}, or "
                         f"the file of width {alpha}")
    if not hints:
        hints.append("give the include_top=False (`_no_top`) weights file of this "
                     "architecture, or image_weights='imagenet' on a machine with internet")
    keras_said = str(error).strip().splitlines()[0]
    return (f"image weights file {str(path)!r} does not fit backbone "
            f"{_architecture(kind, alpha, shape, takes_alpha)} ({keras_said}); "
            + "; ".join(hints))


def pretrained_encoder(image, kind, *, weights=None, alpha=1.0, trainable=None, pooling="avg",
                       prefix="image"):
    """A `keras.applications` backbone (`BACKBONES`) with its preprocessing, as one sub-model.

    The sub-model `{prefix}_backbone` takes pixels in [0, 255], applies the backbone's own
    preprocessing (`preprocess_input` of MobileNet, MobileNetV2 and ResNet V2; MobileNetV3 and
    EfficientNet carry theirs), runs the backbone without its top and pools. With weights, its
    batch normalisation stays frozen (inference mode) even where it is fine-tuned
    (`set_trainable`).

    Args:
        image: Keras tensor. `[batch, height, width, 3]`, values in [0, 255].
        kind: str. A key of `BACKBONES`, e.g. `mobilenet`, `efficientnet_b0`, `resnet50_v2`.
        weights: str or None. None (random), `"imagenet"` (downloaded through Keras' cache on a
            machine that can) or the path of a local `include_top=False` weights file.
        alpha: float. Width multiplier of the MobileNets (e.g. 0.25, 0.5, 0.75, 1.0).
        trainable: bool, int or None. False freezes the backbone, True trains all of it, an int
            `n` trains its last `n` blocks (fine-tuning); None: frozen with weights, trained
            without.
        pooling: str or None. `avg`, `max`, `flatten` or None (the spatial feature map).
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    image = keras.Input(shape=(224, 224, 3))
    x = mmzoo.blocks.pretrained_encoder(image, "mobilenet", alpha=0.25, weights="imagenet")
    ```
    """
    if kind not in BACKBONES:
        hint = did_you_mean(kind, BACKBONES)
        raise InvalidValue(f"unknown image backbone {kind!r}" + (f"; {hint}" if hint else "")
                           + f" Backbones: {sorted(BACKBONES)}")
    builder_name, preprocessing, takes_alpha = BACKBONES[kind]
    weights = _check_weights(kind, weights)
    if not takes_alpha and alpha != 1.0:
        raise InvalidValue(f"backbone {kind!r} has no width multiplier; leave image_alpha=1.0 "
                           f"(it applies to {[k for k, v in BACKBONES.items() if v[2]]})")
    options = {"alpha": alpha} if takes_alpha else {}
    shape = tuple(image.shape[1:])
    builder = getattr(keras.applications, builder_name)
    try:
        app = builder(include_top=False, weights=weights, input_shape=shape, pooling=None,
                      name=f"{prefix}_{kind}", **options)
    except ValueError as e:
        if weights not in (None, "imagenet"):
            raise InvalidValue(_wrong_weights(kind, weights, alpha, shape, takes_alpha, e)) \
                from e
        raise InvalidValue(f"cannot build backbone {kind!r} (alpha={alpha}, input {shape}) "
                           f"with weights={weights!r}: {e}") from e
    except Exception as e:
        if weights == "imagenet" and ("URL fetch failure" in str(e)
                                      or isinstance(e, OSError)):
            raise MissingFile(_no_download(kind, alpha, shape, takes_alpha, e)) from None
        raise
    if trainable is None:
        trainable = weights is None
    set_trainable(app, trainable, pretrained=weights is not None)

    pixels = keras.Input(shape=shape, name=f"{prefix}_pixels")
    x = pixels
    if preprocessing == "tf":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{prefix}_preprocess")(x)
    x = app(x)
    if pooling is not None:
        x = pool(x, pooling, prefix)
    backbone = keras.Model(pixels, x, name=f"{prefix}_backbone")
    backbone.trainable = bool(backbone.trainable_weights)
    return backbone(image)


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
    return pool(x, pooling, prefix)


def resnet_encoder(image, *, depth=50, weights=None, pooling="avg", trainable=None,
                   prefix="image"):
    """A ResNet V2 from `keras.applications` (`pretrained_encoder` with `resnet{depth}_v2`).

    Args:
        image: Keras tensor. `[batch, height, width, 3]`, values in [0, 255]; at least 32x32.
        depth: int. 50, 101 or 152.
        weights: str or None. None, `"imagenet"` or a local `include_top=False` weights file.
        pooling: str. `avg`, `max` or `flatten`.
        trainable: bool, int or None. As `pretrained_encoder`.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.resnet_encoder(image, weights="~/weights/resnet50v2_notop.h5")
    ```
    """
    if depth not in RESNETS:
        raise InvalidValue(f"resnet_encoder: depth must be one of {sorted(RESNETS)}, got {depth!r}")
    return pretrained_encoder(image, RESNETS[depth], weights=weights, pooling=pooling,
                              trainable=trainable, prefix=prefix)


def image_encoder(kind, image, *, filters=(32, 64, 128), pooling="auto", norm=None,
                  resnet_depth=50, weights=None, alpha=1.0, trainable=None, prefix="image"):
    """The image branch named by `kind`: `cnn`, `resnet` (ResNet V2 of `resnet_depth`), or a
    `keras.applications` backbone of `BACKBONES`.

    `pooling="auto"` is `max` for `cnn` and `avg` for the backbones (how they were trained)."""
    if pooling == "auto":
        pooling = "max" if kind == "cnn" else "avg"
    if kind == "cnn":
        if weights is not None:
            raise InvalidValue("image_encoder='cnn' is trained from scratch and takes no "
                               f"image_weights (got {weights!r}); pick a pretrained backbone, "
                               f"e.g. image_encoder='mobilenet'")
        return cnn_encoder(image, filters=filters, pooling=pooling, norm=norm, prefix=prefix)
    if kind == "resnet":
        kind = RESNETS.get(resnet_depth)
        if kind is None:
            raise InvalidValue(f"resnet_depth must be one of {sorted(RESNETS)}, got "
                               f"{resnet_depth!r}")
    if isinstance(kind, str) and kind.startswith(KERAS_HUB):
        if weights is not None:
            raise InvalidValue(f"image_encoder={kind!r} takes its weights from the preset; "
                               f"leave image_weights=None (got {weights!r})")
        return hub_image_encoder(image, kind[len(KERAS_HUB):], trainable=trainable,
                                 pooling=pooling, prefix=prefix)
    if kind in BACKBONES:
        return pretrained_encoder(image, kind, weights=weights, alpha=alpha, trainable=trainable,
                                  pooling=pooling, prefix=prefix)
    hint = did_you_mean(kind, ENCODERS[:-1])
    raise InvalidValue(f"unknown image encoder {kind!r}" + (f"; {hint}" if hint else "")
                       + f" Use one of {list(ENCODERS)}")
