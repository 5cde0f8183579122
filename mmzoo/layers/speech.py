"""Layers for variable-length speech: utterance lengths, masked normalisation, SpecAugment and
the CTC output that carries the transcript's tokens.

A batch of utterances of different lengths is zero-padded at the end (Keras' own padding
convention, as `keras.layers.Masking` and `Embedding(mask_zero=True)` read it): an utterance
ends at its last non-zero sample. Every layer here takes the lengths of the valid frames and
leaves the padding out of what it computes, so an utterance gets the same output alone and in
a batch padded to a longer one.
"""

from __future__ import annotations

import keras
from keras import ops

from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import OOV, PAD


def frame_mask(lengths, frames):
    """Boolean `[batch, frames]`: True for the first `lengths[i]` frames of row i."""
    return ops.less(ops.arange(frames)[None, :], ops.cast(lengths, "int32")[:, None])


@keras.saving.register_keras_serializable("mmzoo")
class UtteranceLengths(keras.layers.Layer):
    """Waveforms `[batch, samples]` zero-padded at the end -> their lengths in samples (int32):
    one past the last non-zero sample (0 for an all-zero row).

    Examples:
    ```python
    lengths = mmzoo.layers.UtteranceLengths()(wave)   # [batch] int32
    ```
    """

    def call(self, waveform):
        nonzero = ops.not_equal(waveform, 0)
        total = ops.shape(waveform)[1]
        trailing = ops.argmax(ops.cast(ops.flip(nonzero, axis=1), "int32"), axis=1)
        lengths = ops.cast(total, "int32") - ops.cast(trailing, "int32")
        return ops.where(ops.any(nonzero, axis=1), lengths, 0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, waveform):
        return keras.KerasTensor((waveform.shape[0],), dtype="int32")


@keras.saving.register_keras_serializable("mmzoo")
class FrameLengths(keras.layers.Layer):
    """Lengths in samples (or frames) -> lengths in frames of a framing or a strided layer.

    `centred`: `1 + n // hop` (a centred STFT with hop `hop`, as `LogMel.num_frames`; 0 stays
    0); otherwise `ceil(n / hop)` (a convolution of stride `hop` over input padded by one on the
    left, as `mmzoo.blocks.conv_subsampling` builds it).

    Args:
        hop: int. Samples (or frames) per output frame.
        centred: bool. Centred framing (see above) or strided subsampling.
    """

    def __init__(self, hop, centred=False, **kwargs):
        super().__init__(**kwargs)
        self.hop, self.centred = int(hop), bool(centred)

    def call(self, lengths):
        lengths = ops.cast(lengths, "int32")
        if self.centred:
            return ops.where(lengths > 0, 1 + lengths // self.hop, 0)
        return (lengths + self.hop - 1) // self.hop

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, lengths):
        return keras.KerasTensor(lengths.shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "hop": self.hop, "centred": self.centred}


@keras.saving.register_keras_serializable("mmzoo")
class FrameMask(keras.layers.Layer):
    """`[features [batch, frames, ...], lengths]` -> bool `[batch, frames]`, True on the first
    `lengths` frames: the mask an RNN or attention layer takes."""

    def call(self, inputs):
        x, lengths = inputs
        return frame_mask(lengths, ops.shape(x)[1])

    def compute_output_spec(self, inputs):
        x = inputs[0]
        return keras.KerasTensor(x.shape[:2], dtype="bool")


@keras.saving.register_keras_serializable("mmzoo")
class MaskFrames(keras.layers.Layer):
    """`[features, lengths]` -> the features with every frame at or after `lengths` set to zero
    (so a zero-padding convolution sees the same zeros alone and in a padded batch)."""

    def call(self, inputs, mask=None):  # a Keras mask, if any, is the same frames: consumed
        x, lengths = inputs
        keep = frame_mask(lengths, ops.shape(x)[1])
        for _ in range(len(x.shape) - 2):
            keep = keep[..., None]
        return ops.where(keep, x, ops.zeros_like(x))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable("mmzoo")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance mean and variance normalisation of each feature (cepstral mean and variance
    normalisation), with the statistics taken over the utterance's loud frames only:
    `[features [batch, frames, dims], lengths]` -> normalised features, zero on the padding
    frames. It removes a recording's constant channel and loudness from the features, which
    helps a recogniser on speakers and microphones it was not trained on.

    Statistics over every frame would depend on how much silence the recording holds (a digit
    said alone with half a second of silence around it would look unlike the same digit in a
    sentence), so they are taken over the frames whose loudest band is within `speech_db` of the
    utterance's loudest frame (all valid frames when `speech_db` is None or none qualifies).

    With `per_feature=False` only the utterance's level is removed: one mean over its loud
    frames and every feature, no variance (the features keep their shape across bands, for a
    normalisation with fixed statistics after it, which a short utterance cannot skew).

    Args:
        speech_db: float or None. Frames within this many dB (of the features' scale: log-mel
            in dB) of the loudest frame count as speech.
        per_feature: bool. Mean and variance per feature (CMVN), or one level per utterance.
        epsilon: float. Added to the variance.
    """

    def __init__(self, speech_db=None, per_feature=True, epsilon=1e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.speech_db = None if speech_db is None else float(speech_db)
        self.per_feature = bool(per_feature)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x, lengths = inputs
        valid = frame_mask(lengths, ops.shape(x)[1])
        weights = valid
        if self.speech_db is not None:
            level = ops.where(valid, ops.max(x, axis=2), -1e9)           # [batch, frames]
            loud = ops.logical_and(
                valid, level >= ops.max(level, axis=1, keepdims=True) - self.speech_db)
            weights = ops.where(ops.any(loud, axis=1, keepdims=True), loud, valid)
        w = ops.cast(weights, x.dtype)[:, :, None]
        keep = ops.cast(valid, x.dtype)[:, :, None]
        if not self.per_feature:
            level = ops.sum(x * w, axis=(1, 2), keepdims=True) / ops.maximum(
                ops.sum(w, axis=(1, 2), keepdims=True) * x.shape[2], 1.0)
            return (x - level) * keep
        count = ops.maximum(ops.sum(w, axis=1, keepdims=True), 1.0)
        mean = ops.sum(x * w, axis=1, keepdims=True) / count
        var = ops.sum(ops.square(x - mean) * w, axis=1, keepdims=True) / count
        return (x - mean) * ops.rsqrt(var + self.epsilon) * ops.cast(valid, x.dtype)[:, :, None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "speech_db": self.speech_db,
                "per_feature": self.per_feature, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable("mmzoo")
class SpecAugment(keras.layers.Layer):
    """SpecAugment's time and frequency masking (Park et al. 2019), in training only.

    `[features [batch, frames, bins], lengths]` -> features with, per utterance,
    `time_masks` runs of up to `max_time` frames (and at most `max_time_share` of its valid
    frames) and `freq_masks` runs of up to `max_freq` bins set to zero (the mean, after
    `UtteranceNormalization`). At inference it is the identity.

    Args:
        time_masks: int. Time masks per utterance.
        max_time: int. Longest time mask, in frames.
        max_time_share: float. Longest time mask as a share of the utterance's frames.
        freq_masks: int. Frequency masks per utterance.
        max_freq: int. Widest frequency mask, in bins.
        seed: int or None. Seed of the masks.
    """

    def __init__(self, time_masks=2, max_time=10, max_time_share=0.1, freq_masks=2,
                 max_freq=6, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.max_time = int(time_masks), int(max_time)
        self.max_time_share = float(max_time_share)
        self.freq_masks, self.max_freq = int(freq_masks), int(max_freq)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _runs(self, count, limit, size, batch, width_max):
        """Boolean `[batch, size]`: `count` runs per row of width < min(limit, width_max)."""
        keep = ops.ones((batch, size), "bool")
        positions = ops.arange(size)[None, :]
        for _ in range(count):
            u = keras.random.uniform((batch, 2), seed=self.seed_generator)
            width = ops.cast(u[:, 0] * ops.cast(ops.minimum(width_max, limit), "float32"),
                             "int32")
            start = ops.cast(u[:, 1] * ops.cast(ops.maximum(limit - width, 1), "float32"),
                             "int32")
            run = ops.logical_and(positions >= start[:, None],
                                  positions < (start + width)[:, None])
            keep = ops.logical_and(keep, ops.logical_not(run))
        return keep

    def call(self, inputs, training=False):
        x, lengths = inputs
        if not training:
            return x
        batch, frames, bins = ops.shape(x)[0], ops.shape(x)[1], x.shape[2]
        lengths = ops.cast(lengths, "int32")
        share = ops.cast(ops.cast(lengths, "float32") * self.max_time_share, "int32")
        time_keep = self._runs(self.time_masks, lengths, frames, batch,
                               ops.minimum(share, self.max_time))
        freq_keep = self._runs(self.freq_masks, ops.full((batch,), bins, "int32"), bins, batch,
                               ops.full((batch,), self.max_freq, "int32"))
        keep = ops.logical_and(time_keep[:, :, None], freq_keep[:, None, :])
        return ops.where(keep, x, ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks,
                "max_time": self.max_time, "max_time_share": self.max_time_share,
                "freq_masks": self.freq_masks, "max_freq": self.max_freq, "seed": self.seed}


@keras.saving.register_keras_serializable("mmzoo")
class CTCTokens(keras.layers.Layer):
    """Per-frame logits -> per-frame log-probabilities for CTC; carries the transcript tokens.

    `[logits [batch, frames, len(tokens) + 2], lengths]` -> log-softmax over the classes, where
    class 0 is CTC's blank (also the padding id of the targets, `keras.losses.CTC`'s
    `mask_index`), 1 the out-of-vocabulary token and `tokens[i]` class `i + 2`, as in
    `mmzoo.layers.Vocabulary`. On the padding frames (at or after `lengths`) the output is the
    blank with probability 1, so CTC loss and decoding over the padded length equal those over
    the utterance's own frames.

    Args:
        tokens: list of str. Characters (one of them `" "`, the word separator) or words.
        unit: str. `characters` (transcript = the tokens joined, then spaces normalised) or
            `words` (transcript = the tokens joined by spaces).

    Examples:
    ```python
    log_probs = mmzoo.layers.CTCTokens(list(" abc"), name="frames")([logits, frame_lengths])
    ```
    """

    UNITS = ("characters", "words")

    def __init__(self, tokens, unit="characters", **kwargs):
        kwargs.setdefault("dtype", "float32")  # log-probabilities stay float32
        super().__init__(**kwargs)
        self.tokens = [str(t) for t in tokens]
        self.unit = unit
        if unit not in self.UNITS:
            raise InvalidValue(f"CTCTokens: unit must be one of {list(self.UNITS)}, got {unit!r}")
        reserved = [t for t in self.tokens if t in (PAD, OOV)]
        if reserved or len(set(self.tokens)) != len(self.tokens):
            raise InvalidValue(f"CTCTokens: tokens must be unique and not {[PAD, OOV]}")
        if unit == "characters" and any(len(t) != 1 for t in self.tokens):
            raise InvalidValue("CTCTokens: with unit='characters' every token is one character, "
                               f"got {[t for t in self.tokens if len(t) != 1][:5]}")
        if unit == "words" and any(not t.strip() or t.split() != [t] for t in self.tokens):
            raise InvalidValue("CTCTokens: with unit='words' every token is one word (no "
                               f"spaces), got {[t for t in self.tokens if t.split() != [t]][:5]}; "
                               "adapt the tokens with the same unit (mmzoo.data.adapt(..., "
                               "config={'unit': 'words'}))")

    @property
    def size(self):
        """Number of classes: blank, out-of-vocabulary and the tokens."""
        return len(self.tokens) + 2

    def call(self, inputs, mask=None):  # the frames' mask is `lengths`; Keras' is consumed here
        logits, lengths = inputs
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        blank = ops.where(ops.equal(ops.arange(self.size), 0), 0.0, -1e4)
        mask = frame_mask(lengths, ops.shape(log_probs)[1])[:, :, None]
        return ops.where(mask, log_probs, ops.cast(blank, "float32")[None, None, :])

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "tokens": list(self.tokens), "unit": self.unit}
