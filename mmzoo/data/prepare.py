"""`prepare`: a data source written once as a TensorFlow Datasets dataset (sharded TFRecords).

A prepared source is read back with plain `tfds.builder_from_directory(DIR)` or as
`mmzoo.data.load("tfds:DIR")`, and, being sharded files, is read sharded by file across the
workers of a multi-worker run (`mmzoo.train`): each worker reads and decodes only its shards.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import numpy as np
import tensorflow as tf

from mmzoo.artifacts import Artifact
from mmzoo.data.base import HELD_IN, HELD_OUT
from mmzoo.data.labels import label_names, label_text
from mmzoo.data.sources import open_source, parse_source
from mmzoo.errors import InvalidValue

VERSION = "1.0.0"


def _features(src, split, labels):
    """The `tfds.features.FeaturesDict` of the source's examples: images as their encoded
    files (`Image`, the bytes as on disk), audio as float32 waveforms (`Audio`), strings as
    `Text`, several captions as a `Sequence` of `Text`, labels as a `ClassLabel` of `labels`,
    anything else as a `Tensor`."""
    import tensorflow_datasets as tfds

    spec = _split(src, split, decode=False).element_spec
    rate = src.opts.get("sample_rate") if hasattr(src, "opts") else None
    features = {}
    for key, s in spec.items():
        if key == "image":
            features[key] = tfds.features.Image(shape=(None, None, 3))
        elif key == "audio":
            features[key] = tfds.features.Audio(shape=(None,), dtype=np.float32,
                                                sample_rate=rate)
        elif key == "label":
            features[key] = tfds.features.ClassLabel(names=labels)
        elif s.dtype == tf.string and s.shape.rank == 0:
            features[key] = tfds.features.Text()
        elif s.dtype == tf.string and s.shape.rank == 1:
            features[key] = tfds.features.Sequence(tfds.features.Text())
        else:
            features[key] = tfds.features.Tensor(shape=tuple(s.shape), dtype=s.dtype.as_numpy_dtype)
    return tfds.features.FeaturesDict(features)


def _split(src, split, decode):
    """Split `split` of `src`; a listed source without a validation split gives the `train`
    and `validation` that `fit_splits` holds out."""
    if src.holds_out() and split in ("train", "validation"):
        split = HELD_IN if split == "train" else HELD_OUT
    return src.dataset(split, decode=decode)


def _split_names(src):
    """The splits to prepare: the source's own, with a held-out `validation` where a listed
    source has none (`Source.fit_splits`)."""
    names = list(src.split_names())
    if src.holds_out():
        names.insert(names.index("train") + 1, "validation")
    return names


def _labels(src, splits):
    """The label names of all `splits` (`mmzoo.data.adapt.label_names`), or None without labels."""
    parts = [_split(src, split, decode=False) for split in splits]
    if "label" not in parts[0].element_spec:
        return None
    whole = parts[0]
    for part in parts[1:]:
        whole = whole.concatenate(part)
    return label_names(whole)


def _examples(src, split, labels):
    """`(key, example)` pairs of `split` for TFDS: images as their file paths (TFDS stores the
    file's bytes), audio decoded, labels as their index among `labels`."""
    raw = _split(src, split, decode=False)
    decoded = _split(src, split, decode=True) if "audio" in raw.element_spec else None
    index = {name: i for i, name in enumerate(labels or ())}
    pairs = (zip(raw.as_numpy_iterator(), decoded.as_numpy_iterator()) if decoded is not None
             else ((e, e) for e in raw.as_numpy_iterator()))
    for i, (plain, full) in enumerate(pairs):
        example = {}
        for key, value in plain.items():
            if key == "image":
                value = value.decode() if isinstance(value, bytes) else value
            elif key == "audio":
                value = np.asarray(full["audio"], np.float32)
            elif key == "label":
                value = index[label_text([value])[0]]
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.ndarray) and value.dtype == object:
                value = [v.decode() for v in value]
            example[key] = value
        yield i, example


def prepare(source, out, *, shards=None, on_error="raise", **options):
    """Write every split of `source` to `out` as a TFDS dataset.

    The result is what a TFDS builder writes (`tfds.dataset_builders.store_as_tfds_dataset`):
    sharded TFRecord files per split, `dataset_info.json` with the split sizes and shard
    lengths, and `features.json`. Images are stored as their encoded files (the bytes on disk,
    not decoded pixels), audio as float32 waveforms at the source's rate, labels as a
    `ClassLabel` (their names as the source spells them; integers as digits), other strings as
    `Text`. Examples keep the source's order. A source without a validation split (FSDD) is
    written with the `train` and `validation` that `mmzoo.data.fit_splits` holds out, so the
    prepared data trains the same way. Read it with `tfds.builder_from_directory(out)` or
    `mmzoo.data.load(f"tfds:{out}")`; a multi-worker run reads it sharded by file.

    Args:
        source: str. A source for `mmzoo.data.open_source` (`fsdd:PATH`, `captions:PATH`,
            `csv:PATH`, ...).
        out: str. The folder to write: new, empty, or this very data prepared before with the
            same splits and shards (then nothing is written: its `manifest.json` says what it
            was made from).
        shards: int or None. Shards per split (None: TFDS's rule, by size; give at least the
            number of workers that will read it).
        on_error: str. `raise` or `skip` bad items of the source.

    Returns:
        The folder, and the split sizes: `(out, {split: examples})`.

    Examples:
    ```python
    mmzoo.data.prepare("fsdd:../shared/data/fsdd", "prepared/fsdd", shards=4)
    train = mmzoo.data.load("tfds:prepared/fsdd", split="train")
    ```
    """
    import tensorflow_datasets as tfds

    if os.path.exists(out) and not os.path.isdir(out):
        raise InvalidValue(f"{out} is a file, not a folder; give a new folder to prepare "
                           f"{source} in (mmzoo writes nothing over a file it did not write)")
    src = open_source(source, on_error=on_error, **options)
    splits = _split_names(src)
    if not splits:
        raise InvalidValue(f"{source}: it has no splits to prepare")
    art = Artifact.at(out, "prepared", {"data": src.identity(None), "splits": splits,
                                        "shards": shards, "version": VERSION})
    found = art.manifest()
    if found is not None:  # prepared before from exactly this data: nothing to do
        return out, found["sizes"]
    if os.path.exists(out) and os.listdir(out):
        raise InvalidValue(f"cannot prepare into {out}: it is not empty (and not this data "
                           "prepared before); choose a new folder")
    if shards:
        small = {s: int(_split(src, s, decode=False).cardinality()) for s in splits}
        small = {s: n for s, n in small.items() if 0 <= n < shards}
        if small:
            split, n = min(small.items(), key=lambda item: item[1])
            raise InvalidValue(f"{source}: --shards {shards} is more than split {split!r} has "
                               f"examples ({n}); a shard needs an example: give --shards {n} "
                               "or fewer")
    labels = _labels(src, splits)
    features = _features(src, splits[0], labels)
    name = "mmzoo_" + parse_source(source)[0].replace("-", "_")
    config = tfds.download.DownloadConfig(num_shards=shards) if shards else None
    sizes = {}

    def write(staging):
        tmp = os.path.join(staging, ".tfds")
        # TFDS prints "Downloading and preparing dataset ..." (nothing is downloaded); its
        # progress bars, on stderr, stay
        with contextlib.redirect_stdout(io.StringIO()):
            builder = tfds.dataset_builders.store_as_tfds_dataset(
                name=name, version=VERSION, features=features,
                split_datasets={split: _examples(src, split, labels) for split in splits},
                data_dir=tmp, description=f"mmzoo.data.prepare({source!r})",
                download_config=config, disable_shuffling=True)
        for entry in os.listdir(builder.data_dir):
            shutil.move(os.path.join(builder.data_dir, entry), os.path.join(staging, entry))
        shutil.rmtree(tmp)
        sizes.update({split: builder.info.splits[split].num_examples for split in splits})

    # written in a staging folder beside `out` and moved into place whole, with a manifest of
    # what it was made from (`mmzoo.artifacts`): a second prepare of the same data is a no-op
    with art.build(sizes=sizes) as staging:
        write(staging)
    return out, sizes


__all__ = ["prepare"]
