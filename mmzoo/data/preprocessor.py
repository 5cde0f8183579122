"""`Preprocessor`: the steps from raw inputs to one model's inputs, written once.

`mmzoo.data.pipeline` (training and evaluation), `mmzoo.evaluate` and the serving graph of
`mmzoo.export` all go through a model's `Preprocessor` (KerasHub's habit: one preprocessor per
model, used for `fit` and for export), so the numbers a model sees cannot drift between training
and serving. What it reads from the model goes through `mmzoo.contract`. A backbone that brings
its own preprocessing changes `Preprocessor.image` (or `text`) and nothing else.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mmzoo import contract
from mmzoo.data import waveform
from mmzoo.data.text import standardize, vectorizer
from mmzoo.errors import DATA_ERROR, InvalidValue
from mmzoo.layers.vocab import OOV, PAD, hub_tokenizer, model_ngrams


def decode_image(data):
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes (a scalar tf.string) -> uint8 `[height, width, 3]`
    (grey and palette images become RGB, the first frame of an animation is kept)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


class Preprocessor:
    """Raw inputs -> the inputs of `model`, and its outputs back to strings.

    - `image`: uint8 pixels `[height, width, channels]` (grey becomes RGB) resized to the
      model's size with antialiasing, rounded and kept as uint8 (what a cache holds);
      `model_inputs` makes them float32 in [0, 255], as the model takes them. `images` does
      both for a batch of encoded files (the export's input).
    - `text` / `question`: strings standardised (`mmzoo.data.text.standardize`: lower case, any
      run of characters other than letters and digits separates words), split on spaces and
      looked up in the vocabulary the model carries (0 padding, 1 out of vocabulary, token `i`
      is id `i + 2`), padded or cut to the model's length. Captions get `[start]`/`[end]` for
      teacher forcing (`teacher_forcing`) and come back from ids with `caption_strings`.
    - `audio`: a float32 waveform resampled to the model's rate (librosa's default resampler,
      as `librosa.load` uses) when it was read at another, then centred and zero-padded or
      cropped to the model's length (`mmzoo.data.waveform.fit_length`); a transcription model
      takes any length, so its audio is only resampled.
    - `transcript`: strings standardised like text, then split into the model's units
      (characters, or words) and looked up among its CTC tokens (`transcript_ids`); decoded
      ids come back as strings with `transcript_strings`.
    - labels: class names (or integers, written as strings) to class ids; an unknown one fails
      naming it.

    Args:
        model: keras.Model. A model built by `mmzoo.build` (or loaded from its `.keras` file).

    Examples:
    ```python
    pre = mmzoo.data.Preprocessor(model)
    ids = pre.text("question", tf.constant(["What shape is it?"]))   # [1, 12] int32
    pixels = pre.images(tf.constant([png_bytes]))                     # [1, 64, 64, 3] float32
    ```
    """

    def __init__(self, model):
        from mmzoo.registry import get_spec

        self.model = model
        self.spec = get_spec(model.name)
        self.task = self.spec.task
        self.shapes = contract.input_shapes(model)
        self.labels = contract.labels(model) if self.task in contract.LABELLED_TASKS else None
        self.sample_rate = contract.sample_rate(model) if "audio" in self.shapes else None
        self.captioner = contract.captioner(model) if self.task == "captioning" else None
        self.transcriber = (contract.transcriber(model) if self.task == "transcription"
                            else None)
        self._token_lookup = None
        self._tokenizers = {}
        self._label_lookup = None

    def identity(self):
        """What the model's preprocessing depends on, as a JSON-able dict: the model, its task,
        input shapes, vocabularies (digests), class names (digest), sample rate and
        transcription tokens. Caches of prepared examples are keyed by it (with the data)."""
        from mmzoo.artifacts import digest

        out = {"model": self.model.name, "task": self.task,
               "shapes": {k: list(v) for k, v in sorted(self.shapes.items())}}
        for name in self.shapes:
            if name not in contract.TEXT_INPUTS:
                continue
            hub = hub_tokenizer(self.model, name)
            if hub is not None:
                tokenizer = hub.tokenizer
                out[f"{name}_tokenizer"] = digest([type(tokenizer).__name__,
                                                   tokenizer.get_config(),
                                                   tokenizer.get_vocabulary()])
            else:
                out[f"{name}_vocabulary"] = digest(list(contract.vocabulary(self.model, name)))
        if self.labels is not None:
            out["labels"] = digest(list(self.labels))
        if self.sample_rate:
            out["sample_rate"] = int(self.sample_rate)
        if self.transcriber is not None:
            out["tokens"] = digest([list(self.transcriber.tokens), self.transcriber.unit])
        if self.captioner is not None:
            out["captions"] = digest([list(self.captioner.tokens), self.captioner.max_length])
        return out

    # --- images ---------------------------------------------------------------------------

    @property
    def image_size(self):
        """`(height, width)` of the model's images."""
        return self.shapes["image"][:2]

    def image(self, pixels):
        """One image `[height, width, 1 or 3]` (any dtype, values in [0, 255]) -> uint8
        `[model height, model width, 3]`."""
        pixels = tf.convert_to_tensor(pixels)
        if pixels.shape[-1] == 1:
            pixels = tf.image.grayscale_to_rgb(pixels)
        resized = tf.image.resize(pixels, self.image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    def images(self, encoded):
        """A batch of encoded image files (tf.string `[batch]`) -> float32 model images."""
        size = self.image_size
        pixels = tf.map_fn(lambda data: self.image(decode_image(data)), encoded,
                           fn_output_signature=tf.TensorSpec([*size, 3], tf.uint8))
        return self.model_inputs({"image": pixels})["image"]

    # --- text -----------------------------------------------------------------------------

    def tokenizer(self, name, *, ragged=False):
        """The `TextVectorization` layer for input `name` (`text`, `question`), with the model's
        vocabulary and length (`ragged=True`: unpadded, for captions); for a KerasHub text
        encoder, its tokenizer and packer (`mmzoo.layers.HubTokenizer.ids`)."""
        key = (name, ragged)
        if key not in self._tokenizers:
            hub = None if ragged else hub_tokenizer(self.model, name)
            if hub is not None:
                self._tokenizers[key] = hub
            else:
                tokens = contract.vocabulary(self.model, name)
                length = None if ragged else self.shapes[name][0]
                self._tokenizers[key] = vectorizer(
                    tokens, sequence_length=length, ragged=ragged,
                    ngrams=1 if ragged else model_ngrams(self.model, name))
        layer = self._tokenizers[key]
        if hasattr(layer, "ids"):
            return lambda strings: layer.ids(strings, self.shapes[name][0])
        return layer

    def text(self, name, strings):
        """Strings `[batch]` -> int32 token ids `[batch, length]` for input `name`."""
        return tf.cast(self.tokenizer(name)(strings), tf.int32)

    def teacher_forcing(self, captions):
        """Captions `[batch]` -> `(decoder input, target)` ids `[batch, max_length]`: input
        `[start] w1..wn`, target `w1..wn [end]`, each padded or cut to the decoder's length.
        The input holds no `[end]`, so its padding mask covers exactly the target tokens."""
        parts = self.captioner
        ids = self.tokenizer("text", ragged=True)(captions)
        n = ids.nrows()
        start = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(parts.start_id, ids.dtype)))
        end = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(parts.end_id, ids.dtype)))
        full = tf.concat([start, ids, end], axis=1)
        full = tf.cast(full.to_tensor(default_value=0, shape=[None, parts.max_length + 1]),
                       tf.int32)
        decoder_input = tf.where(full[:, :-1] == parts.end_id, 0, full[:, :-1])
        return decoder_input, full[:, 1:]

    def caption_strings(self, ids):
        """Caption ids `[batch, length]` (without the leading `[start]`) -> tf.string captions:
        the words up to the first `[end]` or padding, joined by single spaces."""
        parts = self.captioner
        words = tf.constant([PAD, OOV] + list(parts.tokens))
        ids = tf.convert_to_tensor(ids, tf.int32)
        stop = tf.logical_or(tf.equal(ids, parts.end_id), tf.equal(ids, 0))
        keep = tf.equal(tf.cumsum(tf.cast(stop, tf.int32), axis=1), 0)
        kept = tf.ragged.boolean_mask(tf.gather(words, ids), keep)
        return tf.strings.reduce_join(kept, axis=1, separator=" ")

    # --- audio ----------------------------------------------------------------------------

    def audio(self, wave, rate=None):
        """A waveform `[samples]` (or a batch) read at `rate` Hz -> the model's rate and length.

        `rate` None or a tensor equal to the model's rate: no resampling."""
        wave = tf.convert_to_tensor(wave, tf.float32)
        if rate is not None:
            wave = waveform.resample(wave, rate, self.sample_rate)
        if self.shapes["audio"][0] is None:  # any length (transcription)
            return wave
        return waveform.fit_length(wave, self.shapes["audio"][0])

    # --- transcripts ----------------------------------------------------------------------

    def transcript_units(self, strings):
        """Transcripts `[batch]` -> ragged units: the characters of the standardised text
        (words separated by one space) or its words."""
        clean = standardize(strings)
        if self.transcriber.unit == "words":
            return tf.strings.split(clean)
        return tf.strings.unicode_split(clean, "UTF-8")

    def transcript_ids(self, strings):
        """Transcripts `[batch]` -> ragged int32 CTC target ids (token `i` is `i + 2`, a unit
        outside the tokens 1); `ragged.to_tensor()` pads them with 0, the blank that
        `keras.losses.CTC` reads as padding."""
        if self._token_lookup is None:
            self._token_lookup = keras.layers.StringLookup(
                vocabulary=list(self.transcriber.tokens), num_oov_indices=1)
        units = self.transcript_units(strings)
        return tf.cast(tf.ragged.map_flat_values(self._token_lookup, units), tf.int32) + 1

    def transcript_strings(self, ids):
        """Decoded ids `[batch, length]` (blank 0, out-of-vocabulary 1 and the -1 past the end
        are dropped) -> tf.string transcripts, words separated by single spaces."""
        table = tf.constant([PAD, OOV] + list(self.transcriber.tokens))
        ids = tf.convert_to_tensor(ids, tf.int32)
        kept = tf.ragged.boolean_mask(tf.gather(table, tf.maximum(ids, 0)), ids > 1)
        separator = " " if self.transcriber.unit == "words" else ""
        joined = tf.strings.reduce_join(kept, axis=1, separator=separator)
        return tf.strings.strip(tf.strings.regex_replace(joined, " +", " "))

    # --- labels ---------------------------------------------------------------------------

    @staticmethod
    def label_string(label):
        """A label as the model's class names spell it: text as it is, integers (FSDD digits)
        in decimal, floats in their shortest form (`1.0` is `1`), booleans `true`/`false`
        (`mmzoo.data.adapt.label_text` writes them the same way)."""
        label = tf.convert_to_tensor(label)
        if label.dtype == tf.string:
            return label
        if label.dtype == tf.bool:
            return tf.where(label, "true", "false")
        if label.dtype.is_floating:
            return tf.strings.as_string(label, shortest=True)
        return tf.strings.as_string(label)

    def label_ids(self, names):
        """Class names `[batch]` -> int32 class ids; a name outside the model's classes fails
        (a `tf.errors.InvalidArgumentError` naming them)."""
        if self._label_lookup is None:
            self._label_lookup = keras.layers.StringLookup(vocabulary=self.labels,
                                                           num_oov_indices=1)
        ids = tf.cast(self._label_lookup(names), tf.int32) - 1   # unknown -> -1
        unknown = tf.boolean_mask(names, ids < 0)
        message = (f"{DATA_ERROR}labels not among the classes of model {self.model.name!r}: "
                   f"{list(self.labels)[:20]}; evaluate it on data with its own labels, or train "
                   "a model on this data (its labels are adapted on it). Unknown labels:")
        check = tf.debugging.Assert(tf.size(unknown) == 0, [message, tf.unique(unknown).y],
                                    summarize=8)
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def label_names(self, scores):
        """Class scores `[batch, classes]` -> the best class's name (tf.string `[batch]`)."""
        return tf.gather(tf.constant(self.labels), tf.argmax(scores, axis=-1))

    # --- whole inputs ---------------------------------------------------------------------

    def model_inputs(self, inputs, features=False):
        """Prepared inputs (images uint8) -> what the model takes (images float32);
        `features`: `image` holds backbone features already (`pipeline(..., features=True)`)."""
        out = dict(inputs)
        if "image" in out and not features:
            out["image"] = tf.cast(out["image"], tf.float32)
        return out

    def serving_inputs(self, raw):
        """A batch of raw request inputs -> model inputs: `image` encoded files, `text` /
        `question` strings, `audio` float32 `[batch, samples]` at the model's rate."""
        out = {}
        for name, value in raw.items():
            if name == "image":
                out[name] = self.images(value)
            elif name == "audio":
                out[name] = self.audio(value)
            elif name in contract.TEXT_INPUTS:
                out[name] = self.text(name, value)
            else:
                raise InvalidValue(f"model {self.model.name!r} takes no input {name!r}")
        return out

    def resources(self):
        """The Keras layers holding lookup tables that an export must track."""
        layers = [t.tokenizer if hasattr(t, "tokenizer") else t for t in self._tokenizers.values()]
        return layers + [lookup for lookup in (self._label_lookup, self._token_lookup)
                         if lookup is not None]


__all__ = ["Preprocessor", "decode_image"]
