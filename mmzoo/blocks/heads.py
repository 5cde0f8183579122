"""Heads: a softmax classifier and an LSTM caption decoder."""

from __future__ import annotations

import keras
from keras import layers

from mmzoo.layers.vocab import LabelNames


def classifier_head(x, *, labels, hidden_units=(), dropout=0.0, l1=0.0, l2=0.0, prefix="head",
                    output_name="scores"):
    """Dropout, optional ReLU layers and a softmax over `labels`, with optional L1/L2 penalties.

    The output carries the class names (a `LabelNames` layer named `output_name`), so a saved or
    exported model knows what its scores mean.

    Args:
        x: Keras tensor. `[batch, features]`.
        labels: list of str. The class names, in score order.
        hidden_units: tuple of int. Widths of ReLU layers before the softmax.
        dropout: float. Dropout before each Dense layer.
        l1: float. L1 penalty on the Dense kernels.
        l2: float. L2 penalty on the Dense kernels.
        prefix: str. Prefix of the layer names.
        output_name: str. Name of the output (and of its layer).

    Examples:
    ```python
    scores = mmzoo.blocks.classifier_head(x, labels=["no", "yes"], dropout=0.3, l2=1e-4)
    ```
    """
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    for i, width in enumerate(hidden_units, start=1):
        if dropout:
            x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
        x = layers.Dense(width, activation="relu", kernel_regularizer=regularizer,
                         name=f"{prefix}_dense{i}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
    # float32 outputs, so mixed-precision training keeps a stable softmax and loss
    probs = layers.Dense(len(labels), activation="softmax", kernel_regularizer=regularizer,
                         dtype="float32", name=f"{prefix}_softmax")(x)
    return LabelNames(labels, name=output_name)(probs)


def caption_decoder(features, ids, *, vocab_size, embed_dim=64, units=128, dropout=0.0,
                    prefix="decoder"):
    """An LSTM language model conditioned on image features (Show and Tell).

    The image features set the LSTM's initial state; the decoder reads the caption so far
    (teacher forcing in training) and returns the next-token distribution at every step.

    Args:
        features: Keras tensor. `[batch, d]` image features.
        ids: Keras tensor. `[batch, length]` caption token ids, 0 = padding (masked).
        vocab_size: int. Number of ids, padding and OOV included.
        embed_dim: int. Word embedding width.
        units: int. LSTM units.
        dropout: float. Dropout on the embeddings and before the softmax.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    probs = mmzoo.blocks.caption_decoder(features, ids, vocab_size=500)  # (None, length, 500)
    ```
    """
    h = layers.Dense(units, activation="tanh", name=f"{prefix}_init_h")(features)
    c = layers.Dense(units, name=f"{prefix}_init_c")(features)
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True, name=f"{prefix}_embedding")(ids)
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_embedding_dropout")(x)
    x = layers.LSTM(units, return_sequences=True, name=f"{prefix}_lstm")(x, initial_state=[h, c])
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
    return layers.Dense(vocab_size, activation="softmax", dtype="float32",
                        name=f"{prefix}_softmax")(x)
