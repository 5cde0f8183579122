"""Image-caption folders in the Flickr8k layout: `Images/`, `captions.txt` and `splits.txt`."""

from __future__ import annotations

import csv
import os
import warnings

import tensorflow as tf

from mmzoo.data.base import (HELD_IN, HELD_OUT, Source, decode_image, hash_split, out_rank,
                              register_source, train_part)
from mmzoo.checks import (Problems, file_problem, image_problem, outside_problem,
                               utf8_lines)
from mmzoo.data.index import check_files, fingerprint, indexed
from mmzoo.data.table import SPLIT_VALUES
from mmzoo.errors import DataWarning, InvalidValue, MissingFile

NO_SPLIT = "none"  # a splits.txt value: the image is in no split (only in split=None)


def _find(root, *names):
    for name in names:
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    return os.path.join(root, names[0])


@register_source
class Captions(Source):
    """`captions:PATH`: photos with several captions each, `{"image", "captions"}` per image.

    Layout (Flickr8k's): `Images/` (or `images/`) holding the photos; `captions.txt`, a CSV of
    `image,caption` lines (an optional `image,caption` header; several lines per image);
    optionally `splits.txt`, `image,split` lines with split `train`, `dev`/`validation`/`val`,
    `test`, or `none` (in no split, only in `split=None`); any other value is a bad line, named
    with its line number. Without `splits.txt`, each image's split comes from a stable hash of
    its name (`mmzoo.data.base.hash_split`: 1 in 10 `validation`, 1 in 10 `test`), so adding or
    removing photos moves no other photo to another split. A photo name that is absolute or
    climbs out of `Images/` with `..` is a bad line unless `allow_outside=true`.

    Every photo is checked when the folder is listed (missing, empty, not an image, truncated;
    in parallel), and every caption line (malformed, empty caption). Photos in `Images/`
    without a caption are named in a warning. What the listing found is recorded in an index
    (`mmzoo.data.index`: a TFRecord of each usable photo's name, captions and split, and the
    bad items): the next listing of the unchanged folder reads it instead of checking every
    file again, and `dataset` streams it with tf.data, so no split's captions are held in
    memory. The index lives in mmzoo's cache, never in the data folder unless `index_dir=`
    says so (`mmzoo.data.index`).

    Options:
        index_dir: str. Folder for the folder's index (default: mmzoo's cache).
        allow_outside: bool. Read photos named by absolute paths or with `..` (default false).

    Examples: `image` is uint8 `[height, width, 3]`, `captions` a 1-D tf.string tensor.
    """

    kind = "captions"
    streams_held_out = True
    tasks = ("captioning", "retrieval")
    modalities = ("image", "text")
    options = {"index_dir": None, "allow_outside": False}
    description = "captions:PATH: photos + captions.txt (Flickr8k layout)"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        if not path or not os.path.isdir(path):
            raise MissingFile(f"{self.name}: no folder at {path!r}")
        self.images = _find(path, "Images", "images")
        caption_file = os.path.join(path, "captions.txt")
        for needed in (self.images, caption_file):
            if not os.path.exists(needed):
                raise MissingFile(
                    f"{self.name}: {needed} is missing; expected the Flickr8k layout: Images/, "
                    "captions.txt (image,caption lines) and optionally splits.txt")
        split_file = os.path.join(path, "splits.txt")
        self.caption_file, self.split_file = caption_file, split_file
        self.own_splits = os.path.isfile(split_file)
        digest = fingerprint(files=(caption_file, split_file), folders=(self.images,))
        self._fingerprint = digest
        meta, self.records = indexed(
            path, INDEX_NAME, digest, lambda: self._list(caption_file, split_file),
            index_dir=self.opts["index_dir"])
        self.counts = meta["counts"]
        images = self.images
        if meta["uncaptioned"]:
            warnings.warn(DataWarning(
                f"{self.name}: {len(meta['uncaptioned'])} file(s) in {images} have no caption "
                "and are not used", [os.path.join(images, n) for n in meta["uncaptioned"]]),
                stacklevel=4)
        problems = Problems(self.name, self.on_error)
        for where, what in meta["problems"]:
            problems.add(where, what)
        problems.report(f"{meta['listed']} captioned images and their caption lines")
        if not sum(self.counts.values()):
            raise InvalidValue(f"{self.name}: no usable captioned images in {path!r}")
        if meta["unlisted"]:
            warnings.warn(DataWarning(f"{self.name}: {len(meta['unlisted'])} captioned image(s) "
                                      "are not in splits.txt, so only in split=None",
                                      [os.path.join(images, n) for n in meta["unlisted"]]),
                          stacklevel=4)

    def _list(self, caption_file, split_file):
        """Read the caption and split files and check every captioned photo (in parallel):
        `(metadata, records)`, the records one `tf.train.Example` per usable photo in name
        order (its name, captions and split) and the metadata what the listing found (counts
        per split, bad items, uncaptioned and unlisted photos)."""
        problems = Problems(self.name, "skip")  # collected here, reported by the caller
        captions, lines = self._read_captions(caption_file, problems)
        if not captions and not problems:
            raise InvalidValue(f"{self.name}: {caption_file} is empty (no image,caption lines)")
        images = self.images
        uncaptioned = sorted(n for n in set(os.listdir(images)) - set(captions)
                             if not n.startswith("."))
        splits = self._read_splits(split_file, problems)
        order = sorted(captions)
        real = os.path.realpath(images)
        found = check_files([os.path.join(images, n) for n in order], image_problem,
                            f"checking {self.name}")
        counts, records, tags = {}, [], []
        for name, problem in zip(order, found):
            if problem:
                problems.add(os.path.join(images, name),
                             f"{problem} (captioned on {caption_file} line {lines[name]})")
                continue
            tag = hash_split(name) if splits is None else splits.get(name, NO_SPLIT)
            if tag == "train":  # and whether `fit_splits` holds it out (without validation)
                tag = train_part(name)
                counts["train"] = counts.get("train", 0) + 1
            counts[tag] = counts.get(tag, 0) + 1
            records.append(_record(os.path.normpath(os.path.join(real, name)), captions[name],
                                   tag))
            tags.append((tag, name))
        held = [name for tag, name in tags if tag == HELD_IN]
        if len(held) > 1 and not counts.get(HELD_OUT) and "validation" not in counts:
            # validation is never empty: the photo of smallest rank is held out (`hold_one_out`)
            name = min(held, key=out_rank)
            i = tags.index((HELD_IN, name))
            records[i] = _record(os.path.normpath(os.path.join(real, name)), captions[name],
                                 HELD_OUT)
            counts[HELD_IN] -= 1
            counts[HELD_OUT] = 1
        unlisted = [] if splits is None else [n for n in order if n not in splits]
        meta = {"counts": counts, "listed": len(order), "problems": problems.items,
                "uncaptioned": uncaptioned, "unlisted": unlisted}
        return meta, records

    def _read_captions(self, caption_file, problems):
        captions, first_line = {}, {}
        with open(caption_file, "rb") as f:
            reader = csv.reader(utf8_lines(f, caption_file))
            line = 0
            for row in reader:
                start, line = line + 1, reader.line_num
                if not row or (start == 1 and [c.strip().lower() for c in row[:2]]
                               == ["image", "caption"]):
                    continue
                at = f"{caption_file}:{start}"
                if len(row) < 2:
                    problems.add(at, f"expected image,caption, got {row!r}")
                    continue
                name, caption = row[0].strip(), ",".join(row[1:]).strip()
                if not caption:
                    problems.add(at, f"empty caption for {name}")
                    continue
                outside = outside_problem(name, self.opts["allow_outside"])
                if outside:
                    problems.add(at, outside)
                    continue
                captions.setdefault(name, []).append(caption)
                first_line.setdefault(name, start)
        return captions, first_line

    def _read_splits(self, split_file, problems):
        if not os.path.exists(split_file):
            return None
        problem = file_problem(split_file)
        if problem:
            problems.add(split_file, problem)
            return None
        splits = {}
        with open(split_file, "rb") as f:
            for n, row in enumerate(csv.reader(utf8_lines(f, split_file)), start=1):
                if not row or (n == 1 and [c.strip().lower() for c in row] == ["image", "split"]):
                    continue
                if len(row) != 2:
                    problems.add(f"{split_file}:{n}", f"expected image,split, got {row!r}")
                    continue
                value = row[1].strip().lower()
                if value not in SPLIT_VALUES and value != NO_SPLIT:
                    problems.add(f"{split_file}:{n}",
                                 f"split {row[1].strip()!r} of {row[0].strip()} is not one of "
                                 f"{sorted(SPLIT_VALUES) + [NO_SPLIT]}")
                    continue
                splits[row[0].strip()] = SPLIT_VALUES.get(value, value)
        return splits

    def watched(self):
        return (self.caption_file, self.split_file), (self.images,)

    def dataset(self, split=None, task=None, *, decode=True):
        count = self.counted(split, task)
        features = {"image": tf.io.FixedLenFeature([], tf.string),
                    "captions": tf.io.VarLenFeature(tf.string),
                    "split": tf.io.FixedLenFeature([], tf.string)}
        def parse(record):
            e = tf.io.parse_single_example(record, features)
            return {"image": e["image"], "captions": e["captions"].values,
                    "split": e["split"]}

        ds = tf.data.TFRecordDataset(self.records).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        if split == "train":
            ds = ds.filter(lambda e: tf.logical_or(tf.equal(e["split"], HELD_IN),
                                                   tf.equal(e["split"], HELD_OUT)))
        elif split is not None:
            ds = ds.filter(lambda e: tf.equal(e["split"], split))
        ds = ds.map(lambda e: {"image": e["image"], "captions": e["captions"]})
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
        if not decode:
            return ds
        return ds.map(lambda e: {"image": decode_image(e["image"]), "captions": e["captions"]},
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


INDEX_NAME = "captions"


def _record(name, captions, split):
    """One photo of the index (its path, captions and split): a serialized
    `tf.train.Example`."""
    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image": strings([name]), "captions": strings(captions),
        "split": strings([split])})).SerializeToString()
