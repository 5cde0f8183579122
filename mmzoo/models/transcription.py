"""Speech to text: a CTC recogniser on raw waveforms of any length (decoded by
`mmzoo.tasks.transcription`: greedy and beam search, `keras.ops.ctc_decode`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
from keras import layers

from mmzoo.blocks.speech import bilstm_stack, conv_subsampling, speech_frontend, transformer_stack
from mmzoo.layers.speech import CTCTokens, FrameMask
from mmzoo.registry import register

LETTERS = tuple(" abcdefghijklmnopqrstuvwxyz")


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
    """A CTC recogniser: front end, convolutional subsampling, encoder, per-frame softmax.

    `tokens` are adapted on the training transcripts (`mmzoo.data.adapt`): their characters
    (`unit="characters"`, `" "` separating words) or their words (`unit="words"`, a closed
    vocabulary). `unit="auto"` (the default) lets `adapt` choose: words when the training
    transcripts use at most `mmzoo.tasks.transcription.WORDS_UNIT_MAX` (100) distinct words (digits,
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
          test_config=TINY_SPEECH,
          limits=(
                  "On a speaker it never heard it is much worse than on its training speakers "
                  "(FSDD: 19.8% WER on a held-out speaker against 0.7% on heard ones); train on "
                  "many speakers for other voices.",))
def speech_ctc(cfg):
    """Log-mel + conv subsampling + BiLSTMs + CTC: speech to text, any length."""
    return _recogniser(cfg, "speech_ctc", "bilstm")


@register("speech_ctc_transformer", task="transcription", inputs=("audio",),
          config=SpeechTransformerConfig,
          test_config={**TINY_SPEECH, "num_heads": 2, "intermediate_dim": 16},
          limits=(
                  "Behind the BiLSTM `speech_ctc` (7.6% test WER against 0.67% on FSDD after 30 "
                  "epochs).",))
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


__all__ = ["resolve_unit", "speech_ctc", "speech_ctc_transformer"]
