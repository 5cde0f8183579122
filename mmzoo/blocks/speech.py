"""Speech blocks over variable-length waveforms: front end, convolutional subsampling, and a
BiLSTM or Transformer stack, each keeping track of every utterance's valid frames."""

from __future__ import annotations

import keras_hub
from keras import layers

from mmzoo.errors import InvalidValue
from mmzoo.layers.mfcc import MFCC, LogMel
from mmzoo.layers.speech import (
    FrameLengths,
    FrameMask,
    MaskFrames,
    SpecAugment,
    UtteranceLengths,
    UtteranceNormalization,
)

FRONT_ENDS = ("log_mel", "mfcc")
NORMALIZATIONS = ("utterance", "global")
SPEECH_DB = 40.0  # frames within 40 dB of an utterance's loudest set its normalisation


def speech_frontend(waveform, *, sample_rate, features="log_mel", n_fft=256, hop_length=80,
                    n_mels=40, n_mfcc=20, normalization="utterance", spec_augment=True,
                    prefix="audio"):
    """Zero-padded waveforms -> normalised frame features and each utterance's frame count.

    The log-mel spectrogram (or MFCC) in the graph, normalised per utterance over its own loud
    frames (`mmzoo.layers.UtteranceNormalization`: within 40 dB of its loudest), SpecAugment
    masking in training, padding frames zero.

    Args:
        waveform: Keras tensor. float32 `[batch, samples]` at `sample_rate`, zero-padded at the
            end (an utterance ends at its last non-zero sample).
        sample_rate: int. Sample rate in Hz.
        features: str. `log_mel` or `mfcc`.
        n_fft, hop_length, n_mels, n_mfcc: int. Front-end settings (`mmzoo.layers.LogMel`).
        normalization: str. `utterance`: each feature's mean and variance over the utterance's
            loud frames (CMVN); `global`: the utterance's level removed, then fixed statistics
            learnt in training (`BatchNormalization` over the valid frames), which do not depend
            on what one short utterance says.
        spec_augment: bool. SpecAugment time and frequency masks when training.
        prefix: str. Prefix of the layer names.

    Returns:
        `(features [batch, frames, dims], frame_lengths [batch] int32)`.

    Examples:
    ```python
    wave = keras.Input(shape=(None,), name="audio")
    x, lengths = mmzoo.blocks.speech_frontend(wave, sample_rate=8000)
    ```
    """
    if features not in FRONT_ENDS:
        raise InvalidValue(f"unknown speech features {features!r}; use one of {list(FRONT_ENDS)}")
    samples = UtteranceLengths(name=f"{prefix}_lengths")(waveform)
    if features == "mfcc":
        x = MFCC(sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                 name=f"{prefix}_mfcc")(waveform)
    else:
        x = LogMel(sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                   name=f"{prefix}_log_mel")(waveform)
    lengths = FrameLengths(hop_length, centred=True, name=f"{prefix}_frame_lengths")(samples)
    if normalization not in NORMALIZATIONS:
        raise InvalidValue(f"unknown speech normalization {normalization!r}; use one of "
                           f"{list(NORMALIZATIONS)}")
    # statistics over the loud frames (log-mel in dB; MFCCs have no such scale: all frames)
    speech_db = SPEECH_DB if features == "log_mel" else None
    x = UtteranceNormalization(speech_db=speech_db, per_feature=normalization == "utterance",
                               name=f"{prefix}_normalize")([x, lengths])
    if normalization == "global":
        mask = FrameMask(name=f"{prefix}_mask")([x, lengths])
        x = layers.BatchNormalization(name=f"{prefix}_norm")(x, mask=mask)
        x = MaskFrames(name=f"{prefix}_zero_padding")([x, lengths])
    if spec_augment:
        x = SpecAugment(name=f"{prefix}_spec_augment")([x, lengths])
    return x, lengths


def conv_subsampling(x, lengths, *, filters=32, strides=(2, 2), units=128, prefix="subsample"):
    """2-D convolutions over (time, features), each of stride `s` in both, then a projection.

    Each convolution pads one frame on both sides of time explicitly (not `padding="same"`,
    whose split of the padding depends on the padded length's parity), and the frames past each
    utterance's end are zeroed before it, so frame `j` of an utterance is the same alone and in
    a padded batch.

    Args:
        x: Keras tensor. `[batch, frames, dims]`, zero past each utterance's frames.
        lengths: Keras tensor. int32 `[batch]` valid frames.
        filters: int. Filters of each convolution.
        strides: tuple of int. Stride of each convolution (their product subsamples time).
        units: int. Width of the projection after the convolutions.
        prefix: str. Prefix of the layer names.

    Returns:
        `(x [batch, frames / prod(strides), units], lengths)`.
    """
    x = layers.Reshape((-1, x.shape[-1], 1), name=f"{prefix}_channels")(x)
    for i, stride in enumerate(strides, start=1):
        x = layers.ZeroPadding2D(((1, 1), (1, 1)), name=f"{prefix}_pad{i}")(x)
        x = layers.Conv2D(filters, 3, strides=stride, activation="relu",
                          name=f"{prefix}_conv{i}")(x)
        lengths = FrameLengths(stride, name=f"{prefix}_lengths{i}")(lengths)
        x = MaskFrames(name=f"{prefix}_mask{i}")([x, lengths])
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]), name=f"{prefix}_flatten")(x)
    x = layers.Dense(units, name=f"{prefix}_projection")(x)
    return x, lengths


def bilstm_stack(x, mask, *, units=128, num_layers=2, dropout=0.2, prefix="encoder"):
    """Bidirectional LSTMs over the valid frames (`mask`), each followed by dropout.

    Args:
        x: Keras tensor. `[batch, frames, dims]`.
        mask: Keras tensor. bool `[batch, frames]`, True on valid frames.
        units: int. LSTM units per direction.
        num_layers: int. Stacked BiLSTMs.
        dropout: float. Dropout after each.
        prefix: str. Prefix of the layer names.
    """
    for i in range(1, num_layers + 1):
        x = layers.Bidirectional(layers.LSTM(units, return_sequences=True),
                                 name=f"{prefix}_bilstm{i}")(x, mask=mask)
        if dropout:
            x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def transformer_stack(x, mask, *, num_heads=4, intermediate_dim=256, num_layers=4, dropout=0.1,
                      prefix="encoder"):
    """Sinusoidal positions and keras_hub `TransformerEncoder` layers attending to the valid
    frames only (`mask` as their padding mask), normalised first (pre-LN, which trains without
    a learning-rate warm-up) and followed by a final layer normalisation.

    Args:
        x: Keras tensor. `[batch, frames, dims]`.
        mask: Keras tensor. bool `[batch, frames]`, True on valid frames.
        num_heads: int. Attention heads.
        intermediate_dim: int. Width of the feed-forward layers.
        num_layers: int. Encoder layers.
        dropout: float. Dropout inside the encoder layers.
        prefix: str. Prefix of the layer names.
    """
    positions = keras_hub.layers.SinePositionEncoding(name=f"{prefix}_positions")(x)
    x = layers.Add(name=f"{prefix}_add_positions")([x, positions])
    for i in range(1, num_layers + 1):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
            normalize_first=True, name=f"{prefix}_transformer{i}")(x, padding_mask=mask)
    return layers.LayerNormalization(name=f"{prefix}_norm")(x)


__all__ = ["FRONT_ENDS", "bilstm_stack", "conv_subsampling", "speech_frontend",
           "transformer_stack"]
