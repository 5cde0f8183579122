"""One folder per class: `images:DIR` and `audio:DIR`, the layout that
`keras.utils.image_dataset_from_directory` and `audio_dataset_from_directory` read."""

from __future__ import annotations

import os
import warnings

import numpy as np
import tensorflow as tf

from mmzoo.data.base import (Source, decode_image, hash_split, register_source,
                              warn_few_classes)
from mmzoo.checks import (AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, Problems, audio_facts,
                          image_problem, warn_silent)
from mmzoo.data.fsdd import rates_of
from mmzoo.data.index import check_files
from mmzoo.checks import read_audio
from mmzoo.data.table import SPLIT_VALUES
from mmzoo.errors import DataWarning, InvalidValue, MissingFile



class ClassFolders(Source):
    """`KIND:DIR`: one subfolder per class, the folder's name the label (files in nested
    folders inside a class folder count too), or `DIR/{train,validation,test}/CLASS/` for
    splits of the user's own (`val` and `dev` read as validation).

    Without split folders, each file's split comes from a stable hash of its path inside DIR
    (`CLASS/name`; `mmzoo.data.base.hash_split`: 1 in 10 validation, 1 in 10 test), so adding
    files moves no other file. A class with no file in training (no train/ folder, or every
    file of a small class hashed outside training) is a bad item named before training: a
    test file never moves into training. Every file is checked when the folder is listed (in parallel):
    bad files are named with their paths; files of other kinds (`.txt`, `.DS_Store`) are named
    in a warning and not read. Classes with fewer than five training files are named in a
    warning.
    """

    tasks = ("classification",)
    extensions = ()
    media = ""

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        if not path:
            raise InvalidValue(f"{self.name}: give the folder, e.g. {self.kind}:photos "
                               "(one subfolder per class)")
        if not os.path.isdir(path):
            raise MissingFile(f"{self.name}: no folder at {path!r}")
        layout = self._layout(path)
        found, ignored = [], []
        for split, folder in layout:
            classes = sorted(d for d in os.listdir(folder) if not d.startswith(".")
                             and os.path.isdir(os.path.join(folder, d)))
            loose = sorted(f for f in os.listdir(folder) if not f.startswith(".")
                           and os.path.isfile(os.path.join(folder, f)))
            ignored += [os.path.join(folder, f) for f in loose]
            for label in classes:
                for root, dirs, files in os.walk(os.path.join(folder, label)):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for file in sorted(files):
                        full = os.path.join(root, file)
                        if file.startswith("."):
                            continue
                        if file.lower().endswith(self.extensions):
                            found.append((split, label, full))
                        else:
                            ignored.append(full)
        if not found:
            raise InvalidValue(
                f"{self.name}: no {self.media} files ({', '.join(self.extensions)}) in class "
                f"folders under {path!r}; expected {path}/CLASS/FILE (one folder per class), "
                f"optionally {path}/{{train,validation,test}}/CLASS/FILE")
        if ignored:
            warnings.warn(DataWarning(
                f"{self.name}: {len(ignored)} file(s) are not {self.media} files in a class "
                f"folder ({', '.join(self.extensions)}) and are not read",
                ignored), stacklevel=3)
        problems = Problems(self.name, self.on_error)
        self.orphans = []
        checked = check_files([f for _, _, f in found], self.check, f"checking {self.name}")
        self.columns = {self.media: [], "label": []}
        self.tags, self.identities = [], []
        silent = []
        for (split, label, full), (problem, facts) in zip(found, checked):
            if problem:
                problems.add(full, problem)
                continue
            if facts:
                self.columns.setdefault("sample_rate", []).append(facts.rate)
                self.columns.setdefault("seconds", []).append(facts.seconds)
                if facts.silent:
                    silent.append(full)
            identity = os.path.relpath(full, path).replace(os.sep, "/")
            self.columns[self.media].append(full)
            self.columns["label"].append(label)
            self.tags.append(split or hash_split(identity))
            self.identities.append(identity)
        # a class with no training file is a bad item, whether the splits are the user's or
        # drawn from the hash: a test file never moves into training
        split_folders = self.own_splits = any(split for split, _ in layout)
        trained = {lab for lab, t in zip(self.columns["label"], self.tags) if t == "train"}
        if trained or not split_folders:
            for i, (label, tag) in enumerate(zip(self.columns["label"], self.tags)):
                if label not in trained and tag is not None:
                    where = ("has no folder in train/, only in " if split_folders else
                             "has no file in training (its split is drawn from a hash of "
                             "each file's path), only in ")
                    self.orphans.append((i, self.columns[self.media][i],
                                         f"class {label!r} {where}{tag}: a model cannot learn "
                                         "it; add training files or remove the folder"))
        problems.report(f"{len(found)} {self.media} files")
        warn_silent(self.name, silent, len(found))
        keep = [i for i, t in enumerate(self.tags) if t is not None]
        self.columns = {k: [v[i] for i in keep] for k, v in self.columns.items()}
        self.tags = [self.tags[i] for i in keep]
        self.identities = [self.identities[i] for i in keep]
        if not self.tags:
            raise InvalidValue(f"{self.name}: no usable {self.media} files in {path!r}")
        trained = {}
        for label, tag in zip(self.columns["label"], self.tags):
            trained[label] = trained.get(label, 0) + (tag == "train")
        warn_few_classes(self.name, trained)
        self.layout = [folder for _, folder in layout]

    def _layout(self, path):
        """`[(split or None, folder of class folders)]`: the split folders when DIR has one
        (`train`, `validation`/`val`/`dev`, `test`), else DIR itself."""
        subs = [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))]
        splits = [(SPLIT_VALUES[d.lower()], os.path.join(path, d)) for d in sorted(subs)
                  if d.lower() in SPLIT_VALUES]
        if splits and "train" not in [s for s, _ in splits] and len(splits) == len(subs):
            raise InvalidValue(f"{self.name}: {path!r} has split folders "
                               f"{sorted(d for d in subs)} but no train/; add one")
        return splits if splits else [(None, path)]

    def watched(self):
        return (), [root for folder in self.layout for root, _, _ in os.walk(folder)]


@register_source
class ImageFolders(ClassFolders):
    """`images:DIR`: images (JPEG, PNG, GIF, BMP, WebP) in one folder per class; examples are
    `{"image": uint8 [height, width, 3], "label": str}` (see `ClassFolders`)."""

    kind = "images"
    modalities = ("image",)
    extensions = IMAGE_EXTENSIONS
    media = "image"
    description = "images:DIR: images in one folder per class (DIR/CLASS/*.jpg)"

    @staticmethod
    def check(path):
        return image_problem(path), None

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        ds = tf.data.Dataset.from_tensor_slices(rows)
        if not decode:
            return ds
        return ds.map(lambda e: {**e, "image": decode_image(e["image"])},
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@register_source
class AudioFolders(ClassFolders):
    """`audio:DIR`: audio files (WAV, FLAC, OGG, MP3: what libsndfile reads) in one folder per
    class; examples are `{"audio": float32 waveform, "sample_rate": int, "label": str}`, the
    audio at its file's own rate unless `sample_rate=` says otherwise (`mmzoo.data.pipeline`
    resamples to the model's rate). See `ClassFolders`.

    Options:
        sample_rate: int. Read the audio at this rate (0: each file's own).
    """

    kind = "audio"
    modalities = ("audio",)
    extensions = AUDIO_EXTENSIONS
    media = "audio"
    options = {"sample_rate": 0}
    description = "audio:DIR: audio files in one folder per class (DIR/CLASS/*.wav)"

    @staticmethod
    def check(path):
        return audio_facts(path)

    def audio_rates(self):
        """`{sample rate: files}` of the folder's audio files (their own rates)."""
        return rates_of(self.columns["sample_rate"])

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        rows.pop("seconds", None)
        rate = int(self.opts["sample_rate"])
        rows["sample_rate"] = np.asarray([rate or r for r in rows["sample_rate"]], np.int32)
        ds = tf.data.Dataset.from_tensor_slices(rows)
        if not decode:
            return ds

        def load(e):
            wave, sr = tf.numpy_function(read_audio, [e["audio"], e["sample_rate"], False],
                                         (tf.float32, tf.int32), stateful=False)
            return {**e, "audio": tf.ensure_shape(wave, [None]), "sample_rate":
                    tf.ensure_shape(sr, [])}

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
