"""`load`: read a data source (`kind:PATH?option=value&...`) as a `tf.data.Dataset` of raw examples.

Example keys are the model input names (`image`, `text`, `question`, `audio`, or `captions`
for several captions per image) plus `label` for classification and VQA targets. Images are
decoded lazily from their files (uint8 `[height, width, 3]`), audio is a float32 waveform, text
a tf.string.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

# Importing the readers registers them.
from mmzoo.data import (captions, digit_qa, easy_vqa, folders, fsdd, speech, table,  # noqa: F401
                        tfds_source)
from mmzoo.data.base import SOURCES, SPLITS
from mmzoo.errors import InvalidValue, did_you_mean


def parse_source(source):
    """`(kind, path, options)` of `"kind:PATH?key=value&key=value"`."""
    text = str(source)
    kind, _, rest = text.partition(":")
    path, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    for key, value in options.items():
        if value.lstrip("-").isdigit():
            options[key] = int(value)
    return kind, path, options


def absolute_source(source):
    """`source` with its path made absolute when it names a file or folder that exists
    (`csv:data/news.csv?text=title` -> `csv:/home/me/data/news.csv?text=title`): what a run
    records, so that `mmzoo evaluate` finds the data from any folder. Other sources
    (`easy_vqa`, `tfds:NAME`) are returned as they are."""
    text = str(source)
    kind, sep, rest = text.partition(":")
    path, mark, query = rest.partition("?")
    if not sep or not path or not os.path.exists(path):
        return text
    return f"{kind}:{os.path.abspath(path)}{mark}{query}"


def open_source(source, *, on_error="raise", **options):
    """List and check a data source once; its `dataset(split, task)` reads any split of it.

    Args:
        source: str. `kind[:PATH][?option=value&...]`, e.g. `fsdd:../shared/data/fsdd`.
        on_error: str. `raise` (default) or `skip`: what to do with bad items.
        **options: options of that kind of source (they override the ones in `source`).

    Examples:
    ```python
    src = mmzoo.data.open_source("csv:../shared/data/ag_news/news.csv")
    train, test = src.dataset("train"), src.dataset("test")
    ```
    """
    if on_error not in ("raise", "skip"):
        raise InvalidValue(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    kind, path, query = parse_source(source)
    if kind not in SOURCES:
        hint = did_you_mean(kind, SOURCES)
        hint = f"{hint} " if hint else ""
        raise InvalidValue(f"unknown data source {source!r}; {hint}use one of: "
                           + "; ".join(cls.description for cls in SOURCES.values()))
    return SOURCES[kind](path, name=str(source), on_error=on_error, **{**query, **options})


def load(source, split=None, *, task=None, on_error="raise", **options):
    """Read a data source as a `tf.data.Dataset` of raw example dicts.

    Sources (see each reader's docstring for its layout, splits and options):
    - `easy_vqa` / `easy_vqa:PATH`: easy-VQA images and questions (the package's data is the
      default); tasks vqa, classification, captioning, retrieval.
    - `fsdd:PATH`: spoken digits `{digit}_{speaker}_{index}.wav`;
      `{"audio", "label", "speaker"}`; official split (index 0-4 is test).
    - `csv:PATH`: text classification rows; `{"text", "label"}`; labels as in the file.
    - `captions:PATH`: photos and captions in the Flickr8k layout; `{"image", "captions"}`.
    - `tfds:NAME`: a TFDS dataset prepared on disk (`data_dir=`); never downloads.
    - `digit_qa:FSDD_PATH`: spoken + handwritten digits with a question (text, image, audio).
    - `digit_sequences:FSDD_PATH`: utterances of 2-7 spoken digits (one speaker each) and their
      transcripts; `{"audio", "transcript", "speaker", "digits"}`; no recording in two splits.
    - `speech:PATH`: audio files of any length and rate with a `transcripts.csv`;
      `{"audio", "sample_rate", "transcript", "speaker"}`.

    Every item is checked when the source is listed, before any example is read: bad files
    raise a `mmzoo.data.BadDataError` naming each path and what is wrong, or with
    `on_error="skip"` are left out and named in a warning.

    Args:
        source: str. `kind[:PATH][?option=value&...]`.
        split: str or None. `train`, `validation`, `test`, or `all` (None) for everything.
        task: str or None. The task the examples are for; defaults to the source's first.
        on_error: str. `raise` (default) or `skip`.
        **options: options of that kind of source.

    Examples:
    ```python
    test = mmzoo.data.load("fsdd:../shared/data/fsdd", split="test")
    next(iter(test))   # {"audio": <float32 (n,)>, "label": <int64>, "speaker": b"george"}
    train = mmzoo.data.load("easy_vqa", split="train", task="captioning")
    ```
    """
    if split is not None and split not in (*SPLITS, "all") \
            and not str(source).startswith("tfds:"):
        raise InvalidValue(f"unknown split {split!r}; use one of {list(SPLITS)}, or 'all' "
                           "(None) for every item")
    kind = parse_source(source)[0]
    if kind in SOURCES:  # before listing the files
        SOURCES[kind].check_task(task)
    return open_source(source, on_error=on_error, **options).dataset(split, task)


def fit_splits(source, *, task=None, on_error="raise", **options):
    """`(train, validation)` datasets to fit on and to pick the best epoch by.

    The source's own `validation` split when it has one; otherwise (FSDD) 1 in 10 examples of
    its `train` split, picked by a stable hash of each item's name (`mmzoo.data.base.held_out`;
    every class keeps an example in training), is held out as validation and the rest
    is trained on. The source is listed and checked once.

    Examples:
    ```python
    train, val = mmzoo.data.fit_splits("fsdd:../shared/data/fsdd")
    ```
    """
    return open_source(source, on_error=on_error, **options).fit_splits(task)


DEFAULT_SOURCE = "easy_vqa"  # bundled with the easy-vqa package


def sources_for(spec):
    """The source kinds whose examples fit a model (its task, and exactly its modalities; TFDS
    datasets fit by their features): `[(kind, description)]`."""
    return [(kind, cls.description) for kind, cls in SOURCES.items()
            if spec.task in cls.tasks
            and (cls.modalities is None or set(cls.modalities) == set(spec.modalities))]


def default_source(spec):
    """The data `mmzoo train` uses for a model when none is given: the bundled easy-VQA when
    it fits the model's task and modalities (image and text), else an `InvalidValue` naming the
    sources that fit."""
    if DEFAULT_SOURCE in dict(sources_for(spec)):
        return DEFAULT_SOURCE
    fitting = "; ".join(d for _, d in sources_for(spec))
    raise InvalidValue(f"model {spec.name!r} ({spec.task} of {', '.join(spec.modalities)}) has "
                       f"no bundled default data; give --data with a source that fits it: "
                       f"{fitting}")


__all__ = ["SPLITS", "absolute_source", "default_source", "fit_splits", "load", "open_source",
           "parse_source", "sources_for"]
