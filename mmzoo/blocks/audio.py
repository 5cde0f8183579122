"""Audio encoders: a float32 waveform `[batch, samples]` in, MFCCs computed in the graph."""

from __future__ import annotations

from keras import layers

from mmzoo.blocks.image import BN_MOMENTUM, normalization
from mmzoo.errors import InvalidValue
from mmzoo.layers.mfcc import MFCC


def _mfcc(waveform, sample_rate, n_mfcc, n_fft, hop_length, n_mels, prefix):
    x = MFCC(sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
             name=f"{prefix}_mfcc")(waveform)
    # MFCCs span very different ranges per coefficient (c0 is hundreds of dB): normalise each.
    # Their distribution does not move with the weights, so moving statistics are reliable here.
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}_mfcc_norm")(x)


def mfcc_cnn_encoder(waveform, *, sample_rate, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40,
                     filters=(64, 128, 128), norm=None, dropout=0.0, prefix="audio"):
    """MFCC (in the graph) then a 1-D Conv/MaxPool stack over time, globally averaged.

    Args:
        waveform: Keras tensor. float32 `[batch, samples]` at `sample_rate`.
        sample_rate: int. Sample rate in Hz.
        n_mfcc, n_fft, hop_length, n_mels: int. MFCC settings (see `mmzoo.layers.MFCC`).
        filters: tuple of int. Filters of each Conv1D stage.
        norm: str or None. Normalisation after each convolution: None, `batch` or `group`.
        dropout: float. Spatial dropout after each stage.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    wave = keras.Input(shape=(8000,), name="audio")
    x = mmzoo.blocks.mfcc_cnn_encoder(wave, sample_rate=8000)
    ```
    """
    x = _mfcc(waveform, sample_rate, n_mfcc, n_fft, hop_length, n_mels, prefix)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv1D(f, 3, padding="same", use_bias=norm is None, name=f"{prefix}_conv{i}")(x)
        if norm:
            x = normalization(norm, f, f"{prefix}_norm{i}")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
        x = layers.MaxPooling1D(2, padding="same", name=f"{prefix}_pool{i}")(x)
        if dropout:
            x = layers.SpatialDropout1D(dropout, name=f"{prefix}_dropout{i}")(x)
    return layers.GlobalAveragePooling1D(name=f"{prefix}_avgpool")(x)


def mfcc_lstm_encoder(waveform, *, sample_rate, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40,
                      units=64, bidirectional=False, dropout=0.0, prefix="audio"):
    """MFCC (in the graph) then an LSTM over the frames.

    Args:
        waveform: Keras tensor. float32 `[batch, samples]` at `sample_rate`.
        sample_rate: int. Sample rate in Hz.
        n_mfcc, n_fft, hop_length, n_mels: int. MFCC settings (see `mmzoo.layers.MFCC`).
        units: int. LSTM units.
        bidirectional: bool. Read the frames both ways.
        dropout: float. Dropout on the LSTM inputs.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.mfcc_lstm_encoder(wave, sample_rate=8000, units=64)
    ```
    """
    x = _mfcc(waveform, sample_rate, n_mfcc, n_fft, hop_length, n_mels, prefix)
    lstm = layers.LSTM(units, dropout=dropout, name=f"{prefix}_lstm")
    if bidirectional:
        lstm = layers.Bidirectional(lstm, name=f"{prefix}_bilstm")
    return lstm(x)


def audio_encoder(kind, waveform, **kwargs):
    """Dispatch on `kind` (`cnn` or `lstm`); `units` goes to the LSTM, `filters` to the CNN."""
    units = kwargs.pop("units", 64)
    filters = kwargs.pop("filters", (64, 128, 128))
    if kind == "cnn":
        return mfcc_cnn_encoder(waveform, filters=filters, **kwargs)
    if kind == "lstm":
        return mfcc_lstm_encoder(waveform, units=units, **kwargs)
    raise InvalidValue(f"unknown audio encoder {kind!r}; use 'cnn' or 'lstm'")
