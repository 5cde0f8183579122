"""Text standardisation and tokenisation shared by `adapt`, `pipeline` and the exported graph."""

from __future__ import annotations

import keras
import tensorflow as tf

# Anything but letters and digits separates words: "second\\team" -> "second team",
# "Ansari X-Prize." -> "ansari x prize".
NON_WORD = r"[^\p{L}\p{N}]+"


def standardize(text):
    """Lower-case (every script's letters: `École` is `école`) and turn every run of
    non-letters/digits into one space (a tf.string op)."""
    lower = tf.strings.lower(text, encoding="utf-8")
    return tf.strings.strip(tf.strings.regex_replace(lower, NON_WORD, " "))


def vectorizer(vocabulary=None, *, sequence_length=None, ragged=False, max_tokens=None,
               ngrams=1):
    """A `keras.layers.TextVectorization` with mmzoo's `standardize` and whitespace split
    (`ngrams=2`: the words, then the pairs of neighbouring words, as fastText reads text)."""
    return keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardize, split="whitespace",
        vocabulary=vocabulary, output_sequence_length=sequence_length, ragged=ragged,
        ngrams=ngrams if ngrams > 1 else None)
