"""Free Spoken Digit Dataset layout: a folder of `{digit}_{speaker}_{index}.wav` recordings."""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from mmzoo.data.base import Source, progress, register_source
from mmzoo.checks import Problems, audio_facts, read_audio, warn_silent
from mmzoo.errors import InvalidValue, MissingFile

FSDD_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>.+)_(?P<index>\d+)$")
DIGITS = tuple(str(d) for d in range(10))
TEST_INDICES = range(0, 5)  # the dataset's official split: takes 0-4 of each digit and speaker


def audio_dataset(paths, sample_rate):
    """A dataset of float32 waveforms `[samples]` read from `paths` (parallel, in order)."""
    def read(path):
        return read_audio(path, sample_rate)[0]

    def load(path):
        wave = tf.numpy_function(read, [path], tf.float32, stateful=False)
        return tf.ensure_shape(wave, [None])

    return tf.data.Dataset.from_tensor_slices(paths).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def with_rate(dataset, sample_rate):
    """`dataset` with each example's `sample_rate` (int32, Hz): the rate its `audio` was read at,
    which `mmzoo.data.pipeline` resamples from when the model's differs."""
    rate = tf.constant(int(sample_rate), tf.int32)
    return dataset.map(lambda e: {**e, "sample_rate": rate})


def find_recordings(root):
    """The folder holding the `.wav` files: `root`, or `root/recordings` as in the FSDD repo."""
    nested = os.path.join(root, "recordings")
    return nested if os.path.isdir(nested) else root


def checked_recordings(name, path, on_error, *, kind="fsdd"):
    """`(path, match, AudioFacts)` of each usable `{digit}_{speaker}_{index}.wav` recording
    under `path` (or `path/recordings`), in name order, `match` giving its `label`, `speaker`
    and `index`.

    Every `.wav` file is checked: a name outside the layout, a label that is not a digit, and
    unreadable, empty or truncated audio are reported with their paths (`on_error` `raise` or
    `skip`, `mmzoo.checks.Problems`), once all files are checked.
    """
    if not path:
        raise InvalidValue(f"{name}: give the FSDD folder, e.g. {kind}:../shared/data/fsdd")
    if not os.path.isdir(path):
        raise MissingFile(f"{name}: no folder at {path!r}")
    folder = find_recordings(path)
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".wav"))
    if not names:
        raise InvalidValue(f"{name}: {folder!r} is empty: it has no .wav files named "
                           "{digit}_{speaker}_{index}.wav")
    problems, silent = Problems(name, on_error), []
    for file in progress(names, f"checking {name}"):
        full = os.path.join(folder, file)
        match = FSDD_NAME.match(os.path.splitext(file)[0])
        if not match:
            problems.add(full, "name is not {digit}_{speaker}_{index}.wav")
            continue
        if match["label"] not in DIGITS:
            problems.add(full, f"label {match['label']!r} is not one of the digits 0-9")
            continue
        problem, facts = audio_facts(full)
        if problem:
            problems.add(full, problem)
            continue
        if facts.silent:
            silent.append(full)
        yield full, match, facts
    problems.report(f"{len(names)} .wav files")
    warn_silent(name, silent, len(names))


@register_source
class FSDD(Source):
    """`fsdd:PATH`: `{digit}_{speaker}_{index}.wav` files (in PATH or PATH/recordings).

    Examples are `{"audio": float32 waveform, "sample_rate": int (its file's own rate: FSDD's
    is 8 kHz; or the option's), "label": int digit, "speaker": str}`; `mmzoo.data.pipeline`
    resamples to the model's rate, and `mmzoo train` says when it does. Splits (the dataset's
    official one): `test` is index 0-4, `train` index 5 and up; there is no validation split
    (`mmzoo.data.fit_splits` holds one out of train). Every `.wav` file is checked when the
    folder is listed: a name outside the layout, a label that is not a digit, and unreadable,
    empty or truncated audio are all reported.

    Options:
        sample_rate: int. Read the audio at this rate (librosa resamples; 0, the default: each
            file's own).
    """

    kind = "fsdd"
    tasks = ("classification",)
    modalities = ("audio",)
    options = {"sample_rate": 0}
    description = "fsdd:PATH: spoken digits, {digit}_{speaker}_{index}.wav (audio classification)"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        self.columns = {"audio": [], "label": [], "speaker": [], "sample_rate": [],
                        "seconds": []}
        self.tags, self.identities = [], []
        for full, match, facts in checked_recordings(self.name, path, self.on_error,
                                                     kind=self.kind):
            rate = facts.rate
            self.columns["seconds"].append(facts.seconds)
            self.identities.append(os.path.basename(full))
            self.columns["audio"].append(full)
            self.columns["label"].append(int(match["label"]))
            self.columns["speaker"].append(match["speaker"])
            self.columns["sample_rate"].append(self.opts["sample_rate"] or rate)
            self.tags.append("test" if int(match["index"]) in TEST_INDICES else "train")
        if not self.tags:
            raise InvalidValue(f"{self.name}: no usable recordings left in {path!r}")

    def watched(self):
        return (), (find_recordings(self.path),)

    def audio_rates(self):
        return rates_of(self.columns["sample_rate"])

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        ds = tf.data.Dataset.from_tensor_slices(
            {"audio": rows["audio"], "label": np.asarray(rows["label"], np.int64),
             "speaker": rows["speaker"],
             "sample_rate": np.asarray(rows["sample_rate"], np.int32)})
        if not decode:
            return ds

        def load(e):
            wave = tf.numpy_function(lambda p, r: read_audio(p, int(r))[0],
                                     [e["audio"], e["sample_rate"]], tf.float32, stateful=False)
            return {**e, "audio": tf.ensure_shape(wave, [None])}

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def rates_of(rates):
    """`{sample rate: items}` of a list of rates."""
    counts = {}
    for rate in rates:
        counts[int(rate)] = counts.get(int(rate), 0) + 1
    return counts
