"""Frozen-feature training: a model with a frozen pretrained image backbone, trained on features.

A frozen backbone gives the same features for an image every epoch, so running it every step
repeats work that is nearly all of a step's cost. `feature_model` is the rest of the model (the
same layers, sharing their weights) with the backbone's features as its `image` input;
`mmzoo.data.pipeline(..., features=True)` runs the backbone once per image and caches the
features, and `mmzoo.train` fits the feature model on them. The weights it trains are the
model's own, so the model saved and exported is still the whole graph from raw image to output.

Examples:
```python
model = mmzoo.build("caption_lstm", image_encoder="mobilenet", image_weights="imagenet")
head = mmzoo.models.features.feature_model(model)     # image input: [None, 1024] features
head.fit(mmzoo.data.pipeline(model, train, training=True, features=True), epochs=5)
mmzoo.export(model, "out/captioner")                   # raw image bytes in, as ever
```
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import walk_layers

BACKBONE = "image_backbone"


def frozen_backbone(model):
    """The model's image backbone sub-model (`image_backbone`) when it is frozen (no trainable
    weights), else None."""
    for layer in walk_layers(model):
        if layer.name == BACKBONE and isinstance(layer, keras.Model):
            return None if layer.trainable_weights else layer
    return None


def _contains(model, layer):
    return any(inner is layer for inner in walk_layers(model))


def _rewire(model, backbone, inputs):
    """`model` rebuilt on `inputs` with the same layers, the backbone's call replaced by its
    input (the features); nested sub-models holding the backbone are rebuilt the same way."""
    def call(layer, *args, **kwargs):
        if layer is backbone:
            return args[0]
        if isinstance(layer, keras.Model) and _contains(layer, backbone):
            inner_inputs = keras.tree.map_structure(
                lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
                args[0])
            inner = _rewire(layer, backbone, inner_inputs)
            return inner(args[0])
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=lambda same: same,
                                    call_function=call)


def feature_model(model, backbone=None):
    """The model without its frozen image backbone: the same layers (sharing their weights) with
    the backbone's features as the `image` input, compiled like `model` (its loss and metrics,
    and its optimizer object, so the optimizer state is the model's own).

    Args:
        model: keras.Model. A model with a frozen `image_backbone` (`frozen_backbone`).
        backbone: keras.Model or None. Its backbone; found when None.

    Examples:
    ```python
    head = mmzoo.models.features.feature_model(model)
    head.input["image"].shape     # (None, 1024): MobileNet's pooled features
    ```
    """
    backbone = backbone or frozen_backbone(model)
    if backbone is None:
        raise InvalidValue(f"model {model.name!r} has no frozen image backbone (an "
                           f"'{BACKBONE}' sub-model without trainable weights); build it with "
                           "a pretrained image_encoder and image_trainable=False or None")
    if not isinstance(model.input, dict):
        raise InvalidValue(f"model {model.name!r} takes {model.input}; a zoo model takes a dict "
                           "of inputs named by modality")
    inputs = {name: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name)
              for name, t in model.input.items()}
    inputs["image"] = keras.Input(batch_shape=backbone.output.shape, dtype=backbone.output.dtype,
                                  name="image")
    head = _rewire(model, backbone, inputs)
    if model.compiled:
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
        head.compile(**{**config, "optimizer": model.optimizer})
    return head


def backbone_key(backbone):
    """A short hex digest of the backbone's architecture and weights: what a disk cache of its
    features is keyed by, with the image."""
    digest = hashlib.sha256(str(backbone.to_json()).encode())
    for weight in backbone.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


__all__ = ["BACKBONE", "backbone_key", "feature_model", "frozen_backbone"]
