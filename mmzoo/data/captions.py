"""Image-caption folders in the Flickr8k layout: `Images/`, `captions.txt` and `splits.txt`."""

from __future__ import annotations

import csv
import os
import warnings

import tensorflow as tf

from mmzoo.data.base import Source, decode_image, index_split, progress, register_source
from mmzoo.data.checks import Problems, file_problem, image_problem
from mmzoo.data.text_csv import SPLIT_VALUES
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
    with its line number. Without `splits.txt`, image i in sorted order is `validation` when
    i % 10 == 8, `test` when i % 10 == 9, `train` otherwise.

    Every photo is checked when the folder is listed (missing, empty, not an image, truncated),
    and every caption line (malformed, empty caption). Photos in `Images/` without a caption are
    named in a warning.

    Examples: `image` is uint8 `[height, width, 3]`, `captions` a 1-D tf.string tensor.
    """

    kind = "captions"
    tasks = ("captioning", "retrieval")
    modalities = ("image", "text")
    description = "captions:PATH: photos + captions.txt (Flickr8k layout)"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        if not path or not os.path.isdir(path):
            raise MissingFile(f"{self.name}: no folder at {path!r}")
        images = _find(path, "Images", "images")
        caption_file = os.path.join(path, "captions.txt")
        for needed in (images, caption_file):
            if not os.path.exists(needed):
                raise MissingFile(
                    f"{self.name}: {needed} is missing; expected the Flickr8k layout: Images/, "
                    "captions.txt (image,caption lines) and optionally splits.txt")
        problems = Problems(self.name, self.on_error)
        captions, lines = self._read_captions(caption_file, problems)
        if not captions and not problems:
            raise InvalidValue(f"{self.name}: {caption_file} is empty (no image,caption lines)")
        on_disk = set(os.listdir(images))
        uncaptioned = sorted(on_disk - set(captions))
        if uncaptioned:
            warnings.warn(DataWarning(f"{self.name}: {len(uncaptioned)} file(s) in {images} have "
                                      "no caption and are not used",
                                      [os.path.join(images, n) for n in uncaptioned]),
                          stacklevel=4)
        splits = self._read_splits(os.path.join(path, "splits.txt"), problems)
        self.columns, self.tags = {"image": [], "captions": []}, []
        order = sorted(captions)
        for i, name in enumerate(progress(order, f"checking {self.name}")):
            full = os.path.join(images, name)
            problem = image_problem(full)
            if problem:
                problems.add(full, f"{problem} (captioned on {caption_file} line {lines[name]})")
                continue
            tag = index_split(i) if splits is None else splits.get(name, NO_SPLIT)
            self.columns["image"].append(full)
            self.columns["captions"].append(captions[name])
            self.tags.append(tag)
        problems.report(f"{len(order)} captioned images and their caption lines")
        if not self.tags:
            raise InvalidValue(f"{self.name}: no usable captioned images in {path!r}")
        if splits is not None:
            unlisted = [n for n in order if n not in splits]
            if unlisted:
                warnings.warn(DataWarning(f"{self.name}: {len(unlisted)} captioned image(s) are "
                                          "not in splits.txt, so only in split=None",
                                          [os.path.join(images, n) for n in unlisted]),
                              stacklevel=4)

    def _read_captions(self, caption_file, problems):
        captions, first_line = {}, {}
        with open(caption_file, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
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
        with open(split_file, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(f), start=1):
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

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        ds = tf.data.Dataset.from_tensor_slices(
            {"image": rows["image"], "captions": tf.ragged.constant(rows["captions"])})
        if not decode:
            return ds
        return ds.map(lambda e: {"image": decode_image(e["image"]), "captions": e["captions"]},
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
