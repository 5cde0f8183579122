"""Text encoders: token ids `[batch, length]` (0 = padding) in, one feature vector out."""

from __future__ import annotations

import keras_hub
from keras import layers

from mmzoo.errors import InvalidValue
from mmzoo.layers.pooling import MaskedAverage


def lstm_encoder(ids, *, vocab_size, embed_dim=64, units=64, bidirectional=False, dropout=0.0,
                 return_sequences=False, prefix="text"):
    """Embedding + LSTM (optionally bidirectional) over padded token ids.

    Args:
        ids: Keras tensor. int token ids `[batch, length]`, 0 = padding (masked).
        vocab_size: int. Number of ids, padding and OOV included.
        embed_dim: int. Embedding width.
        units: int. LSTM units (per direction).
        bidirectional: bool. Read the sequence both ways and concatenate.
        dropout: float. Dropout on the LSTM inputs.
        return_sequences: bool. Return every step `[batch, length, units]` instead of the last.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    ids = keras.Input(shape=(12,), dtype="int32")
    x = mmzoo.blocks.lstm_encoder(ids, vocab_size=1000, units=64)  # (None, 64)
    ```
    """
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True, name=f"{prefix}_embedding")(ids)
    lstm = layers.LSTM(units, dropout=dropout, return_sequences=return_sequences,
                       name=f"{prefix}_lstm")
    if bidirectional:
        lstm = layers.Bidirectional(lstm, name=f"{prefix}_bilstm")
    return lstm(x)


def word_vector_mlp_encoder(ids, *, vocab_size, embed_dim=64, hidden_units=(64,), dropout=0.0,
                            prefix="text"):
    """Average of word vectors (padding masked out; none left: zeros), then an MLP (fastText-style).

    Args:
        ids: Keras tensor. int token ids `[batch, length]`, 0 = padding.
        vocab_size: int. Number of ids, padding and OOV included.
        embed_dim: int. Word-vector width.
        hidden_units: tuple of int. Widths of the MLP's ReLU layers.
        dropout: float. Dropout after each MLP layer.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.word_vector_mlp_encoder(ids, vocab_size=20000, embed_dim=64)
    ```
    """
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True, name=f"{prefix}_embedding")(ids)
    x = MaskedAverage(name=f"{prefix}_average")(x)
    for i, width in enumerate(hidden_units, start=1):
        x = layers.Dense(width, activation="relu", name=f"{prefix}_dense{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def transformer_encoder(ids, *, vocab_size, sequence_length, embed_dim=64, num_heads=2,
                        intermediate_dim=128, num_layers=1, dropout=0.0, prefix="text"):
    """Token + position embedding, BERT-style Transformer encoder layers (keras_hub), mean pool.

    Args:
        ids: Keras tensor. int token ids `[batch, sequence_length]`, 0 = padding (masked).
        vocab_size: int. Number of ids, padding and OOV included.
        sequence_length: int. Maximum length (size of the position embedding).
        embed_dim: int. Model width.
        num_heads: int. Attention heads.
        intermediate_dim: int. Width of the feed-forward layers.
        num_layers: int. Encoder layers.
        dropout: float. Dropout inside the encoder layers.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.transformer_encoder(ids, vocab_size=20000, sequence_length=64)
    ```
    """
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=vocab_size, sequence_length=sequence_length, embedding_dim=embed_dim,
        mask_zero=True, name=f"{prefix}_token_position_embedding")(ids)
    for i in range(1, num_layers + 1):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
            name=f"{prefix}_transformer{i}")(x)
    return MaskedAverage(name=f"{prefix}_average")(x)


def text_encoder(kind, ids, *, vocab_size, sequence_length, embed_dim, units, bidirectional=False,
                 dropout=0.0, num_heads=2, num_layers=1, prefix="text"):
    """Dispatch on `kind` (`lstm`, `word_vector_mlp`, `transformer`) with one set of arguments
    (`word_vector_mlp` with `units=0`: the average of the word vectors, no hidden layer)."""
    if kind == "lstm":
        return lstm_encoder(ids, vocab_size=vocab_size, embed_dim=embed_dim, units=units,
                            bidirectional=bidirectional, dropout=dropout, prefix=prefix)
    if kind == "word_vector_mlp":
        return word_vector_mlp_encoder(ids, vocab_size=vocab_size, embed_dim=embed_dim,
                                       hidden_units=(units,) if units else (), dropout=dropout,
                                       prefix=prefix)
    if kind == "transformer":
        return transformer_encoder(ids, vocab_size=vocab_size, sequence_length=sequence_length,
                                   embed_dim=embed_dim, num_heads=num_heads,
                                   intermediate_dim=2 * units, num_layers=num_layers,
                                   dropout=dropout, prefix=prefix)
    raise InvalidValue(f"unknown text encoder {kind!r}; use 'lstm', 'word_vector_mlp' or "
                       "'transformer'")


__all__ = ["lstm_encoder", "text_encoder", "transformer_encoder", "word_vector_mlp_encoder"]
