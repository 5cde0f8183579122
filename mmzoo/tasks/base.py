"""The `Task` interface: everything that differs between tasks, in one object per task.

A model is registered for a task by name (`@mmzoo.register(..., task="captioning")`); the drivers
(`pipeline`, `adapt`, `train`, `evaluate`, `export`, `portable`, `card`, `predict`, the `mmzoo`
command) ask that task's object, found with `mmzoo.registry.task_of(model)`, for what is
specific to it and never compare task names. KerasHub's `Task` classes and TF Model Garden's
`tasks/*.py` keep the same split.

Adding a task is one new file in this folder: a `Task` subclass that overrides what its task
does differently, registered with `mmzoo.registry.register_task(MyTask())` at the end of the
file (and the file imported by `mmzoo/tasks/__init__.py`, or by a plugin module: see
`mmzoo.plugins`). `tests/test_tasks.py` runs every registered task through every method.

The methods, by the driver that calls them:

- the model contract (`mmzoo.registry.build`): `problems`, `audio_any_length`;
- adapting a config to the training data (`mmzoo.data.adapt`): `text_tokens`, `adapt`,
  `caption_length`;
- the input pipeline (`mmzoo.data.pipeline`): `check_examples`, `prepare`, `encode` (with
  `encodes_targets`), `identity`, `expand`, `per_epoch_text`, `batch`, `targets`;
- evaluation (`mmzoo.evaluate`): `evaluate`, `ablated_inputs`, `figures` (with `decoders`),
  `headline`, `table`, `learned_nothing`; after training (`mmzoo.train`, `mmzoo train`):
  `validation_needs_decoding`, `learned_nothing_after_training`, `report`;
- export (`mmzoo.export`): `serving_functions`, `served_inputs`, `decoding`, `answer`;
  portable exports (`mmzoo.portable`): `portable_graphs`, `portable_output`,
  `calibration_data`, `calibration_inputs`, `evaluate_file` (an export's own figures); the
  model card (`mmzoo.card`): `metadata`, `card_lines`, `pipeline_tag`, `tags`, `summary`,
  `intended_use`, `limits`, `multimodal`;
- `mmzoo predict` and `mmzoo/runtime.py` read `answer` from the export's metadata.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import ContractError


class Task:
    """What one task does; subclasses override what differs.

    Args:
        name: str. The task's name, as models are registered with it.
    """

    #: The decoders an evaluation compares (`greedy`, `beam`), in order; () when none.
    decoders = ()
    #: Whether a model of this task takes `audio` of any length (an utterance as it is).
    audio_any_length = False
    #: One line on what the task does (the README's table of tasks).
    summary = ""
    #: The model card's "Intended use" paragraph.
    intended_use = ""
    #: Limits every model of the task has, for the model card.
    limits = ()
    #: Whether every model of the task is multimodal whatever its inputs (a captioner reads
    #: images and writes text); else a model is when it reads two modalities.
    multimodal = False
    #: Whether `encode` encodes the targets per batch before the cache.
    encodes_targets = False

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    # --- the model contract ---------------------------------------------------------------

    def problems(self, model):
        """What `model` lacks of what this task reads from a model: a list of str, each
        completing "it ...". The generic checks of the inputs are `mmzoo.contract`'s."""
        return []

    def fail(self, model, what):
        """Raise the `ContractError` of a model that `what` (completing "model NAME ...")."""
        raise ContractError(f"model {model.name!r} {what}; see mmzoo.contract and "
                            f"mmzoo.tasks.{self.name} for what a {self.name} model carries")

    # --- adapting the config to the data --------------------------------------------------

    def text_tokens(self, tokens):
        """The `vocabulary` a model of this task gets from the tokens adapted on its training
        texts (most frequent first); captioning adds its `[start]` and `[end]`."""
        return tuple(tokens)

    def adapt(self, spec, dataset, fields, config):
        """Config overrides adapted on the training `dataset` beyond the text vocabulary
        (`mmzoo.data.adapt` does that): class names, CTC tokens, caption lengths. Only
        fields of `fields` (the config's field names) may be returned."""
        return {}

    def caption_length(self, p95, fields):
        """The config's text length for texts from several captions per example, whose 95th
        percentile has `p95` words (a captioner's `max_length`, a dual encoder's
        `sequence_length`); `{}` where the task sets none."""
        return {}

    # --- the input pipeline ---------------------------------------------------------------

    def check_examples(self, model, element):
        """Fail unless the raw examples (`element`: their `element_spec`) hold what this
        task's targets are made from."""

    def prepare(self, pre, example):
        """Per raw example, before the cache: `{key: tensor}` of the targets' raw parts to
        carry (a label's string, a transcript's ids). `pre` is the pipeline's
        `mmzoo.data.Preprocessor` (its `cached` keeps a lookup per pipeline)."""
        return {}

    def encode(self, pre, batch):
        """Per batch of 256 prepared examples, before the cache, when `encodes_targets`: the
        batch with its target parts encoded (class names to ids)."""
        return batch

    def identity(self, model):
        """What the targets' encoding depends on (JSON-able): part of a disk cache's key."""
        return {}

    def expand(self, ds, training):
        """After the cache: examples with several `captions` become what the task trains on
        (an example per caption, or one caption per example); `ds` as it is otherwise."""
        return ds

    def per_epoch_text(self, name, key):
        """Whether input `name` (fed from the example key `key`) is tokenized per batch after
        the cache (captions drawn anew each epoch or shifted for teacher forcing), not
        before it."""
        return key == "captions"

    def batch(self, ds, pre, batch_size, training, augment, extras):
        """The batched dataset of `(inputs, targets[, extras])` for a task whose examples are
        not of one shape (utterances of any length), or None: the pipeline batches, augments
        and calls `targets`."""
        return None

    def targets(self, pre, batch, inputs):
        """`(inputs, targets)` of a batch: the targets, and the inputs they change (a
        captioner's prompt is its caption shifted; a text left as strings is tokenized after)."""
        return inputs, batch.get("label")

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(self, model, dataset, batch_size, ablate=None):
        """This task's figures of `model` on raw examples (`ablate`: the input zeroed)."""
        raise NotImplementedError

    def ablated_inputs(self, spec):
        """The inputs whose zeroing the modality ablation measures."""
        return list(spec.inputs)

    def figures(self, result):
        """An evaluation's figures alone (of a modality ablation): without its class names,
        confusion matrix and examples, in each decoder's part too."""
        for part in (result, *(result.get(d, {}) for d in self.decoders)):
            for key in ("labels", "confusion_matrix", "examples"):
                part.pop(key, None)
        return result

    def headline(self, result):
        """`(metric name, value)`: the figure an ablation line reports."""
        raise NotImplementedError

    def table(self, result):
        """`(title suffix, lines)` of the plain-text table `mmzoo evaluate` prints."""
        raise NotImplementedError

    def learned_nothing(self, result, cause, split=""):
        """One line when the evaluated model learned nothing, else None."""
        return None

    def validation_needs_decoding(self):
        """Whether the check after training reads the validation examples' images or audio
        (a classifier reads only their labels)."""
        return True

    # validation examples the model is evaluated on after training for `learned_nothing`
    # (None: no such check, or a task's own `learned_nothing_after_training`)
    checked_examples = None

    def learned_nothing_after_training(self, model, validation, best, batch_size, cause,
                                       evaluate):
        """One line when the model just trained learned nothing, else None: `validation`
        the validation split's raw examples, `best` the best epoch (`mmzoo.run.best_epoch`),
        `evaluate` the evaluation driver. By default, `learned_nothing` of the evaluation of
        the first `checked_examples` validation examples (a task without them: None)."""
        if self.checked_examples is None:
            return None
        return self.learned_nothing(evaluate(model, validation.take(self.checked_examples),
                                             batch_size=batch_size), cause)

    def report(self, model, validation, examples=8):
        """Lines `mmzoo train` prints after training: a few validation examples with what the
        model says of them (captions, transcripts); [] when there is nothing to show.
        `validation()` gives the validation split's raw examples (read only when shown)."""
        return []

    # --- export ---------------------------------------------------------------------------

    def serving_functions(self, model, pre):
        """`(endpoints, info)`: raw-input functions by endpoint name (`serve` first), each
        `(body, input names)`, and what `metadata` adds about them."""
        raise NotImplementedError

    def decoding(self):
        """How the SavedModel decodes (`serving_default` and `greedy`), or None."""
        return None

    def served_inputs(self, model):
        """The inputs the export's `serving_default` takes (its `serve` endpoint's): what
        `mmzoo predict` asks for. A captioner's prompt is its own, not the caller's."""
        endpoints, _ = self.serving_functions(model, Preprocessor(model))
        return list(endpoints["serve"][1])

    def portable_graphs(self, model, numeric_inputs, batch):
        """The numbers-in Keras models a portable export holds, by file stem
        (`mmzoo.portable.graphs`); `numeric_inputs(model, batch)` makes the inputs."""
        inputs, feeds = numeric_inputs(model, batch)
        return {"model": keras.Model(inputs, {self.portable_output: model(feeds)},
                                     name=f"{model.name}_portable")}

    portable_output = "scores"

    def evaluate_file(self, model, dataset, batch_size, forward):
        """This task's figures of a portable export's `model` graph on raw examples, as
        `evaluate` gives the Keras model's: `forward(inputs)` runs the exported file on a
        batch of the pipeline's inputs and returns its outputs by name. None when the figures
        need more than one forward pass of that graph (a captioner's decoding, a dual
        encoder's two towers): such exports are not measured at export."""
        return None

    def calibration_data(self, model, dataset):
        """The raw examples int8 calibration reads (`mmzoo.portable.representative_examples`):
        `dataset` with what its targets need to make inputs alone (a classifier's labels, which
        calibration never reads, made ones the model knows)."""
        return dataset

    def calibration_inputs(self, model, inputs):
        """More numeric inputs int8 calibration feeds a portable graph (a captioner's decoder
        takes image features and a caption so far), from one example's `inputs`."""
        return {}

    def metadata(self, model):
        """This task's part of `metadata.json`: labels, CTC tokens, decoding, similarity."""
        return {}

    def answer(self, model=None):
        """How `mmzoo predict` reads the served outputs (`mmzoo.predict.answers`): a dict with
        `kind` (`labels`, `text`, `score`) and the output names it reads."""
        raise NotImplementedError

    def card_lines(self, meta):
        """Lines of the model card about the outputs (labels, CTC tokens)."""
        return []

    def pipeline_tag(self, inputs):
        """The Hugging Face `pipeline_tag` of a model with these inputs, or None."""
        return None

    def tags(self, inputs):
        """The model card's tags: the task, its inputs, `multimodal` when it is."""
        multimodal = self.multimodal or len(set(inputs) - {"question"}) > 1
        return [self.name, *inputs] + (["multimodal"] if multimodal else [])


def with_caption(example, caption):
    """`example` with its `captions` replaced by one `text`: what a model of captions reads."""
    return {**{k: v for k, v in example.items() if k != "captions"}, "text": caption}


def zeroed(ds, name):
    """`ds` of `(inputs, ...)` with input `name` zeroed (the modality ablation)."""
    def zero(x, *rest):
        return ({**x, name: tf.zeros_like(x[name])}, *rest)

    return ds.map(zero, num_parallel_calls=tf.data.AUTOTUNE)


def image_batches(model, dataset, batch_size, ablate=None):
    """`(images, references)` of an image split, `batch_size` images at a time (so no split's
    pixels are held at once): the images resized like the pipeline (float32, zeros when
    `ablate == "image"`) and every reference text of each."""
    pre = Preprocessor(model)
    images, references = [], []
    for example in dataset:
        images.append(pre.image(example["image"]).numpy())
        if "captions" in example:
            references.append([c.decode() for c in example["captions"].numpy()])
        else:
            references.append([example["text"].numpy().decode()])
        if len(images) == batch_size:
            yield _image_batch(images, ablate), references
            images, references = [], []
    if images:
        yield _image_batch(images, ablate), references


def _image_batch(images, ablate):
    images = np.stack(images).astype("float32")
    return np.zeros_like(images) if ablate == "image" else images


def figure(value):
    """A figure of a table: 4 decimals, counts with thousands separators."""
    return f"{value:.4f}" if isinstance(value, float) else f"{value:,}"


def rows(header, body):
    """Lines of a plain-text table, columns padded to their widest cell."""
    cells = ([list(map(str, header))] if any(header) else []) + [[str(c) for c in row]
                                                                 for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in cells]


def decoder_table(result, count, unit):
    """The title suffix and lines of a per-decoder table (greedy and beam columns)."""
    keys = [k for k, v in result["greedy"].items() if isinstance(v, (int, float))
            and k not in ("utterances", "distinct_captions")]
    lines = rows(["", "greedy", "beam"], [[k, figure(result["greedy"][k]),
                                           figure(result["beam"][k])] for k in keys])
    return f": {count:,} {unit}", lines


def as_list(strings):
    """A tf.string tensor (or array of bytes) as a list of str."""
    return [s.decode() for s in np.asarray(strings).tolist()]


__all__ = ["Task", "as_list", "decoder_table", "figure", "image_batches", "rows", "with_caption",
           "zeroed"]
