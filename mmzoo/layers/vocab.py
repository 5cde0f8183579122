"""Layers that carry a model's data-dependent vocabularies inside its graph.

A zoo model takes token ids and returns class scores, so it trains on any backend and device.
The strings those ids and scores stand for (the token vocabulary adapted on the training split,
the class names) travel with the model in these two layers: they are part of the saved
`.keras` file, show in `summary()`, and are what `mmzoo.data.pipeline` tokenizes with and what
`mmzoo.export` turns back into strings. On the tensors they are the identity.
"""

from __future__ import annotations

import json
import os

import keras
from keras import ops

from mmzoo.errors import InvalidValue

PAD, OOV = "", "[UNK]"
# The caption vocabulary's first two tokens: a decoder's prompt starts with the one, a caption
# ends with the other.
START, END = "[start]", "[end]"


@keras.saving.register_keras_serializable("mmzoo")
class Vocabulary(keras.layers.Layer):
    """Token ids in, the same ids out; carries the vocabulary the ids index.

    Id 0 is padding and id 1 the out-of-vocabulary token, as in `keras.layers.TextVectorization`;
    `tokens[i]` has id `i + 2`.

    The tokens are saved as an asset of the `.keras` file (`tokens.json`), as KerasHub's
    tokenizers save their vocabularies, not in the model's `config.json`: a vocabulary adapted
    on a big corpus stays out of the architecture's description.

    Args:
        tokens: list of str. The vocabulary, without the padding and OOV entries (None when the
            layer is rebuilt from its config; loading the `.keras` file restores them).
        ngrams: int. The longest word n-gram among the tokens (2: words and word pairs, as
            `keras.layers.TextVectorization(ngrams=2)` makes them: the text's words, then its
            pairs of neighbouring words `"new york"`); the tokenizer must make the same.

    Examples:
    ```python
    ids = keras.Input(shape=(12,), dtype="int32", name="question")
    x = mmzoo.layers.Vocabulary(["what", "color", "is"], name="question_vocabulary")(ids)
    ```
    """

    ASSET = "tokens.json"

    def __init__(self, tokens=None, ngrams=1, **kwargs):
        super().__init__(**kwargs)
        self.tokens = None if tokens is None else self._checked(tokens)
        self.ngrams = int(ngrams)

    @staticmethod
    def _checked(tokens):
        tokens = [str(t) for t in tokens]
        reserved = [t for t in tokens if t in (PAD, OOV)]
        if reserved:
            raise InvalidValue(f"Vocabulary: tokens must not contain the reserved {reserved}")
        if len(set(tokens)) != len(tokens):
            raise InvalidValue("Vocabulary: tokens must be unique")
        return tokens

    @property
    def size(self):
        """Number of ids, padding and OOV included (the embedding's `input_dim`)."""
        return len(self.tokens) + 2

    def call(self, ids):
        return ops.cast(ids, "int32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, self.ASSET), "w", encoding="utf-8") as f:
            json.dump(self.tokens, f, ensure_ascii=False)

    def load_assets(self, dir_path):
        with open(os.path.join(dir_path, self.ASSET), encoding="utf-8") as f:
            self.tokens = self._checked(json.load(f))

    def get_config(self):
        # the tokens are in the assets (`save_assets`)
        return {**super().get_config(), "tokens": None, "ngrams": self.ngrams}


@keras.saving.register_keras_serializable("mmzoo")
class LabelNames(keras.layers.Layer):
    """Class scores in, the same scores out; carries the class names, in score order.

    Args:
        names: list of str. `names[i]` is the class of score `i`.

    Examples:
    ```python
    scores = mmzoo.layers.LabelNames(["no", "yes"], name="scores")(probabilities)
    ```
    """

    def __init__(self, names, **kwargs):
        kwargs.setdefault("dtype", "float32")  # scores stay float32 under mixed precision
        super().__init__(**kwargs)
        self.names = [str(n) for n in names]
        if len(set(self.names)) != len(self.names):
            raise InvalidValue(f"LabelNames: names must be unique, got {self.names}")

    def call(self, scores):
        return scores

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "names": list(self.names)}


@keras.saving.register_keras_serializable("mmzoo")
class HubTokenizer(keras.layers.Layer):
    """Token ids in, the same ids out; carries the KerasHub tokenizer the ids come from.

    The text input's layer (named `{input}_vocabulary`, like `Vocabulary`) when the text encoder
    is a KerasHub preset: `ids` turns strings into the ids the preset's backbone was trained on
    (the tokenizer, then `[CLS] ... [SEP]`-style packing with its start, end and padding ids),
    which `mmzoo.data.Preprocessor` and the exported serving graph use.

    Args:
        tokenizer: keras_hub.tokenizers.Tokenizer. The preset's tokenizer.

    Examples:
    ```python
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset("bert_tiny_en_uncased")
    ids = mmzoo.layers.HubTokenizer(tokenizer, name="text_vocabulary")(text_ids)
    ```
    """

    def __init__(self, tokenizer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.tokenizer = tokenizer

    @property
    def pad_id(self):
        """The padding id (0 for BERT's WordPiece)."""
        return int(getattr(self.tokenizer, "pad_token_id", 0) or 0)

    def ids(self, strings, sequence_length):
        """Strings `[batch]` -> int32 ids `[batch, sequence_length]`, packed with the tokenizer's
        start and end tokens where it has them and padded with its padding id."""
        import keras_hub

        start = getattr(self.tokenizer, "start_token_id", None)
        end = getattr(self.tokenizer, "end_token_id", None)
        packer = keras_hub.layers.StartEndPacker(sequence_length=sequence_length,
                                                 start_value=start, end_value=end,
                                                 pad_value=self.pad_id, return_padding_mask=False)
        return ops.cast(packer(self.tokenizer(strings)), "int32")

    def build(self, input_shape):
        self.built = True   # the tokenizer holds lookup tables, no weights

    def call(self, ids):
        return ops.cast(ids, "int32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer)}


def walk_layers(model):
    """Every layer of `model`, those of nested models included (depth first)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def model_vocabulary(model, input_name):
    """The tokens of the `Vocabulary` layer that reads `input_name`, or None when it has none
    (`mmzoo.contract.vocabulary` raises instead)."""
    layer = _text_layer(model, input_name)
    if isinstance(layer, HubTokenizer):
        return list(layer.tokenizer.get_vocabulary())
    return None if layer is None else list(layer.tokens)


def model_ngrams(model, input_name):
    """The longest word n-gram the `Vocabulary` of `input_name` holds (1 without one)."""
    layer = _text_layer(model, input_name)
    return getattr(layer, "ngrams", 1) if isinstance(layer, Vocabulary) else 1


def hub_tokenizer(model, input_name):
    """The `HubTokenizer` layer of text input `input_name`, or None (a `Vocabulary` reads it)."""
    layer = _text_layer(model, input_name)
    return layer if isinstance(layer, HubTokenizer) else None


def _text_layer(model, input_name):
    """The `Vocabulary` or `HubTokenizer` layer named `{input_name}_vocabulary`, or None."""
    for layer in walk_layers(model):
        if isinstance(layer, (Vocabulary, HubTokenizer)) and \
                layer.name == f"{input_name}_vocabulary":
            return layer
    return None


def model_labels(model):
    """The class names carried by the model's `LabelNames` layer, or None when it has none
    (`mmzoo.contract.labels` raises instead)."""
    for layer in walk_layers(model):
        if isinstance(layer, LabelNames):
            return list(layer.names)
    return None
