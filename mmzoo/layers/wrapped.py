"""`Wrapped`: a layer inside a mmzoo graph that keeps its trainable state through save and load."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable("mmzoo")
class Wrapped(keras.layers.Layer):
    """Calls the layer it wraps; a frozen wrapper freezes every weight of it, also when loaded.

    A KerasHub `Backbone` rebuilt from its config builds its inner layers before it takes the
    `trainable=False` it was saved with, so a frozen backbone came back from `model.keras` with
    trainable inner weights (and an optimizer that no longer matched). The wrapper sets the
    `trainable` of the inner layer and of every layer nested in it after rebuilding it.

    Args:
        layer: keras.layers.Layer. The layer to call (e.g. a KerasHub image converter or
            backbone).

    Examples:
    ```python
    frozen = mmzoo.layers.Wrapped(backbone, trainable=False, name="image_hub_backbone")
    ```
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        _set_trainable(layer, self.trainable)

    @property
    def trainable(self):
        return super().trainable

    @trainable.setter
    def trainable(self, value):
        keras.layers.Layer.trainable.fset(self, value)
        if hasattr(self, "layer"):
            _set_trainable(self.layer, value)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, inputs):
        return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs):
        return self.layer.compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _set_trainable(layer, value):
    layer.trainable = value
    for inner in getattr(layer, "layers", ()):
        _set_trainable(inner, value)
