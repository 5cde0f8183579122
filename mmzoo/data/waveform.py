"""Waveform resampling, length fitting and training augmentation (time shift, gain, noise,
speed)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def resample(wave, rate, target):
    """`wave` (`[samples]` or `[batch, samples]`) read at `rate` Hz, resampled to `target` Hz
    with librosa's default resampler (the one `librosa.load(sr=...)` uses, so a file read at the
    model's rate and one resampled here agree). `rate` may be a Python int or a scalar tensor;
    equal rates return `wave` unchanged."""
    import librosa

    wave = tf.convert_to_tensor(wave, tf.float32)
    if isinstance(rate, int):
        if rate == target:
            return wave
        rate = tf.constant(rate)

    def convert(y, orig):
        return librosa.resample(y, orig_sr=int(orig), target_sr=int(target)).astype("float32")

    def resampled():
        out = tf.numpy_function(convert, [wave, rate], tf.float32, stateful=False)
        return tf.ensure_shape(out, wave.shape[:-1].as_list() + [None])

    return tf.cond(tf.equal(tf.cast(rate, tf.int64), target), lambda: wave, resampled)


MAX_CLIP_SECONDS = 10.0  # the longest clip length a run chooses from its data
CLIP_COVERS = 99  # ... chosen to hold this percentage of the training clips whole
CLIP_STEP = 0.25  # ... rounded up to a multiple of this (seconds)


def choose_clip_seconds(seconds):
    """The clip length (seconds) a run of an audio model takes when the user gave none: the
    length that holds `CLIP_COVERS`% of the training clips whole (`seconds`, their lengths),
    rounded up to a multiple of `CLIP_STEP`, within [`CLIP_STEP`, `MAX_CLIP_SECONDS`]."""
    covers = float(np.percentile(np.asarray(seconds, float), CLIP_COVERS))
    return float(min(max(np.ceil(covers / CLIP_STEP - 1e-9) * CLIP_STEP, CLIP_STEP),
                     MAX_CLIP_SECONDS))


def cut_line(seconds, clip, what, fix=True):
    """One line saying how many clips of `seconds` (their lengths) are longer than `clip` and
    cut to their loudest `clip` seconds (and, with `fix`, the `--set` that keeps them whole),
    or None when none is."""
    longer = [s for s in seconds if s > clip + 1e-6]
    if not longer:
        return None
    keep = -(-max(longer) // CLIP_STEP) * CLIP_STEP
    line = (f"audio: {len(longer):,} of {len(seconds):,} {what} are longer than the clip "
            f"length {clip:g} s (up to {max(longer):.2f} s) and are cut to their loudest "
            f"{clip:g} s")
    return line + (f"; --set clip_seconds={keep:g} keeps them whole" if fix else "")


CROP = "loudest"  # the rule `fit_length` cuts by (caches of prepared audio are keyed by it)
CROP_BLOCKS = 32  # a clip's loudest window is found in steps of 1/32 of the model's length


def fit_length(wave, length):
    """Fit waveforms to `length` samples along the last axis: a shorter clip is centred and
    zero-padded on both sides; a longer one is cut to its loudest `length` samples (the window
    of most energy, found in steps of `length / 32` samples), so the part of the clip where the
    sound is stays, wherever it is in the clip (a voice note's word in its first half second,
    then seconds of quiet). Takes one waveform `[samples]` or a batch `[batch, samples]`, each
    row fitted on its own content: trailing zero samples (the padding that batches clips of
    different lengths together) are not part of a clip, so a clip alone and the same clip
    zero-padded in a batch come out the same. The pipeline, the SavedModel and the portable
    graphs all cut by this one function."""
    wave = tf.convert_to_tensor(wave, tf.float32)
    single = wave.shape.rank == 1
    rows = tf.pad(wave[None] if single else wave, [[0, 0], [0, 1]])  # never empty
    n = content_lengths(rows)
    offset = tf.where(n > length, loudest_start(rows, n, length),
                      -(tf.maximum(length - n, 0) // 2))
    at = tf.range(length)[None, :] + offset[:, None]          # [rows, length]
    inside = (at >= 0) & (at < n[:, None])
    picked = tf.gather(rows, tf.clip_by_value(at, 0, tf.shape(rows)[1] - 1), batch_dims=1)
    out = tf.where(inside, picked, tf.zeros_like(picked))
    out = out[0] if single else out
    return tf.ensure_shape(out, wave.shape[:-1].as_list() + [length])


TIED = 1e-3  # windows within this share of the loudest one's energy are taken as equal


def loudest_start(rows, n, length):
    """The first sample (int32 `[batch]`) of the window of `length` samples with the most
    energy in each waveform of `rows` `[batch, samples]` holding `n` samples of content; 0
    where `n <= length`. Energies are summed over blocks of `length // CROP_BLOCKS` samples and
    the window slides a block at a time (a convolution over the blocks' energies), its last
    place at the content's end. Windows within `TIED` of the loudest (every window holding the
    whole of a short sound, told apart only by the quiet around it) are one: the middle of them
    is taken, so the sound is centred, the same in every runtime."""
    block = max(1, length // CROP_BLOCKS)
    width = max(1, length // block)
    total = tf.shape(rows)[1]
    blocks = (total + block - 1) // block
    energy = tf.square(tf.pad(rows, [[0, 0], [0, blocks * block - total]]))
    energy = tf.reduce_sum(tf.reshape(energy, [tf.shape(rows)[0], blocks, block]), axis=2)
    energy = tf.pad(energy, [[0, 0], [0, width]])            # at least one full window
    windows = tf.nn.conv1d(energy[:, :, None], tf.ones([width, 1, 1]), 1, "VALID")[:, :, 0]
    starts = tf.range(tf.shape(windows)[1])[None, :] * block
    allowed = starts < (n - length + block)[:, None]          # the last one moved to n - length
    windows = tf.where(allowed, windows, -1.0)
    loudest = tf.reduce_max(windows, axis=1, keepdims=True)
    tied = tf.cast(allowed & (windows >= loudest * (1.0 - TIED)), tf.int32)
    first = tf.argmax(tied, axis=1, output_type=tf.int32)
    last = tf.shape(tied)[1] - 1 - tf.argmax(tf.reverse(tied, [1]), axis=1,
                                             output_type=tf.int32)
    start = tf.minimum((first + last) // 2 * block, n - length)
    return tf.where(n > length, start, 0)


def content_lengths(rows):
    """Samples of each waveform of `[batch, samples]` up to its last non-zero sample (int32
    `[batch]`; 0 for silence)."""
    positions = tf.range(1, tf.shape(rows)[1] + 1)[None, :]
    return tf.reduce_max(tf.where(tf.not_equal(rows, 0.0), positions, 0), axis=1)


def augment(wave, sample_rate, *, max_shift=0.1, gain_db=6.0, noise_prob=0.5,
            snr_db=(15.0, 40.0)):
    """Randomly shifted, scaled and noised copies of fixed-length waveforms, each drawn apart.

    Takes one waveform `[samples]` or a batch `[batch, samples]`; the pipeline augments whole
    batches (a handful of vectorised ops per batch instead of per clip: measured 30% of an
    `audio_mfcc_cnn` training step when done clip by clip).

    Args:
        wave: float32 tensor `[samples]` or `[batch, samples]`.
        sample_rate: int. Samples per second.
        max_shift: float. Largest shift, in seconds, either way (the gap is zero-filled).
        gain_db: float. Gain drawn uniformly from +-`gain_db` dB.
        noise_prob: float. Chance of adding white noise.
        snr_db: (float, float). Signal-to-noise ratio range of that noise, in dB.
    """
    wave = tf.convert_to_tensor(wave, tf.float32)
    if wave.shape.rank == 1:
        return augment(wave[None], sample_rate, max_shift=max_shift, gain_db=gain_db,
                       noise_prob=noise_prob, snr_db=snr_db)[0]
    length = wave.shape[-1]
    batch = tf.shape(wave)[0]
    shift = int(max_shift * sample_rate)
    if shift:
        offset = tf.random.uniform([batch, 1], 0, 2 * shift + 1, dtype=tf.int32)
        index = offset + tf.range(length)[None]
        wave = tf.gather(tf.pad(wave, [[0, 0], [shift, shift]]), index, batch_dims=1)
    wave = wave * 10.0 ** (tf.random.uniform([batch, 1], -gain_db, gain_db) / 20.0)
    rms = tf.sqrt(tf.reduce_mean(tf.square(wave), axis=1, keepdims=True) + 1e-12)
    snr = tf.random.uniform([batch, 1], *snr_db)
    # white noise of unit variance, uniform rather than Gaussian: a third of the cost per batch
    noise = tf.random.uniform(tf.shape(wave), -3.0 ** 0.5, 3.0 ** 0.5) * rms * 10.0 ** (-snr / 20)
    wave = tf.where(tf.random.uniform([batch, 1]) < noise_prob, wave + noise, wave)
    return tf.ensure_shape(wave, [None, length])


def augment_mfcc(mfcc, frame_rate, n_mels, *, max_shift=0.1, gain_db=6.0, time_masks=2,
                 max_time=8, coefficient_masks=1, max_coefficients=2):
    """Randomly shifted, scaled and masked copies of a batch of MFCCs, each clip drawn apart:
    the augmentation of MFCCs computed once from the waveforms as read (and cached), in place of
    `augment` on the waveforms (SpecAugment, Park et al. 2019, on cepstra).

    - time shift: the frames rolled by up to `max_shift` seconds either way (a clip padded with
      silence, as the pipeline centres them, moves within its silence);
    - gain within +-`gain_db` dB: exact on MFCCs, since +g dB on every mel band adds
      `g * sqrt(n_mels)` to c0 under the orthonormal DCT and leaves the other coefficients;
    - `time_masks` runs of up to `max_time` frames and `coefficient_masks` runs of up to
      `max_coefficients` coefficients set to the clip's mean of each coefficient.

    White noise, which `augment` adds to waveforms, has no exact equivalent on MFCCs: the masks
    take its place.

    Args:
        mfcc: float32 tensor `[batch, frames, n_mfcc]`.
        frame_rate: float. Frames per second (sample rate / hop length).
        n_mels: int. Mel bands the MFCCs were computed from.
    """
    x = tf.convert_to_tensor(mfcc, tf.float32)
    batch, frames, coefficients = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    shift = int(max_shift * frame_rate)
    if shift:
        offset = tf.random.uniform([batch, 1], -shift, shift + 1, dtype=tf.int32)
        x = tf.gather(x, (tf.range(frames)[None] - offset) % frames, batch_dims=1)
    gain = tf.random.uniform([batch, 1, 1], -gain_db, gain_db) * float(n_mels) ** 0.5
    x = x + gain * tf.one_hot(0, coefficients)[None, None]
    keep = (_kept(batch, frames, time_masks, max_time)[:, :, None]
            & _kept(batch, coefficients, coefficient_masks, max_coefficients)[:, None, :])
    x = tf.where(keep, x, tf.reduce_mean(x, axis=1, keepdims=True))
    return tf.ensure_shape(x, [None, None, coefficients])


def _kept(batch, size, runs, longest):
    """Boolean `[batch, size]`: False on `runs` runs per row of 0 to `longest` positions."""
    keep = tf.ones([batch, size], tf.bool)
    positions = tf.range(size)[None]
    for _ in range(runs):
        width = tf.random.uniform([batch, 1], 0, longest + 1, dtype=tf.int32)
        room = tf.cast(tf.maximum(size - width, 0) + 1, tf.float32)
        start = tf.cast(tf.random.uniform([batch, 1]) * room, tf.int32)
        keep &= ~((positions >= start) & (positions < start + width))
    return keep


def perturb_speed(wave, sample_rate, *, low=0.9, high=1.1):
    """One waveform `[samples]` played faster or slower by a factor drawn from [`low`,
    `high`]: speed perturbation (Ko et al. 2015, Kaldi's 0.9/1.0/1.1 recipe), which changes
    tempo and pitch together, as another speaker's voice differs. It resamples the waveform as
    if it had been recorded at `factor * sample_rate` (librosa's resampler, `resample`)."""
    factor = tf.random.uniform([], low, high)
    rate = tf.cast(tf.round(factor * sample_rate), tf.int32)
    return resample(wave, rate, sample_rate)
