"""Feature training: a model with fixed front ends, trained on what they compute.

A fixed front end gives the same output for an input every epoch: a frozen pretrained image
backbone (`image_backbone` without trainable weights) and the MFCC layer an audio model reads
its waveform with (no weights at all). Running them every step repeats work that is much of a
step's cost. `feature_model` is the rest of the model (the same layers, sharing their weights)
with the front ends' outputs as its `image` / `audio` inputs; `mmzoo.data.pipeline(...,
features=True)` runs the front ends once per example before the cache (MFCCs are then augmented
SpecAugment-style after it: `mmzoo.data.waveform.augment_mfcc`), and `mmzoo.train` fits the
feature model on them. The weights it trains are the model's own, so the model saved and
exported is still the whole graph from raw input to output.

Examples:
```python
model = mmzoo.build("caption_lstm", image_encoder="mobilenet", image_weights="imagenet")
head = mmzoo.features.feature_model(model)     # image input: [None, 1024] features
head.fit(mmzoo.data.pipeline(model, train, training=True, features=True), epochs=5)
mmzoo.export(model, "out/captioner")                   # raw image bytes in, as ever
```
"""

from __future__ import annotations

import keras

from mmzoo.contract import BACKBONE, front_ends
from mmzoo.contract import walk as walk_layers
from mmzoo.errors import InvalidValue

def _contains(model, layers):
    return any(inner is layer for inner in walk_layers(model) for layer in layers)


def _rewire(model, fronts, inputs):
    """`model` rebuilt on `inputs` with the same layers, each front end's call replaced by its
    input (the features); nested sub-models holding a front end are rebuilt the same way."""
    def call(layer, *args, **kwargs):
        if any(layer is front for front in fronts):
            return args[0]
        if isinstance(layer, keras.Model) and _contains(layer, fronts):
            inner_inputs = keras.tree.map_structure(
                lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
                args[0])
            inner = _rewire(layer, fronts, inner_inputs)
            return inner(args[0])
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=lambda same: same,
                                    call_function=call)


def feature_model(model, fronts=None):
    """The model without its fixed front ends: the same layers (sharing their weights) with the
    front ends' outputs as its `image` / `audio` inputs, compiled like `model` (its loss and
    metrics, and its optimizer object, so the optimizer state is the model's own).

    Args:
        model: keras.Model. A model with a frozen `image_backbone` (`frozen_backbone`) or an
            MFCC audio front end (`audio_front_end`).
        fronts: dict, keras.Model or None. `{input name: front end}` (`front_ends(model)` when
            None); a model is taken as the image backbone.

    Examples:
    ```python
    head = mmzoo.features.feature_model(model)
    head.input["image"].shape     # (None, 1024): MobileNet's pooled features
    ```
    """
    if isinstance(fronts, keras.Model):
        fronts = {"image": fronts}
    fronts = front_ends(model) if fronts is None else fronts
    if not fronts:
        raise InvalidValue(f"model {model.name!r} has no fixed front end: no frozen image "
                           f"backbone (an '{BACKBONE}' sub-model without trainable weights; "
                           "build it with a pretrained image_encoder and image_trainable=False "
                           "or None) and no MFCC layer reading its audio input")
    if not isinstance(model.input, dict):
        raise InvalidValue(f"model {model.name!r} takes {model.input}; a zoo model takes a dict "
                           "of inputs named by modality")
    inputs = {name: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name)
              for name, t in model.input.items()}
    for name, front in fronts.items():
        inputs[name] = keras.Input(batch_shape=front.output.shape, dtype=front.output.dtype,
                                   name=name)
    head = _rewire(model, list(fronts.values()), inputs)
    if model.compiled:
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
        head.compile(**{**config, "optimizer": model.optimizer})
    return head


__all__ = ["feature_model"]
