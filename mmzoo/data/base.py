"""The `Source` base class: a data source after its files were listed and checked."""

from __future__ import annotations

import functools
import hashlib
import os
import warnings

import tensorflow as tf
from tqdm.auto import tqdm

from mmzoo.data.index import fingerprint
from mmzoo.data.preprocessor import decode_image as decode
from mmzoo.checks import Problems
from mmzoo.errors import DataWarning, InvalidValue

SPLITS = ("train", "validation", "test")
SOURCES = {}  # kind -> Source subclass
SPLIT_EVERY = 10  # sources without splits: 1 item in 10 is validation, 1 in 10 test
# The rule splits are drawn by, recorded by each run: 2 since items stopped moving into training
# (a label with no training item is a bad item), validation was never left empty, and a table's
# file cell became its normalised path (bytes: their digest). `mmzoo evaluate` warns when a run
# was trained under another rule: its test split may hold items it trained on.
SPLIT_RULE = 2
# `Source.rows` splits: `train` without, and with only, the items `held_out` (`Source.fit_splits`)
HELD_IN, HELD_OUT = "train (held in)", "train (held out)"
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
            "false": False, "no": False, "off": False, "0": False}


def register_source(cls):
    """Class decorator: make `cls` readable as `"{cls.kind}:PATH"` by `mmzoo.data.load`."""
    if cls.kind in SOURCES:
        raise InvalidValue(f"data source {cls.kind!r} is already registered")
    SOURCES[cls.kind] = cls
    return cls


def train_part(identity, kept_in=()):
    """`HELD_OUT` for a training item `fit_splits` holds out for validation (`held_out`, unless
    its identity is among `kept_in`), else `HELD_IN`: how streamed sources tag training items."""
    return HELD_OUT if identity not in kept_in and held_out(identity) else HELD_IN


def in_split(tag, split):
    """Whether an item tagged `tag` (`validation`, `test`, `HELD_IN` or `HELD_OUT`: a training
    item and whether `fit_splits` holds it out) is in `split` (None: every split)."""
    return split is None or tag == split or (split == "train" and tag in (HELD_IN, HELD_OUT))


def _bucket(identity, salt=""):
    """A number in [0, 1000) drawn from a stable hash (SHA-256) of `identity`."""
    h = hashlib.sha256(f"{salt}{identity}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big") % 1000


def hash_split(identity):
    """The split of an item of a source without splits of its own, from a stable hash of its
    `identity` (a file's name relative to the data folder; for table rows the photo or
    recording they point to, else their normalised text): `validation` for 1 item in 10,
    `test` for 1 in 10, `train` for the rest. Adding, removing or reordering items moves no
    other item, and items with the same identity share a split."""
    bucket = _bucket(identity) // 100
    return {SPLIT_EVERY - 2: "validation", SPLIT_EVERY - 1: "test"}.get(bucket, "train")


def held_out(identity):
    """Whether a training item is held out for validation by `fit_splits` when its source has
    no validation split: 1 item in 10, by a stable hash of its identity (another hash than
    `hash_split`'s, so it is 1 in 10 of `train` too)."""
    return _bucket(identity, "held out:") % SPLIT_EVERY == SPLIT_EVERY - 1


def progress(items, desc, unit="file"):
    """`tqdm` over `items` when there are enough of them for the wait to be noticed."""
    items = list(items)
    return tqdm(items, desc=desc, unit=unit, leave=False, mininterval=0.5,
                disable=len(items) < 500)


def progress_bytes(path, desc):
    """A `tqdm` bar over the bytes of file `path` (or a list of files; update it with bytes
    read), shown when there are enough (64 MB) for the wait to be noticed."""
    size = sum(map(os.path.getsize, [path] if isinstance(path, str) else path))
    return tqdm(total=size, desc=desc, unit="B", unit_scale=True, leave=False,
                mininterval=0.5, disable=size < 64 * 2**20)


class Source:
    """A data source whose items were listed and checked; `dataset(split, task)` reads them.

    Subclasses set `kind`, `tasks` (the first is the default), `options` (name -> default) and
    `description`, check every item in `__init__` (reporting bad ones through
    `mmzoo.checks.Problems`), and implement `split_names` and `dataset`.
    """

    kind = ""
    tasks = ()
    modalities = None  # the modalities its examples hold (None: any, by the data's features)
    streams_held_out = False  # a streamed source that reads `HELD_IN` / `HELD_OUT` itself
    # `(index, where, what)` of the items whose label has no item in training: bad items once a
    # named split is read (`drop_orphans`), kept when every item is read (`split` None)
    orphans = ()
    # whether the items' splits are the data's own (a split column, split folders, an official
    # split) rather than drawn from a hash: `mmzoo evaluate --data` scores the `test` split of
    # data with its own splits, and every item of data without
    own_splits = True
    options = {}
    description = ""

    def __init__(self, path, *, name, on_error="raise", **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InvalidValue(f"{name}: unknown option(s) {unknown}; {self.kind} sources take "
                               f"{sorted(self.options) or 'no options'}")
        self.path, self.name, self.on_error = path, name, on_error
        self.opts = {**self.options, **{k: self._option(name, k, v) for k, v in options.items()}}

    def _option(self, name, key, value):
        """`value` of option `key` as the type of its default (a bool from true/false/yes/no/1/0,
        an int from digits, a str from anything); a value that is not one names the option."""
        default = self.options[key]
        if isinstance(default, bool):
            text = str(value).strip().lower()
            if isinstance(value, bool) or text in BOOLEANS:
                return value if isinstance(value, bool) else BOOLEANS[text]
            kind = "true or false"
        elif isinstance(default, int):
            try:
                if not isinstance(value, float) or value == int(value):
                    return int(value)
            except (TypeError, ValueError):
                pass
            kind = "an integer"
        elif isinstance(default, float):
            try:
                return float(value)
            except (TypeError, ValueError):
                kind = "a number"
        else:
            return str(value) if isinstance(default, str) else value
        raise InvalidValue(f"{name}: option {key}={value!r} must be {kind} (its default is "
                           f"{default!r})")

    def split_names(self):
        """The splits this source has (a subset of `train`, `validation`, `test`): those its
        listed items (`self.tags`) are in, or that its streamed items are counted in
        (`self.counts`, split -> items)."""
        present = getattr(self, "counts", None)
        present = set(self.tags) if present is None else present
        return tuple(s for s in SPLITS if s in present)

    def drop_orphans(self, split):
        """When a named split is read: report the items whose label has no item in training
        (`self.orphans`; an error, or a warning with `on_error="skip"`) and leave them out of
        every split. A model cannot learn their label, so training, validation and test leave
        them out alike; reading every item (`split` None, what `mmzoo evaluate` scores of data
        that is not a run's own) keeps them. No item moves between splits for their sake."""
        if split is None or not self.orphans:
            return
        problems = Problems(self.name, self.on_error)
        for _, where, what in self.orphans:
            problems.add(where, what)
        problems.report(f"the {self.what_items()} of its splits")
        orphans, self.orphans = self.orphans, ()
        self.leave_out(sorted(i for i, _, _ in orphans))

    def what_items(self):
        return "items"

    def leave_out(self, indices):
        """Remove listed items (their positions in `self.columns` and `self.tags`)."""
        gone = set(indices)
        keep = [i for i in range(len(self.tags)) if i not in gone]
        self.columns = {k: [v[i] for i in keep] for k, v in self.columns.items()}
        self.tags = [self.tags[i] for i in keep]
        if hasattr(self, "identities"):
            self.identities = [self.identities[i] for i in keep]

    def counted(self, split, task):
        """The number of items of `split` (None: all) of a streamed source (`self.counts`,
        split -> items, `train` also as its parts `HELD_IN` and `HELD_OUT` when the source
        holds some out), after checking the split and the task; an empty split fails."""
        self.check_split(split)
        self.check_task(task)
        self.drop_orphans(split)
        if split is None:  # every item once (`train` counts its held-in and held-out parts)
            count = sum(n for s, n in self.counts.items() if s not in (HELD_IN, HELD_OUT))
        else:
            count = self.counts.get(split, 0)
        if not count:
            raise self.empty_split(split)
        return count

    def rows(self, split, task):
        """`(rows, task)`: the listed items of `split` (`self.columns` sliced), after checking
        the split and the task (None: the source's first); an empty split fails. The internal
        splits `HELD_IN` and `HELD_OUT` are `train` without / with the items `held_out` by a
        stable hash of their identity (`self.identities`, `fit_splits`)."""
        self.drop_orphans(split)
        if split in (HELD_IN, HELD_OUT):
            task = self.check_task(task)
            picked = self.select({**self.columns, "_id": self.identities}, self.tags, "train")
            ids = picked.pop("_id")
            out = keep_classes([held_out(i) for i in ids], picked.get("label"), ids)
            out = hold_one_out(out, picked.get("label"), ids, self.name)
            return {k: [v for v, o in zip(values, out) if o == (split == HELD_OUT)]
                    for k, values in picked.items()}, task
        self.check_split(split)
        task = self.check_task(task)
        rows = self.select(self.columns, self.tags, split)
        if not next(iter(rows.values())):
            raise self.empty_split(split)
        return rows, task

    # --- identity -------------------------------------------------------------------------

    def watched(self):
        """`(files, folders)` whose names, sizes and modification times make the source's
        fingerprint (every file in each folder counts)."""
        raise NotImplementedError

    def fingerprint(self):
        """A digest of the files this source reads (`watched`: names, sizes and modification
        times, nothing opened), taken once."""
        if getattr(self, "_fingerprint", None) is None:
            files, folders = self.watched()
            self._fingerprint = fingerprint(files=files, folders=folders)
        return self._fingerprint

    def identity(self, split=None, task=None, decode=True):
        """What `dataset(split, task)` reads, as a JSON-able dict: the source's kind, real path,
        options, `on_error`, fingerprint, the split and the task. Derived files (caches,
        `mmzoo.artifacts`) are keyed by it."""
        return {"source": self.kind,
                "path": os.path.realpath(self.path) if self.path else None,
                "options": {k: self.opts[k] for k in sorted(self.opts)},
                "on_error": self.on_error, "fingerprint": self.fingerprint(),
                "split": split, "task": task, "decode": decode}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        read = cls.__dict__.get("dataset")
        if read is None:
            return

        @functools.wraps(read)
        def dataset(self, split=None, task=None, *, decode=True):
            split = None if split == "all" else split  # `all` is a split everywhere
            ds = read(self, split, task, decode=decode)
            ds.identity = self.identity(split, self.check_task(task), decode)
            return ds

        cls.dataset = dataset

    def audio_rates(self):
        """`{sample rate: items}`: the rates this source's audio is read at (each file's own
        unless its `sample_rate` option says otherwise), so that a run can say when the
        pipeline resamples it to the model's rate; `{}` without audio (or when unknown)."""
        return {}

    def label_counts(self):
        """`{label: items}` of a listed source's items (`{}` without labels)."""
        counts = {}
        for label, tag in zip((getattr(self, "columns", None) or {}).get("label", ()),
                              self.tags):
            if tag is not None:
                counts[str(label)] = counts.get(str(label), 0) + 1
        return counts

    def audio_seconds(self, split="train"):
        """The lengths (seconds, from the files' headers at listing) of the audio clips of
        `split` (None: every item), so that a run can choose its clip length from them and say
        what it cuts; `[]` without audio (or when unknown)."""
        columns = getattr(self, "columns", None) or {}
        if "seconds" not in columns:
            return []
        return [s for s, tag in zip(columns["seconds"], self.tags)
                if tag is not None and in_split(tag, split)]

    def holds_out(self):
        """Whether `fit_splits` holds validation items out of `train` by their identity, as the
        splits `HELD_IN` and `HELD_OUT` of `dataset`: a source without a validation split
        whose items have an identity (listed: `self.identities`; streamed:
        `streams_held_out`)."""
        names = self.split_names()
        return ("validation" not in names and "train" in names
                and (hasattr(self, "identities") or self.streams_held_out))

    def check_split(self, split):
        if split in (HELD_IN, HELD_OUT) and self.holds_out():
            return
        if split is not None and split not in self.split_names():
            extra = ""
            if split == "validation":
                extra = (" (`mmzoo.data.fit_splits` then holds out 1 in "
                         f"{SPLIT_EVERY} training examples for validation)")
            raise InvalidValue(f"{self.name} has no split {split!r}; it has "
                               f"{list(self.split_names())} or None for all{extra}")

    @classmethod
    def check_task(cls, task):
        task = task or cls.tasks[0]
        if task not in cls.tasks:
            raise InvalidValue(f"source {cls.kind!r} has no data for task {task!r}; it has "
                               f"{list(cls.tasks)}")
        return task

    def dataset(self, split=None, task=None, *, decode=True):  # pragma: no cover - abstract
        """The examples of `split` (None: all) for `task`; `decode=False` leaves images and
        audio as their file paths (cheap: for reading only text and labels)."""
        raise NotImplementedError

    def fit_splits(self, task=None, *, decode=True):
        """`(train, validation)`: the source's own validation split when it has one, else
        1 in 10 examples of `train` held out: by a stable hash of each item's identity for a
        listed or streamed source (`held_out`; each split decodes only its own items), every
        10th in reading order for any other (TFDS)."""
        if "validation" in self.split_names():
            return (self.dataset("train", task, decode=decode),
                    self.dataset("validation", task, decode=decode))
        if self.holds_out():
            # a listed source: the items are split before any is read, so each split decodes
            # only its own items
            return (self.dataset(HELD_IN, task, decode=decode),
                    self.dataset(HELD_OUT, task, decode=decode))
        full = self.dataset("train", task, decode=decode)
        total = int(full.cardinality())
        numbered = full.enumerate()

        def part(validation):
            held = numbered.filter(
                lambda i, _: (i % SPLIT_EVERY == SPLIT_EVERY - 1) == validation)
            size = total // SPLIT_EVERY if validation else total - total // SPLIT_EVERY
            ds = held.map(lambda _, example: example).apply(
                tf.data.experimental.assert_cardinality(size))
            ds.identity = {**full.identity, "split": HELD_OUT if validation else HELD_IN}
            return ds

        return part(False), part(True)

    @staticmethod
    def select(columns, tags, split):
        """The rows of `columns` (dict of equal-length lists) whose tag is `split` (None: all)."""
        keep = [i for i, t in enumerate(tags) if split is None or t == split]
        return {k: [v[i] for i in keep] for k, v in columns.items()}

    def empty_split(self, split):
        if split == HELD_OUT:
            trained = self.counts.get(HELD_IN, 0) if hasattr(self, "counts") else sum(
                t == "train" for t in self.tags)
            return too_small(self.name, trained, "its")
        return InvalidValue(f"{self.name}: split {split!r} is empty (no items are tagged "
                          f"{split!r}); it has {list(self.split_names())}")


def keep_rank(identity):
    """The rank by which `keep_classes` picks the item of a label to move into training."""
    return _bucket(identity, "keep:")


def keep_classes(out, labels, identities=None):
    """`out` (whether each item is left out of training) with every class kept in training:
    a label none of whose items is in training gets the item with the smallest hash of its
    identity (`identities`, else its position) back. `labels` None: `out` as it is."""
    if labels is None:
        return list(out)
    out = list(out)
    trained = {label for label, o in zip(labels, out) if not o}
    best = {}
    for i, (label, o) in enumerate(zip(labels, out)):
        if label in trained:
            continue
        rank = keep_rank(identities[i] if identities is not None else i)
        if label not in best or rank < best[label][0]:
            best[label] = (rank, i)
    for _, i in best.values():
        out[i] = False
    return out


def out_rank(identity):
    """The rank by which `hold_one_out` picks the training item to hold out for validation."""
    return (_bucket(identity, "held out:"), str(identity))


def hold_one_out(out, labels, identities, name=""):
    """`out` (whether each training item is held out for validation) with at least one item
    held out: when the hash held none out, the item of smallest `out_rank` among those whose
    label keeps another training item (any item when there are no labels). Training data too
    small for that (every label one item) fails naming the source."""
    out = list(out)
    if any(out) or not out:
        return out
    counts = {}
    for label in (labels if labels is not None else [None] * len(out)):
        counts[label] = counts.get(label, 0) + 1
    movable = [i for i in range(len(out))
               if (len(out) > 1 if labels is None else counts[labels[i]] > 1)]
    if not movable:
        raise too_small(name, len(out), f"its {len(counts)}")
    out[min(movable, key=lambda i: out_rank(identities[i]))] = True
    return out


def too_small(name, items, labels):
    """The error of training data too small to hold one item out for validation."""
    return InvalidValue(
        f"{name}: its {items} training item(s) are too few to hold one out for validation "
        f"(each of {labels} label(s) has one); add items, or give a validation split "
        "(a split column, or validation/ folders)")


FEW_EXAMPLES = 5  # classes with fewer training examples are named in a warning


def warn_few_classes(name, trained):
    """Warn naming the classes with fewer than `FEW_EXAMPLES` training examples (`trained`:
    label -> its training examples)."""
    few = sorted((n, label) for label, n in trained.items() if 0 < n < FEW_EXAMPLES)
    if few:
        warnings.warn(DataWarning(
            f"{name}: {len(few)} class(es) have fewer than {FEW_EXAMPLES} training examples "
            "(a model learns little of them): "
            + ", ".join(f"{label!r} ({n})" for n, label in few[:10])
            + (" ..." if len(few) > 10 else ""),
            [f"{label}: {n} training example(s)" for n, label in few]), stacklevel=4)


def decode_image(path):
    """A uint8 `[height, width, 3]` image from a file path tensor (JPEG, PNG, GIF, BMP, WebP),
    decoded as the exported models decode image bytes (`mmzoo.data.preprocessor`)."""
    return decode(tf.io.read_file(path))
