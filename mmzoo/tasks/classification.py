"""Classification, of any inputs (text, image, audio and their fusions); visual question answering
is classification with an image and a `question` (the answers are its classes).

A classifier's scores `[batch, classes]` end in a `mmzoo.layers.LabelNames` layer carrying the
class names in score order (`mmzoo.contract.labels`). Its targets are class ids; it is scored
with accuracy, macro precision, recall and F1 and a confusion matrix (scikit-learn), per speaker
when the examples name one.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mmzoo import contract
from mmzoo.artifacts import digest
from mmzoo.data.labels import label_names, label_string
from mmzoo.data.pipeline import pipeline
from mmzoo.errors import DATA_ERROR, InvalidValue
from mmzoo.metrics import classification_metrics
from mmzoo.registry import register_task
from mmzoo.tasks.base import Task, figure, rows, zeroed

# Hugging Face's `pipeline_tag` of a classifier of one input
PIPELINE_TAGS = {"text": "text-classification", "image": "image-classification",
                 "audio": "audio-classification"}
SHOWN_CLASSES = 50   # classes a table lists (--json has all)


def label_ids(pre, names):
    """Class names `[batch]` -> int32 class ids of `pre.model`; a name outside its classes fails
    (a `tf.errors.InvalidArgumentError` naming them)."""
    model = pre.model
    labels = contract.labels(model)
    lookup = pre.cached("label_lookup", lambda: keras.layers.StringLookup(
        vocabulary=labels, num_oov_indices=1))
    ids = tf.cast(lookup(names), tf.int32) - 1   # unknown -> -1
    unknown = tf.boolean_mask(names, ids < 0)
    message = (f"{DATA_ERROR}labels not among the classes of model {model.name!r}: "
               f"{list(labels)[:20]}; evaluate it on data with its own labels, or train "
               "a model on this data (its labels are adapted on it). Unknown labels:")
    check = tf.debugging.Assert(tf.size(unknown) == 0, [message, tf.unique(unknown).y],
                                summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(ids)


class Classification(Task):
    """Class scores of any inputs, ending in `LabelNames`."""

    summary = "class scores of any inputs, their names carried by a LabelNames layer"
    intended_use = ("Classify examples like the training data into its labels; the scores are "
                    "softmax probabilities over those labels only.")
    limits = ("It answers one of its training labels for any input, also for inputs unlike the "
              "training data: check the score before trusting it.",)
    encodes_targets = True

    def __init__(self, name, *, summary=None, intended_use=None, limits=None,
                 pipeline_tag=None, multimodal=False):
        super().__init__(name)
        self.summary = summary or self.summary
        self.intended_use = intended_use or self.intended_use
        self.limits = tuple(limits) if limits is not None else self.limits
        self._tag, self.multimodal = pipeline_tag, multimodal

    # --- the model contract -----------------------------------------------------------------

    def problems(self, model):
        return contract.lacks(model, contract.labels)

    # --- adapting ---------------------------------------------------------------------------

    def adapt(self, spec, dataset, fields, config):
        if "labels" not in fields:
            return {}
        if "label" not in dataset.element_spec:
            raise InvalidValue(f"cannot adapt {spec.name!r}: its examples have no 'label'")
        return {"labels": tuple(label_names(dataset))}

    # --- the input pipeline -----------------------------------------------------------------

    def check_examples(self, model, element):
        if "label" not in element:
            raise InvalidValue(f"model {model.name!r} ({self.name}) needs a 'label' in each "
                               f"example; the dataset has {sorted(element)}")

    def prepare(self, pre, example):
        return {"label": label_string(example["label"])}

    def encode(self, pre, batch):
        return {**batch, "label": label_ids(pre, batch["label"])}

    def identity(self, model):
        return {"labels": digest(list(contract.labels(model)))}

    def calibration_data(self, model, dataset):
        """Calibration reads inputs only: any label reads as the model's first class, so data
        with other labels calibrates too."""
        first = tf.constant(contract.labels(model)[0])
        return dataset.map(lambda e: {**e, "label": first})

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model, dataset, batch_size, ablate=None, forward=None):
        forward = forward or (lambda x: model(x, training=False))
        by_speaker = not ablate and "speaker" in dataset.element_spec  # FSDD
        ds = pipeline(model, dataset, batch_size=batch_size, cache="none",
                      extras=("speaker",) if by_speaker else ())
        if ablate:
            ds = zeroed(ds, ablate)
        y_true, y_pred, speakers = [], [], []
        for x, y, *extra in ds:  # the split is read once (speakers with the inputs)
            y_true.append(y.numpy())
            y_pred.append(np.argmax(forward(x), axis=-1))
            if extra:
                speakers += [s.decode() for s in extra[0]["speaker"].numpy()]
        y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
        result = classification_metrics(y_true, y_pred, contract.labels(model))
        if by_speaker:  # the same predictions, by speaker
            speakers = np.array(speakers)
            right = y_true == y_pred
            result["accuracy_by_speaker"] = {s: float(np.mean(right[speakers == s]))
                                             for s in sorted(set(speakers))}
        return result

    def evaluate_file(self, model, dataset, batch_size, forward):
        return self.evaluate(model, dataset, batch_size,
                             forward=lambda x: forward(x)[self.portable_output])

    def headline(self, result):
        return "accuracy", result.get("accuracy")

    def table(self, result):
        lines = rows(["", ""], [[k.replace("_", " "), figure(result[k])] for k in
                                ("accuracy", "macro_precision", "macro_recall", "macro_f1")])
        matrix = np.asarray(result["confusion_matrix"])
        support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        right = np.diag(matrix)
        per_class = [[label, figure(float(right[i] / predicted[i]) if predicted[i] else 0.0),
                      figure(float(right[i] / support[i]) if support[i] else 0.0),
                      f"{int(support[i]):,}"] for i, label in enumerate(result["labels"])]
        lines.append("")
        lines += rows(["class", "precision", "recall", "examples"], per_class[:SHOWN_CLASSES])
        if len(per_class) > SHOWN_CLASSES:
            lines.append(f"  ... and {len(per_class) - SHOWN_CLASSES} more classes (--json for "
                         "all)")
        if result.get("accuracy_by_speaker"):
            lines.append("")
            lines += rows(["speaker", "accuracy"], [[k, figure(v)] for k, v in
                                                    result["accuracy_by_speaker"].items()])
        return f": {result['examples']:,} examples", lines

    def learned_nothing(self, result, cause, split=""):
        if not result.get("examples"):
            return None
        counts = np.asarray(result["confusion_matrix"]).sum(axis=1)
        majority = counts.max() / counts.sum()
        if result["accuracy"] > majority + 1e-6:
            return None
        label = result["labels"][int(counts.argmax())]
        return (f"{result['model']} learned nothing: its {split}{' ' if split else ''}"
                f"accuracy {result['accuracy']:.3f} "
                f"is no better than always answering {label!r} ({majority:.3f}); {cause}")

    def validation_needs_decoding(self):
        return False  # the best epoch's accuracy is in the history; the labels are read alone

    def learned_nothing_after_training(self, model, validation, best, batch_size, cause,
                                       evaluate):
        """The best epoch's validation accuracy against the validation split's most frequent
        class (its labels read without decoding a file)."""
        accuracy = (best or {}).get("metrics", {}).get("val_accuracy")
        if accuracy is None:
            return None
        names = label_string(np.concatenate(
            [b for b in validation.map(lambda e: e["label"]).batch(4096).as_numpy_iterator()]))
        labels, counts = np.unique(names.numpy(), return_counts=True)
        result = {"model": model.name, "examples": int(counts.sum()), "accuracy": accuracy,
                  "labels": [v.decode() for v in labels],
                  "confusion_matrix": [[int(c)] for c in counts]}
        return self.learned_nothing(result, cause, split="validation")

    # --- export -----------------------------------------------------------------------------

    def serving_functions(self, model, pre):
        labels = tf.constant(contract.labels(model))

        def classify(**inputs):
            scores = model(pre.serving_inputs(inputs), training=False)
            return {"label": tf.gather(labels, tf.argmax(scores, axis=-1)), "scores": scores}

        return {"serve": (classify, pre.inputs)}, {"labels": list(contract.labels(model))}

    def metadata(self, model):
        return {"labels": list(contract.labels(model))}

    def answer(self, model=None):
        return {"kind": "labels", "scores": "scores", "labels": "labels"}

    def card_lines(self, meta):
        labels = meta["labels"]
        shown = ", ".join(f"{i}: `{label}`" for i, label in enumerate(labels[:SHOWN_CLASSES]))
        return ["## Labels", "", f"{len(labels)} classes, in score order: {shown}"
                + (" ..." if len(labels) > SHOWN_CLASSES else "") + ".", ""]

    def pipeline_tag(self, inputs):
        if self._tag:
            return self._tag
        return PIPELINE_TAGS.get(inputs[0]) if len(inputs) == 1 else None


CLASSIFICATION = register_task(Classification("classification"))
VQA = register_task(Classification(
    "vqa", summary="answers to questions about images: a classifier over the training answers",
    intended_use=("Answer questions about images like the training ones, from the answers seen "
                  "in training (a classifier over them: it cannot say a new answer)."),
    limits=("It answers one of its training answers for any question.",),
    pipeline_tag="visual-question-answering", multimodal=True))

__all__ = ["CLASSIFICATION", "Classification", "VQA", "label_ids"]
