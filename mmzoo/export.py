"""Export a model as a TensorFlow SavedModel that runs without mmzoo."""

from __future__ import annotations

import os
import shutil
import tempfile


def export(model, path):
    """Write `model` as a SavedModel at `path`, atomically (a half-written export never replaces a
    good one).

    The `serve` / `serving_default` signature takes the model's own inputs (token ids, float
    images, waveforms) and returns its outputs; loading needs only TensorFlow.

    Args:
        model: keras.Model. A model from `mmzoo.build` (or loaded from `.keras`).
        path: str. Destination folder; replaced if it exists.

    Examples:
    ```python
    mmzoo.export(model, "out/vqa_cnn_lstm")
    loaded = tf.saved_model.load("out/vqa_cnn_lstm")
    scores = loaded.serve({"image": images, "question": ids})
    ```
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        model.export(os.path.join(staging, "model"), format="tf_saved_model", verbose=False)
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(os.path.join(staging, "model"), path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(os.path.join(staging, "model"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
