"""Speech to text: a CTC recogniser on raw waveforms of any length, with greedy and beam-search
decoding (`keras.ops.ctc_decode`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
import numpy as np
from keras import layers, ops

from mmzoo.blocks.speech import bilstm_stack, conv_subsampling, speech_frontend, transformer_stack
from mmzoo.errors import InvalidValue
from mmzoo.layers.speech import CTCTokens, FrameMask
from mmzoo.registry import register

LETTERS = tuple(" abcdefghijklmnopqrstuvwxyz")


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
    """A CTC recogniser: front end, convolutional subsampling, encoder, per-frame softmax.

    `tokens` are adapted on the training transcripts (`mmzoo.data.adapt`): their characters
    (`unit="characters"`, `" "` separating words) or their words (`unit="words"`, a closed
    vocabulary). `unit="auto"` (the default) lets `adapt` choose: words when the training
    transcripts use at most `mmzoo.data.adapt.WORDS_UNIT_MAX` (100) distinct words (digits,
    commands), else characters; a model built with `auto` and no adapted tokens reads
    characters. The waveform is at `sample_rate`, of any length.

    Defaults, as measured on FSDD digit sequences with one speaker held out of training
    (`bench/quality.py --model speech_ctc_unseen_speaker`, and `..._characters`): words and
    `global` normalisation made 19.8% WER on the unheard speaker, characters and per-utterance
    normalisation 21.6% (and misspelt words).

    `mmzoo.train` halves the learning rate after `lr_patience` epochs without a lower
    validation loss (`keras.callbacks.ReduceLROnPlateau`, `lr_factor`, down to
    `min_learning_rate`; `lr_patience=0` keeps it constant): CTC's validation loss swings from
    epoch to epoch at a constant rate, and the last epochs settle at a lower one.
    """

    tokens: tuple[str, ...] = LETTERS
    unit: Literal["auto", "characters", "words"] = "auto"
    sample_rate: int = 8000
    features: Literal["log_mel", "mfcc"] = "log_mel"
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    n_mfcc: int = 20
    normalization: Literal["utterance", "global"] = "global"
    spec_augment: bool = True
    conv_filters: int = 32
    strides: tuple[int, ...] = (2, 2)
    units: int = 128
    num_layers: int = 2
    dropout: float = 0.2
    learning_rate: float = 1e-3
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5


@dataclasses.dataclass(frozen=True)
class SpeechTransformerConfig(SpeechConfig):
    """`speech_ctc` with a Transformer encoder (keras_hub layers) in place of the BiLSTMs."""

    units: int = 128
    num_heads: int = 4
    intermediate_dim: int = 256
    num_layers: int = 4
    dropout: float = 0.1
    learning_rate: float = 5e-4


TINY_SPEECH = {"n_mels": 16, "n_mfcc": 8, "conv_filters": 4, "units": 8, "num_layers": 1,
               "tokens": tuple(" abcdefgh")}


@register("speech_ctc", task="transcription", inputs=("audio",), config=SpeechConfig,
          test_config=TINY_SPEECH)
def speech_ctc(cfg):
    """Log-mel + conv subsampling + BiLSTMs + CTC: speech to text, any length."""
    return _recogniser(cfg, "speech_ctc", "bilstm")


@register("speech_ctc_transformer", task="transcription", inputs=("audio",),
          config=SpeechTransformerConfig,
          test_config={**TINY_SPEECH, "num_heads": 2, "intermediate_dim": 16})
def speech_ctc_transformer(cfg):
    """Log-mel + conv subsampling + Transformer encoder (keras_hub) + CTC: speech to text."""
    return _recogniser(cfg, "speech_ctc_transformer", "transformer")


def _recogniser(cfg, name, encoder):
    audio = keras.Input(shape=(None,), name="audio")
    x, lengths = speech_frontend(audio, sample_rate=cfg.sample_rate, features=cfg.features,
                                 n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                                 n_mfcc=cfg.n_mfcc, normalization=cfg.normalization,
                                 spec_augment=cfg.spec_augment)
    x, lengths = conv_subsampling(x, lengths, filters=cfg.conv_filters, strides=cfg.strides,
                                  units=cfg.units)
    mask = FrameMask(name="encoder_mask")([x, lengths])
    if encoder == "bilstm":
        x = bilstm_stack(x, mask, units=cfg.units, num_layers=cfg.num_layers, dropout=cfg.dropout)
    else:
        x = transformer_stack(x, mask, num_heads=cfg.num_heads,
                              intermediate_dim=cfg.intermediate_dim, num_layers=cfg.num_layers,
                              dropout=cfg.dropout)
    tokens = CTCTokens(cfg.tokens, unit=resolve_unit(cfg.unit, cfg.tokens), name="frames")
    logits = layers.Dense(tokens.size, name="ctc_logits")(x)
    out = tokens([logits, lengths])
    model = keras.Model({"audio": audio}, out, name=name)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=5.0),
                  loss=keras.losses.CTC())
    return model


def resolve_unit(unit, tokens):
    """`unit`, with `auto` resolved by the tokens: characters when each is one character (the
    default letters), else words (as `mmzoo.data.adapt` chose them)."""
    if unit != "auto":
        return unit
    return "characters" if all(len(t) == 1 for t in tokens) else "words"


DECODERS = ("greedy", "beam")


# The beam width the bench reports and the SavedModel serves (`serving_default`).
BEAM_WIDTH = 16


def decode_ids(log_probs, method="greedy", *, beam_width=BEAM_WIDTH):
    """Token ids `[batch, frames]` (-1 past the end) of per-frame log-probabilities, decoded
    with `keras.ops.ctc_decode` (blank is class 0): `greedy` (best class per frame, repeats
    merged, blanks dropped) or `beam` (`beam_search` with `beam_width` beams, the best path)."""
    if method not in DECODERS:
        raise InvalidValue(f"unknown decoding method {method!r}; use one of {list(DECODERS)}")
    log_probs = ops.convert_to_tensor(log_probs)
    batch, frames = ops.shape(log_probs)[0], ops.shape(log_probs)[1]
    lengths = ops.full((batch,), frames, "int32")  # padding frames are a certain blank
    strategy = "greedy" if method == "greedy" else "beam_search"
    decoded, _ = ops.ctc_decode(log_probs, lengths, strategy=strategy, beam_width=beam_width,
                                top_paths=1, mask_index=0)
    return decoded[0]


def pad_waveforms(waveforms):
    """A list of 1-D waveforms -> float32 `[batch, longest]`, zero-padded at the end."""
    waveforms = [np.asarray(w, dtype="float32").reshape(-1) for w in waveforms]
    out = np.zeros((len(waveforms), max((len(w) for w in waveforms), default=0)), "float32")
    for i, w in enumerate(waveforms):
        out[i, :len(w)] = w
    return out


def transcribe(model, waveforms, method="greedy", *, beam_width=BEAM_WIDTH):
    """Transcripts of waveforms at the model's sample rate, any lengths.

    Args:
        model: keras.Model. A `speech_ctc` model (or any transcriber of `mmzoo.contract`).
        waveforms: list of 1-D float arrays (zero-padded together here), or a float array
            `[batch, samples]` already zero-padded at the end.
        method: str. `greedy` or `beam`.
        beam_width: int. Beams for `beam`.

    Returns:
        A list of str, words separated by single spaces.

    Examples:
    ```python
    mmzoo.models.transcription.transcribe(model, [wave_a, wave_b], "beam")  # ['three one', ...]
    ```
    """
    from mmzoo.data.preprocessor import Preprocessor

    audio = pad_waveforms(waveforms) if isinstance(waveforms, (list, tuple)) else \
        np.asarray(waveforms, dtype="float32")
    log_probs = model({"audio": ops.convert_to_tensor(audio)}, training=False)
    ids = decode_ids(log_probs, method, beam_width=beam_width)
    strings = Preprocessor(model).transcript_strings(ops.convert_to_numpy(ids))
    return [s.decode() for s in strings.numpy()]


__all__ = ["DECODERS", "decode_ids", "pad_waveforms", "speech_ctc", "speech_ctc_transformer",
           "transcribe"]
