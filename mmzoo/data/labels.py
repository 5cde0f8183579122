"""Labels as class names: how a raw label (text, a number, a boolean) is written, the same way in
`adapt`, the input pipeline, the exported graph and a table's cells."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


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


def label_names(dataset):
    """The labels of `dataset`'s examples as sorted strings, in one streaming pass: numbers
    sorted as numbers (FSDD digits: 0 < 2 < 10, and a table's `"2"` < `"10"`), before anything
    else, which sorts as text; each written as the
    pipeline and the exported model write it (`label_text`)."""
    seen = set()
    for batch in dataset.map(lambda e: e["label"]).batch(4096).as_numpy_iterator():
        seen.update(np.asarray(batch).tolist())
    values = sorted(seen)
    if all(isinstance(v, (bool, np.bool_)) for v in values) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return sorted(label_text(values), key=_number_first)
    return label_text(values)


def _number_first(text):
    """Sort key of a label: labels that are numbers (`"2"`, `"0.5"`: a table's numeric labels
    as text) by value, before the others, which sort as text."""
    try:
        value = float(text)
    except ValueError:
        return (1, 0.0, text)
    return (0, value, text) if np.isfinite(value) else (1, 0.0, text)


def label_text(values):
    """Labels (a list of Python or NumPy values, or bytes) as strings, exactly as
    `mmzoo.data.Preprocessor.label_string` writes them in the graph: text as it is, integers
    in decimal, floats in their shortest form (`1.0` is `1`, `0.5` is `0.5`), booleans as
    `true`/`false`."""
    values = list(values)
    if not values:
        return []
    if isinstance(values[0], (bytes, str)):
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    return [t.decode() for t in label_string(tf.constant(values)).numpy()]


__all__ = ["label_names", "label_string", "label_text"]
