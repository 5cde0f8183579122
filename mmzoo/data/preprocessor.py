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
from mmzoo.artifacts import digest
from mmzoo.data import waveform
from mmzoo.data.labels import label_string
from mmzoo.data.text import vectorizer
from mmzoo.errors import InvalidValue
from mmzoo.layers.vocab import hub_tokenizer, model_ngrams


def decode_image(data):
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes (a scalar tf.string) -> uint8 `[height, width, 3]`
    (grey and palette images become RGB, the first frame of an animation is kept)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


class Preprocessor:
    """Raw inputs -> the inputs of `model`.

    - `image`: uint8 pixels `[height, width, channels]` (grey becomes RGB) resized to the
      model's size with antialiasing, rounded and kept as uint8 (what a cache holds);
      `model_inputs` makes them float32 in [0, 255], as the model takes them. `images` does
      both for a batch of encoded files (the export's input).
    - `text` / `question`: strings standardised (`mmzoo.data.text.standardize`: lower case, any
      run of characters other than letters and digits separates words), split on spaces and
      looked up in the vocabulary the model carries (0 padding, 1 out of vocabulary, token `i`
      is id `i + 2`), padded or cut to the model's length; or the ids of the KerasHub tokenizer
      the model carries.
    - `audio`: a float32 waveform resampled to the model's rate (librosa's default resampler,
      as `librosa.load` uses) when it was read at another, then centred and zero-padded, or
      cut to its loudest part, to the model's length (`mmzoo.data.waveform.fit_length`); a
      model that takes any
      length (a speech recogniser) gets its audio only resampled.
    - labels: `label_string` writes a raw label as class names are written.

    What a task makes of its targets (class ids, a caption shifted for teacher forcing, CTC
    ids) and of its outputs (class names, captions, transcripts) is the task's
    (`mmzoo.tasks`), built on these.

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
        self.model = model
        self.shapes = contract.input_shapes(model)
        self.inputs = tuple(self.shapes)
        self.sample_rate = contract.sample_rate(model) if "audio" in self.shapes else None
        self._tokenizers = {}
        self._cached = {}

    def cached(self, key, make):
        """`make()` made once per preprocessor under `key`: a lookup layer a task's targets or
        outputs use (class names, CTC tokens), tracked by `resources` when it holds tables."""
        if key not in self._cached:
            self._cached[key] = make()
        return self._cached[key]

    def identity(self):
        """What the model's input preprocessing depends on, as a JSON-able dict: the model,
        input shapes, vocabularies (digests) and sample rate. Caches of prepared examples are
        keyed by it (with the data and what the task's targets depend on)."""
        out = {"model": self.model.name,
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
        if self.sample_rate:
            out["sample_rate"] = int(self.sample_rate)
            if self.shapes["audio"][0] is not None:
                out["audio_crop"] = waveform.CROP
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

    # --- labels ---------------------------------------------------------------------------

    label_string = staticmethod(label_string)

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
        return ([t.tokenizer if hasattr(t, "tokenizer") else t for t in self._tokenizers.values()]
                + [v for v in self._cached.values() if isinstance(v, keras.layers.Layer)])


__all__ = ["Preprocessor", "decode_image"]
