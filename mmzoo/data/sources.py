"""Readers of real data formats: each returns a `tf.data.Dataset` of raw example dicts.

Example keys are the model input names (`image`, `text`, `question`, `audio`) plus `label` for
classification and VQA targets. Images are decoded lazily from their files (uint8
`[height, width, 3]`), text is a tf.string.
"""

from __future__ import annotations

import warnings

import tensorflow as tf

from mmzoo.data import easy_vqa

SPLITS = ("train", "validation", "test")
TASKS_BY_SOURCE = {"easy_vqa": ("vqa", "classification", "captioning", "retrieval")}
VALIDATION_EVERY = 10  # validation = the training images whose id % 10 == 9


def load(source, split=None, *, task=None, on_error="raise"):
    """Read a data source as a `tf.data.Dataset` of raw example dicts.

    Sources:
    - `"easy_vqa"`: the easy-VQA data shipped in the `easy-vqa` package (the default data).
    - `"easy_vqa:PATH"`: a folder in the layout the easy-VQA generator writes.

    Splits are `train`, `validation` and `test`; easy-VQA's validation split is the training
    images whose id ends in 9 (10%, never seen in `train`), `None` is train + validation + test.

    Tasks (easy-VQA): `vqa` and `classification` give `{"image", "question", "label"}` per
    question; `captioning` and `retrieval` give `{"image", "text"}` per image, the text being a
    caption built from the image's answered questions ("a blue circle").

    Args:
        source: str. See above.
        split: str or None. `train`, `validation`, `test` or None for all.
        task: str or None. The task the examples are for; defaults to the source's first.
        on_error: str. `raise` (default) or `skip`: what to do with bad items.

    Examples:
    ```python
    train = mmzoo.data.load("easy_vqa", split="train", task="captioning")
    next(iter(train))   # {"image": <uint8 (64, 64, 3)>, "text": b"a blue circle"}
    ```
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)} or None for all")
    kind, _, path = str(source).partition(":")
    if kind not in TASKS_BY_SOURCE:
        raise ValueError(f"unknown data source {source!r}; use one of "
                         f"{[k + '[:PATH]' for k in TASKS_BY_SOURCE]}")
    tasks = TASKS_BY_SOURCE[kind]
    task = task or tasks[0]
    if task not in tasks:
        raise ValueError(f"source {kind!r} has no data for task {task!r}; it has {list(tasks)}")
    return _load_easy_vqa(path or easy_vqa.package_dir(), split, task)


def _split_rows(root, split):
    """Questions, answers, image ids and paths of `split` (None: all) of an easy-VQA folder."""
    parts = SPLITS if split is None else (split,)
    rows = ([], [], [], {})
    for part in dict.fromkeys("test" if p == "test" else "train" for p in parts):
        q, a, ids, paths = easy_vqa.read_split(root, part)
        keep = [True] * len(ids)
        if part == "train" and split in ("train", "validation"):
            want_val = split == "validation"
            keep = [(i % VALIDATION_EVERY == VALIDATION_EVERY - 1) == want_val for i in ids]
        offset = 0 if part == "train" else 10 ** 9  # ids restart per split on disk
        for qq, aa, ii, k in zip(q, a, ids, keep):
            if k:
                rows[0].append(qq)
                rows[1].append(aa)
                rows[2].append(ii + offset)
                rows[3][ii + offset] = paths[ii]
    return rows


def _load_easy_vqa(root, split, task):
    questions, answers, ids, paths = _split_rows(root, split)
    if not questions:
        raise ValueError(f"easy-VQA folder {root!r} has no questions in split {split!r}")
    if task in ("vqa", "classification"):
        ds = tf.data.Dataset.from_tensor_slices({
            "image": [paths[i] for i in ids], "question": questions, "label": answers})
    else:
        captions, unknown = easy_vqa.captions_by_image(questions, answers, ids)
        if unknown:
            sample = ", ".join(f"{paths[i]} ({why})" for i, why in list(unknown.items())[:3])
            warnings.warn(
                f"easy-VQA {split or 'all'}: {len(unknown)} of {len(unknown) + len(captions)} "
                f"images have no caption because their questions do not tell both shape and "
                f"colour; they are left out of {task}. First: {sample}", stacklevel=3)
        order = sorted(captions)
        ds = tf.data.Dataset.from_tensor_slices({
            "image": [paths[i] for i in order], "text": [captions[i] for i in order]})
    return ds.map(_decode_image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decode_image(example):
    path = example["image"]
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return {**example, "image": image}


__all__ = ["load", "SPLITS"]
