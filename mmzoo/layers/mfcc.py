"""Log-mel spectrogram and MFCC from the raw waveform, inside the graph, numerically equal to
librosa's `melspectrogram` + `power_to_db` and `feature.mfcc`."""

from __future__ import annotations

import keras
import librosa
import numpy as np
import scipy.fft
import scipy.signal
from keras import ops

from mmzoo.errors import InvalidValue


def dft_kernel(n_fft):
    """The windowed real DFT as a convolution kernel `[n_fft, 1, 2 * (n_fft // 2 + 1)]`
    (float32): channel `k` is `hann[n] * cos(2 pi n k / n_fft)`, channel `bins + k` its
    `-sin`, so a frame's dot products with them are the real and imaginary parts of
    `rfft(hann * frame)` (the periodic Hann window librosa and `ops.stft` use)."""
    bins = n_fft // 2 + 1
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    angle = 2.0 * np.pi * np.outer(np.arange(n_fft), np.arange(bins)) / n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
    return basis[:, None, :].astype("float32")


def _factors(n):
    """`(n1, n2)` with `n1 * n2 == n`, `n1` the largest divisor of `n` up to its square root."""
    a = int(np.sqrt(n))
    while n % a:
        a -= 1
    return a, n // a


def factored_dft(n_fft):
    """The constants of a two-stage (Cooley-Tukey) real DFT of `n_fft = n1 * n2` points: the
    window as `[n1, n2]`, the `n1`-point DFT `[n1, n1]`, the twiddles `[n1, n2]` and the
    `n2`-point DFT `[n2, n2]`, each as cosine and sine parts (float32). Together a few
    thousand numbers, where the one-matrix DFT holds `n_fft * (n_fft + 2)`."""
    n1, n2 = _factors(n_fft)
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).reshape(n1, n2)
    first = -2.0 * np.pi * np.outer(np.arange(n1), np.arange(n1)) / n1     # [k1, m1]
    twiddle = -2.0 * np.pi * np.outer(np.arange(n1), np.arange(n2)) / n_fft  # [k1, m2]
    second = -2.0 * np.pi * np.outer(np.arange(n2), np.arange(n2)) / n2    # [m2, k2]
    parts = {"window": window, "cos1": np.cos(first), "sin1": np.sin(first),
             "cos_t": np.cos(twiddle), "sin_t": np.sin(twiddle), "cos2": np.cos(second),
             "sin2": np.sin(second)}
    return n1, n2, {k: v.astype("float32") for k, v in parts.items()}


@keras.saving.register_keras_serializable("mmzoo")
class LogMel(keras.layers.Layer):
    """Log-power mel spectrogram (dB) of a float32 waveform batch, inside the graph.

    Equal to `librosa.power_to_db(librosa.feature.melspectrogram(y=..., sr=sample_rate,
    n_fft=..., hop_length=..., n_mels=..., fmin=..., fmax=...), ref=1.0, amin=1e-10,
    top_db=80)` with librosa's other defaults (centred frames zero-padded by `n_fft // 2`,
    periodic Hann window, power 2, Slaney mel filters), transposed to `[batch, frames, n_mels]`.
    The `top_db` floor is taken per waveform, and frames are zero-padded (not reflected, as
    `keras.layers.MelSpectrogram` does), so a waveform's frames do not depend on what else is in
    its batch: a waveform zero-padded to a longer one gets the same first `1 + samples //
    hop_length` frames (`num_frames`). Built from `keras.ops` only.

    The short-time Fourier transform is one strided convolution: its kernel holds the windowed
    DFT basis (`n_fft` taps; a cosine and a sine channel per frequency bin) as constants, so
    framing and DFT are ops every runtime has without TensorFlow's Flex delegate (ONNX `Conv`,
    LiteRT `CONV_2D`) and the exported ONNX and LiteRT files compute what this layer does. It
    is as fast as `ops.stft` on CPU, and as close to librosa's float64 result (within 3e-4 dB
    on FSDD).

    `dft = "factored"` (an attribute, not a setting: the int8 LiteRT export sets it while it
    converts) computes the same spectrum from frames cut by slices and a two-stage DFT
    (`factored_dft`) whose constants are a few thousand numbers instead of `n_fft * (n_fft +
    2)`, within 1e-3 dB of the convolution, so that a quantized file is small where its front
    end stays in float.

    Args:
        sample_rate: int. Sample rate of the waveform in Hz.
        n_fft: int. FFT size and window length.
        hop_length: int. Samples between frames; defaults to `n_fft // 4` as in librosa.
        n_mels: int. Number of mel bands.
        fmin: float. Lowest mel band edge in Hz.
        fmax: float. Highest mel band edge in Hz; defaults to `sample_rate / 2`.
        top_db: float. Dynamic range kept below each waveform's peak, in dB (`None` keeps all).

    Examples:
    ```python
    wave = keras.Input(shape=(None,), name="audio")
    log_mel = mmzoo.layers.LogMel(sample_rate=8000, n_fft=256, hop_length=80)(wave)
    # (None, None, 40)
    ```
    """

    def __init__(self, sample_rate, n_fft=512, hop_length=None, n_mels=40, fmin=0.0, fmax=None,
                 top_db=80.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # log-power needs float32, also under mixed precision
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length) if hop_length else self.n_fft // 4
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.top_db = None if top_db is None else float(top_db)
        mel = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels,
                                  fmin=self.fmin, fmax=self.fmax)  # [n_mels, 1 + n_fft // 2]
        self._mel_t = mel.T.astype("float32")          # [bins, n_mels]
        self._dft = dft_kernel(self.n_fft)              # [n_fft, 1, 2 * bins]
        self.dft = "conv"

    def num_frames(self, num_samples):
        """Frames produced for a waveform of `num_samples` samples (centred framing)."""
        return 1 + num_samples // self.hop_length

    def log_mel(self, waveform):
        waveform = ops.cast(waveform, "float32")
        pad = self.n_fft // 2
        padded = ops.pad(waveform, [[0, 0], [pad, pad]])
        real, imag = (self._factored(padded) if self.dft == "factored"
                      else self._convolved(padded))
        power = real * real + imag * imag                               # [batch, frames, bins]
        mel = ops.matmul(power, ops.convert_to_tensor(self._mel_t))
        log_mel = 10.0 * ops.log10(ops.maximum(mel, 1e-10))
        if self.top_db is not None:
            peak = ops.max(log_mel, axis=(1, 2), keepdims=True)
            log_mel = ops.maximum(log_mel, peak - self.top_db)
        return log_mel

    def _convolved(self, padded):
        spectrum = ops.conv(padded[:, :, None], ops.convert_to_tensor(self._dft),
                            strides=self.hop_length, padding="valid")   # [batch, frames, 2 bins]
        bins = self.n_fft // 2 + 1
        return spectrum[..., :bins], spectrum[..., bins:]

    def _frames(self, padded):
        """`[batch, frames, n_fft]`: the waveform cut into hops, each frame the next
        `ceil(n_fft / hop)` hops side by side and cut to `n_fft` (slices and a concatenation:
        no index table that grows with the waveform)."""
        n, hop = self.n_fft, self.hop_length
        hops = -(-n // hop)                                   # hops a frame spans
        frames = 1 + (ops.shape(padded)[1] - n) // hop
        blocks = frames + hops - 1
        x = ops.pad(padded, [[0, 0], [0, hops * hop]])[:, :blocks * hop]
        x = ops.reshape(x, (-1, blocks, hop))
        return ops.concatenate([x[:, j:j + frames] for j in range(hops)], axis=-1)[..., :n]

    def _factored(self, padded):
        n1, n2, c = factored_dft(self.n_fft)
        x = self._frames(padded)
        frames = ops.shape(x)[1]
        x = ops.reshape(x, (-1, frames, n1, n2)) * c["window"]
        re, im = ops.matmul(c["cos1"], x), ops.matmul(c["sin1"], x)    # [batch, frames, k1, m2]
        re, im = re * c["cos_t"] - im * c["sin_t"], re * c["sin_t"] + im * c["cos_t"]
        real = ops.matmul(re, c["cos2"]) - ops.matmul(im, c["sin2"])    # [batch, frames, k1, k2]
        imag = ops.matmul(re, c["sin2"]) + ops.matmul(im, c["cos2"])
        bins = self.n_fft // 2 + 1                                      # bin k1 + n1 * k2
        return tuple(ops.reshape(ops.swapaxes(t, 2, 3), (-1, frames, self.n_fft))[..., :bins]
                     for t in (real, imag))

    def call(self, waveform):
        return self.log_mel(waveform)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (input_shape[0], frames, self.n_mels)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, n_fft=self.n_fft,
                      hop_length=self.hop_length, n_mels=self.n_mels, fmin=self.fmin,
                      fmax=self.fmax, top_db=self.top_db)
        return config


@keras.saving.register_keras_serializable("mmzoo")
class MFCC(LogMel):
    """Mel-frequency cepstral coefficients of a float32 waveform batch.

    Equal to `librosa.feature.mfcc(y=..., sr=sample_rate, n_mfcc=..., n_fft=..., hop_length=...,
    n_mels=..., fmin=..., fmax=...)` with librosa's other defaults (the `LogMel` of the
    waveform, then an orthonormal DCT-II), transposed to `[batch, frames, n_mfcc]`. Built from
    `keras.ops` only, so it runs on every backend and an exported SavedModel takes raw waveforms.

    Args:
        sample_rate: int. Sample rate of the waveform in Hz.
        n_mfcc: int. Number of coefficients kept.
        n_fft: int. FFT size and window length.
        hop_length: int. Samples between frames; defaults to `n_fft // 4` as in librosa.
        n_mels: int. Number of mel bands.
        fmin: float. Lowest mel band edge in Hz.
        fmax: float. Highest mel band edge in Hz; defaults to `sample_rate / 2`.
        top_db: float. Dynamic range kept below each clip's peak, in dB (`None` keeps all).

    Examples:
    ```python
    wave = keras.Input(shape=(8000,), name="audio")
    mfcc = mmzoo.layers.MFCC(sample_rate=8000, n_fft=256, hop_length=80)(wave)  # (None, 101, 13)
    ```
    """

    def __init__(self, sample_rate, n_mfcc=13, n_fft=512, hop_length=None, n_mels=40,
                 fmin=0.0, fmax=None, top_db=80.0, **kwargs):
        super().__init__(sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                         fmin=fmin, fmax=fmax, top_db=top_db, **kwargs)
        self.n_mfcc = int(n_mfcc)
        if self.n_mfcc > self.n_mels:
            raise InvalidValue(f"MFCC: n_mfcc={self.n_mfcc} must not exceed n_mels={self.n_mels}")
        dct = scipy.fft.dct(np.eye(self.n_mels), type=2, norm="ortho", axis=0)[: self.n_mfcc]
        self._dct_t = dct.T.astype("float32")          # [n_mels, n_mfcc]

    def call(self, waveform):
        return ops.matmul(self.log_mel(waveform), ops.convert_to_tensor(self._dct_t))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(input_shape)[:2] + (self.n_mfcc,)

    def get_config(self):
        return {**super().get_config(), "n_mfcc": self.n_mfcc}


# SpellingCNN's front end as its authors published it (moonshine-ai, `mmzoo.blocks.spelling`)
SPELLING = {"sample_rate": 16000, "n_fft": 512, "hop_length": 125, "n_mels": 64, "fmin": 20.0,
            "fmax": 8000.0, "frames": 128, "log_floor": 1e-6, "std_floor": 1e-3}


@keras.saving.register_keras_serializable("mmzoo")
class SpellingLogMel(LogMel):
    """SpellingCNN's front end: float32 waveforms `[batch, 16000]` at 16 kHz -> standardised
    log-mel `[batch, 64, 128, 1]` (mel bands, frames, a channel).

    From the published facts: power mel spectrogram with `n_fft` 512 (periodic Hann window of
    512), hop 125, centred frames with reflect padding, 64 Slaney mel bands from 20 Hz to
    8 kHz with Slaney area normalisation; `ln(mel + 1e-6)`; the first 128 frames (a shorter
    clip's frames zero-padded on the right); then each clip standardised over all its 64 x 128
    values (mean, unbiased standard deviation floored at 1e-3).

    It takes the clip as mmzoo's pipeline gives every audio model its clip: 1 s, a shorter one
    centred in silence. The authors compute the mel of the shorter clip alone and pad its frames
    with zeros after the logarithm; for such a clip the two differ (a head trained on these
    inputs learns on them; the authors' 51-word classifier used as it is would want theirs).
    """

    def __init__(self, front_end=None, **kwargs):
        if front_end is not None and dict(front_end) != SPELLING:
            raise InvalidValue(f"SpellingLogMel: saved with the front end {front_end}, which "
                               f"is not SpellingCNN's published one {SPELLING}")
        chosen = sorted(set(kwargs) & {"sample_rate", "n_fft", "hop_length", "n_mels", "fmin",
                                       "fmax", "top_db"})
        if chosen:
            raise InvalidValue(f"SpellingLogMel takes no {chosen}: its front end is the one "
                               "SpellingCNN was trained with; use LogMel for another")
        super().__init__(SPELLING["sample_rate"], n_fft=SPELLING["n_fft"],
                         hop_length=SPELLING["hop_length"], n_mels=SPELLING["n_mels"],
                         fmin=SPELLING["fmin"], fmax=SPELLING["fmax"], top_db=None, **kwargs)

    def call(self, waveform):
        waveform = ops.cast(waveform, "float32")
        pad = self.n_fft // 2
        padded = ops.pad(waveform, [[0, 0], [pad, pad]], mode="reflect")
        real, imag = (self._factored(padded) if self.dft == "factored"
                      else self._convolved(padded))
        mel = ops.matmul(real * real + imag * imag, ops.convert_to_tensor(self._mel_t))
        x = ops.log(mel + SPELLING["log_floor"])                                   # [batch, frames, mels]
        frames = SPELLING["frames"]
        x = ops.pad(x, [[0, 0], [0, frames], [0, 0]])[:, :frames]     # cut or pad to 128
        count = float(frames * self.n_mels)
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.sum(ops.square(x - mean), axis=(1, 2), keepdims=True) / (count - 1.0)
        x = (x - mean) / ops.maximum(ops.sqrt(var), SPELLING["std_floor"])
        return ops.expand_dims(ops.transpose(x, (0, 2, 1)), -1)       # [batch, mels, frames, 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_mels, SPELLING["frames"], 1)

    def get_config(self):
        # the front end's facts, so that a cache of its outputs is keyed by them
        return {**keras.layers.Layer.get_config(self), "front_end": dict(SPELLING)}
