"""The model contract: what `pipeline`, `evaluate` and `export` read from a model, in one place.

`mmzoo.build` checks every model it returns against this contract (`check`), so a model
registered from user code either works with every command or fails at build time naming what it
lacks. The commands read a model only through the functions of this module.

Every model:

- **inputs**: a dict of Keras inputs named exactly as its registration's `inputs`:
  - `text` / `question`: int32 token ids `[batch, length]` (0 = padding, 1 = out of vocabulary),
    read through a `mmzoo.layers.Vocabulary` layer named `{input}_vocabulary` that carries the
    tokens (token `i` has id `i + 2`), or a `mmzoo.layers.HubTokenizer` of that name carrying a
    KerasHub tokenizer (whose own ids, packed with its start and end tokens, the input takes);
  - `image`: `[batch, height, width, 3]` with a fixed height and width, values in [0, 255]
    (the graph rescales, or a backbone's own preprocessing does); a pretrained backbone is a
    sub-model named `image_backbone` (pixels -> features), which frozen-feature training
    (`mmzoo.models.features`) looks for;
  - `audio`: a float32 waveform `[batch, samples]` of fixed length (any length for
    transcription: zero-padded at the end, an utterance ending at its last non-zero sample), at
    the one sample rate its layers declare (a `sample_rate` attribute, as `mmzoo.layers.MFCC`
    has).

By task:

- **classification**, **vqa**: class scores `[batch, classes]` through a `mmzoo.layers.LabelNames`
  layer carrying the class names in score order.
- **captioning**: inputs `image` and `text` (the decoder's prompt); a sub-model `image_encoder`
  (image -> features) and a sub-model `caption_decoder` taking `{"features", "ids"}` (ids
  `[batch, max_length]`) and giving next-token probabilities `[batch, max_length, ids]`; the
  `text_vocabulary` holds `[start]` and `[end]`.
- **transcription**: input `audio` of any length; per-frame CTC log-probabilities `[batch,
  frames, classes]` through a `mmzoo.layers.CTCTokens` layer named `frames` carrying the tokens
  (class 0 is the blank, 1 out of vocabulary, token `i` is class `i + 2`), blank-certain on the
  padding frames.
- **retrieval**: inputs `image` and `text`; sub-models `text_encoder` (ids -> embedding) and
  `image_encoder` (image -> embedding), and a layer `similarity` (`[text embeddings, image
  embeddings]` -> logits `[texts, images]`).

Examples:
```python
mmzoo.contract.vocabulary(model, "question")    # the tokens the question ids index
mmzoo.contract.labels(model)                    # the class names, in score order
mmzoo.contract.check(model)                     # raises ContractError naming what is missing
```
"""

from __future__ import annotations

import collections

from mmzoo.errors import ContractError
from mmzoo.layers.vocab import model_labels, model_vocabulary
from mmzoo.layers.vocab import walk_layers as walk

START, END = "[start]", "[end]"
TEXT_INPUTS = ("text", "question")
LABELLED_TASKS = ("classification", "vqa")

Captioner = collections.namedtuple(
    "Captioner", "encoder decoder tokens max_length start_id end_id")
Captioner.__doc__ = """The parts of a captioning model: `image_encoder`, `caption_decoder`, the
caption vocabulary, the decoder's length, and the ids of `[start]` and `[end]`."""

Transcriber = collections.namedtuple("Transcriber", "tokens unit")
Transcriber.__doc__ = """What a transcription model's outputs index: its `tokens` (class `i + 2`)
and their `unit` (`characters` or `words`)."""

Retriever = collections.namedtuple("Retriever", "text_encoder image_encoder similarity")
Retriever.__doc__ = """The parts of a retrieval model: `text_encoder`, `image_encoder` and the
`similarity` layer."""


def _find(model, name):
    return next((layer for layer in walk(model) if layer.name == name), None)


def _spec(model, spec):
    if spec is not None:
        return spec
    from mmzoo.registry import get_spec

    return get_spec(model.name)


def _fail(model, what):
    raise ContractError(f"model {model.name!r} {what}; see mmzoo.contract for what a zoo model "
                        "carries")


def input_shapes(model):
    """`{input name: shape without the batch axis}` of the model's inputs."""
    return {t.name: tuple(t.shape[1:]) for t in model.inputs}


def vocabulary(model, name):
    """The tokens of the `Vocabulary` layer `{name}_vocabulary` (token `i` has id `i + 2`)."""
    tokens = model_vocabulary(model, name)
    if tokens is None:
        _fail(model, f"has no mmzoo.layers.Vocabulary layer named '{name}_vocabulary' for its "
                     f"{name!r} input")
    return tokens


def labels(model):
    """The class names of the model's `LabelNames` layer, in score order."""
    names = model_labels(model)
    if names is None:
        _fail(model, "carries no class names: end its scores with "
                     "mmzoo.layers.LabelNames(labels, name='scores')")
    return names


def sample_rate(model):
    """The one sample rate (Hz) the model's layers declare for its audio input."""
    rates = {layer.sample_rate for layer in walk(model)
             if isinstance(getattr(layer, "sample_rate", None), int)}
    if len(rates) != 1:
        _fail(model, f"has an audio input but {'no' if not rates else sorted(rates)} sample "
                     "rate(s) among its layers; it needs exactly one (e.g. a "
                     "mmzoo.layers.MFCC front end, or a layer with a sample_rate attribute)")
    return rates.pop()


def captioner(model):
    """The `Captioner` parts of a captioning model."""
    encoder, decoder = _find(model, "image_encoder"), _find(model, "caption_decoder")
    missing = [n for n, layer in (("image_encoder", encoder), ("caption_decoder", decoder))
               if not hasattr(layer, "inputs")]
    if missing:
        _fail(model, f"has no sub-model(s) {missing} (captioning decodes with them)")
    ids = decoder.input.get("ids") if isinstance(decoder.input, dict) else None
    if ids is None or "features" not in decoder.input:
        _fail(model, "has a 'caption_decoder' whose input is not a dict of 'features' and 'ids'")
    tokens = vocabulary(model, "text")
    if START not in tokens or END not in tokens:
        _fail(model, f"has a caption vocabulary without {START!r} and {END!r}")
    return Captioner(encoder, decoder, tokens, int(ids.shape[1]), tokens.index(START) + 2,
                     tokens.index(END) + 2)


def transcriber(model):
    """The `Transcriber` of a transcription model: its `CTCTokens` output layer's tokens."""
    from mmzoo.layers.speech import CTCTokens

    layer = _find(model, "frames")
    if not isinstance(layer, CTCTokens):
        _fail(model, "has no mmzoo.layers.CTCTokens layer named 'frames' (its per-frame CTC "
                     "output carries the tokens the classes stand for)")
    return Transcriber(tuple(layer.tokens), layer.unit)


def retriever(model):
    """The `Retriever` parts of a retrieval model."""
    parts = {n: _find(model, n) for n in ("text_encoder", "image_encoder", "similarity")}
    missing = [n for n, layer in parts.items() if layer is None]
    if missing:
        _fail(model, f"has no layer(s) {missing} (retrieval embeds texts and images apart)")
    return Retriever(**parts)


def problems(model, spec=None):
    """What `model` lacks of the contract for its registration `spec`: a list of str."""
    spec = _spec(model, spec)
    found = []

    def attempt(fn, *args):
        try:
            return fn(*args)
        except ContractError as e:
            found.append(str(e).split("; see mmzoo.contract")[0].replace(
                f"model {model.name!r} ", ""))
            return None

    shapes = input_shapes(model)
    if set(shapes) != set(spec.inputs):
        found.append(f"has inputs {sorted(shapes)}, not the registered {sorted(spec.inputs)} "
                     "(pass a dict of keras.Input named by modality)")
    for name, shape in shapes.items():
        if name in TEXT_INPUTS:
            attempt(vocabulary, model, name)
            if len(shape) != 1 or shape[0] is None:
                found.append(f"has a {name!r} input of shape {shape}; it takes token ids "
                             "[batch, length] of a fixed length")
        elif name == "image" and (len(shape) != 3 or None in shape[:2] or shape[2] != 3):
            found.append(f"has an 'image' input of shape {shape}; it takes [height, width, 3] "
                         "of a fixed size")
        elif name == "audio":
            attempt(sample_rate, model)
            if spec.task == "transcription":
                if len(shape) != 1:
                    found.append(f"has an 'audio' input of shape {shape}; it takes a waveform "
                                 "[samples] (of any length: shape=(None,))")
            elif len(shape) != 1 or shape[0] is None:
                found.append(f"has an 'audio' input of shape {shape}; it takes a waveform "
                             "[samples] of a fixed length")
    if spec.task in LABELLED_TASKS:
        attempt(labels, model)
    elif spec.task == "captioning":
        attempt(captioner, model)
    elif spec.task == "retrieval":
        attempt(retriever, model)
    elif spec.task == "transcription":
        attempt(transcriber, model)
    return found


def check(model, spec=None):
    """Raise a `ContractError` naming everything `model` lacks of the contract; returns `model`.

    Args:
        model: keras.Model. A model whose name is registered (or give `spec`).
        spec: ModelSpec or None. Its registration; looked up by `model.name` when None.
    """
    spec = _spec(model, spec)
    found = problems(model, spec)
    if found:
        raise ContractError(
            f"model {spec.name!r} ({spec.task}) does not carry what mmzoo's pipeline, evaluate "
            "and export read from a model:\n" + "\n".join(f"  - it {p}" for p in found)
            + "\nSee mmzoo.contract for the contract.")
    return model


__all__ = ["Captioner", "END", "Retriever", "START", "Transcriber", "captioner", "check",
           "input_shapes", "labels", "problems", "retriever", "sample_rate", "transcriber",
           "vocabulary", "walk"]
