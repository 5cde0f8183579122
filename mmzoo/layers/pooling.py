"""Pooling over a masked sequence that stays finite when every step is masked."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("mmzoo")
class MaskedAverage(keras.layers.Layer):
    """Average of `[batch, steps, features]` over the unmasked steps; zeros for a row whose
    steps are all masked.

    `keras.layers.GlobalAveragePooling1D` divides by the number of unmasked steps, so a text that
    standardises to no tokens (all padding) gives 0 / 0 = NaN when the model is called eagerly,
    while a compiled `predict` happened to give a uniform distribution. Here such a row averages
    to zeros on every path (eager, `predict`, training, SavedModel).

    Examples:
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(ids)
    x = mmzoo.layers.MaskedAverage(name="text_average")(x)   # [batch, 64]
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.cast(mask, inputs.dtype)[:, :, None]
        total = ops.sum(inputs * weights, axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), ops.cast(1, inputs.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
