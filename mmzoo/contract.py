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
    (`mmzoo.features`) looks for;
  - `audio`: a float32 waveform `[batch, samples]` of fixed length (any length where its task
    says `audio_any_length`, transcription: zero-padded at the end, an utterance ending at its
    last non-zero sample), at
    the one sample rate its layers declare (a `sample_rate` attribute, as `mmzoo.layers.MFCC`
    has).

What a model carries for its task (class names, a caption decoder, CTC tokens, two encoders)
is that task's to say: `mmzoo.tasks.<task>` documents it and its `Task.problems` checks it.

A model's fixed front ends (`front_ends`): its frozen pretrained image backbone (a sub-model
named `image_backbone` without trainable weights) and the MFCC layer it reads its `audio` with.

Examples:
```python
mmzoo.contract.vocabulary(model, "question")    # the tokens the question ids index
mmzoo.contract.labels(model)                    # the class names, in score order
mmzoo.contract.front_ends(model)                # {"image": backbone} of a frozen MobileNet
```
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

from mmzoo.errors import ContractError
from mmzoo.layers.mfcc import MFCC
from mmzoo.layers.vocab import END, START, model_labels, model_vocabulary
from mmzoo.layers.vocab import walk_layers as walk

TEXT_INPUTS = ("text", "question")
BACKBONE = "image_backbone"


def find(model, name):
    """The layer named `name` anywhere in `model` (nested models included), or None."""
    return next((layer for layer in walk(model) if layer.name == name), None)


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


def lacks(model, read, *args):
    """What `model` lacks for `read(model, *args)` (a function that reads part of it and raises
    a `ContractError` when it cannot): `[]`, or the error's one line completing "it ..."."""
    try:
        read(model, *args)
    except ContractError as e:
        return [str(e).split("; see mmzoo.")[0].replace(f"model {model.name!r} ", "")]
    return []


def problems(model, spec, task):
    """What `model` lacks of the contract for its registration `spec` and its `task` (a
    `mmzoo.tasks.base.Task`): a list of str, each completing "it ..."."""
    found = []

    shapes = input_shapes(model)
    if set(shapes) != set(spec.inputs):
        found.append(f"has inputs {sorted(shapes)}, not the registered {sorted(spec.inputs)} "
                     "(pass a dict of keras.Input named by modality)")
    for name, shape in shapes.items():
        if name in TEXT_INPUTS:
            found += lacks(model, vocabulary, name)
            if len(shape) != 1 or shape[0] is None:
                found.append(f"has a {name!r} input of shape {shape}; it takes token ids "
                             "[batch, length] of a fixed length")
        elif name == "image" and (len(shape) != 3 or None in shape[:2] or shape[2] != 3):
            found.append(f"has an 'image' input of shape {shape}; it takes [height, width, 3] "
                         "of a fixed size")
        elif name == "audio":
            found += lacks(model, sample_rate)
            if task.audio_any_length:
                if len(shape) != 1:
                    found.append(f"has an 'audio' input of shape {shape}; it takes a waveform "
                                 "[samples] (of any length: shape=(None,))")
            elif len(shape) != 1 or shape[0] is None:
                found.append(f"has an 'audio' input of shape {shape}; it takes a waveform "
                             "[samples] of a fixed length")
    return found + task.problems(model)


def check(model, spec, task):
    """Raise a `ContractError` naming everything `model` lacks of the contract; returns `model`.

    Args:
        model: keras.Model. The model a builder returned.
        spec: ModelSpec. Its registration.
        task: mmzoo.tasks.base.Task. Its task.
    """
    found = problems(model, spec, task)
    if found:
        raise ContractError(
            f"model {spec.name!r} ({spec.task}) does not carry what mmzoo's pipeline, evaluate "
            "and export read from a model:\n" + "\n".join(f"  - it {p}" for p in found)
            + f"\nSee mmzoo.contract and mmzoo.tasks.{spec.task} for the contract.")
    return model


# --- fixed front ends --------------------------------------------------------------------

def frozen_backbone(model):
    """The model's image backbone sub-model (`image_backbone`) when it is frozen (no trainable
    weights), else None."""
    for layer in walk(model):
        if layer.name == BACKBONE and isinstance(layer, keras.Model):
            return None if layer.trainable_weights else layer
    return None


AUDIO_BACKBONE = "audio_backbone"


def audio_front_end(model):
    """The model's fixed audio front end when it reads the `audio` input as it comes: its MFCC
    layer (no weights), or its frozen pretrained `audio_backbone` sub-model (no trainable
    weights); else None."""
    inputs = model.input if isinstance(model.input, dict) else {}
    if "audio" not in inputs:
        return None
    for layer in model.layers:
        if len(layer._inbound_nodes) != 1:
            continue
        if isinstance(layer, MFCC) and layer.input is inputs["audio"]:
            return layer
        if layer.name == AUDIO_BACKBONE and isinstance(layer, keras.Model) \
                and not layer.trainable_weights \
                and layer._inbound_nodes[0].input_tensors[0] is inputs["audio"]:
            return layer
    return None


def front_ends(model):
    """`{input name: fixed front end}` of `model`: its frozen image backbone (`image`) and its
    audio MFCC layer (`audio`), those it has."""
    found = {"image": frozen_backbone(model), "audio": audio_front_end(model)}
    return {name: layer for name, layer in found.items() if layer is not None}


_NAMES = ("name", "inbound_nodes", "input_layers", "output_layers")


def _unnamed(config):
    """A layer or model config without the names in it (what `front_end_key` hashes)."""
    if isinstance(config, dict):
        return {k: _unnamed(v) for k, v in sorted(config.items()) if k not in _NAMES}
    if isinstance(config, (list, tuple)):
        return [_unnamed(v) for v in config]
    return config


def front_end_key(fronts):
    """A short hex digest of the front ends' architecture and weights (a backbone, or a dict of
    front ends): what a disk cache of their features is keyed by, with the split."""
    if not isinstance(fronts, dict):
        fronts = {"image": fronts}
    digest = hashlib.sha256()
    for name, front in sorted(fronts.items()):
        # the architecture without the names Keras numbers per process (`input_layer_3`)
        digest.update(f"{name}:{_unnamed(front.get_config())}".encode())
        for weight in front.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


__all__ = ["BACKBONE", "END", "START", "TEXT_INPUTS", "audio_front_end", "check", "find",
           "lacks",
           "front_end_key", "front_ends", "frozen_backbone", "input_shapes", "labels",
           "problems", "sample_rate", "vocabulary", "walk"]
