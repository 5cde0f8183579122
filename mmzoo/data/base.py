"""The `Source` base class: a data source after its files were listed and checked."""

from __future__ import annotations

import tensorflow as tf
from tqdm.auto import tqdm

from mmzoo.errors import InvalidValue

SPLITS = ("train", "validation", "test")
SOURCES = {}  # kind -> Source subclass
SPLIT_EVERY = 10  # sources without splits: item i is validation when i % 10 == 8, test when 9
# `Source.rows` splits: `train` without, and with only, every 10th item (`Source.fit_splits`)
HELD_IN, HELD_OUT = "train (held in)", "train (held out)"


def register_source(cls):
    """Class decorator: make `cls` readable as `"{cls.kind}:PATH"` by `mmzoo.data.load`."""
    if cls.kind in SOURCES:
        raise InvalidValue(f"data source {cls.kind!r} is already registered")
    SOURCES[cls.kind] = cls
    return cls


def index_split(i):
    """The documented deterministic split of item `i` of a source that has none of its own."""
    return {SPLIT_EVERY - 2: "validation", SPLIT_EVERY - 1: "test"}.get(i % SPLIT_EVERY, "train")


def progress(items, desc, unit="file"):
    """`tqdm` over `items` when there are enough of them for the wait to be noticed."""
    items = list(items)
    return tqdm(items, desc=desc, unit=unit, leave=False, mininterval=0.5,
                disable=len(items) < 500)


def progress_bytes(path, desc):
    """A `tqdm` bar over the bytes of file `path` (update it with bytes read), shown when the
    file is big enough (64 MB) for the wait to be noticed."""
    import os

    size = os.path.getsize(path)
    return tqdm(total=size, desc=desc, unit="B", unit_scale=True, leave=False,
                mininterval=0.5, disable=size < 64 * 2**20)


class Source:
    """A data source whose items were listed and checked; `dataset(split, task)` reads them.

    Subclasses set `kind`, `tasks` (the first is the default), `options` (name -> default) and
    `description`, check every item in `__init__` (reporting bad ones through
    `mmzoo.data.checks.Problems`), and implement `split_names` and `dataset`.
    """

    kind = ""
    tasks = ()
    modalities = None  # the modalities its examples hold (None: any, by the data's features)
    options = {}
    description = ""

    def __init__(self, path, *, name, on_error="raise", **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InvalidValue(f"{name}: unknown option(s) {unknown}; {self.kind} sources take "
                               f"{sorted(self.options) or 'no options'}")
        self.path, self.name, self.on_error = path, name, on_error
        self.opts = {**self.options, **options}

    def split_names(self):
        """The splits this source has (a subset of `train`, `validation`, `test`): those its
        listed items (`self.tags`) are in, or that its streamed items are counted in
        (`self.counts`, split -> items)."""
        present = getattr(self, "counts", None)
        present = set(self.tags) if present is None else present
        return tuple(s for s in SPLITS if s in present)

    def counted(self, split, task):
        """The number of items of `split` (None: all) of a streamed source (`self.counts`),
        after checking the split and the task; an empty split fails."""
        self.check_split(split)
        self.check_task(task)
        count = sum(n for s, n in self.counts.items() if split is None or s == split)
        if not count:
            raise self.empty_split(split)
        return count

    def rows(self, split, task):
        """`(rows, task)`: the listed items of `split` (`self.columns` sliced), after checking
        the split and the task (None: the source's first); an empty split fails. The internal
        splits `HELD_IN` and `HELD_OUT` are `train` without / with every 10th item
        (`fit_splits`)."""
        if split in (HELD_IN, HELD_OUT):
            task = self.check_task(task)
            rows = self.select(self.columns, self.tags, "train")
            keep = [(i % SPLIT_EVERY == SPLIT_EVERY - 1) == (split == HELD_OUT)
                    for i in range(len(next(iter(rows.values()))))]
            return {k: [v for v, kept in zip(values, keep) if kept]
                    for k, values in rows.items()}, task
        self.check_split(split)
        task = self.check_task(task)
        rows = self.select(self.columns, self.tags, split)
        if not next(iter(rows.values())):
            raise self.empty_split(split)
        return rows, task

    def check_split(self, split):
        if split is not None and split not in self.split_names():
            extra = ""
            if split == "validation":
                extra = (" (`mmzoo.data.fit_splits` then holds out every "
                         f"{SPLIT_EVERY}th training example for validation)")
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
        every 10th example of `train` (i % 10 == 9 in listing order) held out."""
        if "validation" in self.split_names():
            return (self.dataset("train", task, decode=decode),
                    self.dataset("validation", task, decode=decode))
        if hasattr(self, "columns") and "train" in self.split_names():
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
            return held.map(lambda _, example: example).apply(
                tf.data.experimental.assert_cardinality(size))

        return part(False), part(True)

    @staticmethod
    def select(columns, tags, split):
        """The rows of `columns` (dict of equal-length lists) whose tag is `split` (None: all)."""
        keep = [i for i, t in enumerate(tags) if split is None or t == split]
        return {k: [v[i] for i in keep] for k, v in columns.items()}

    def empty_split(self, split):
        return ValueError(f"{self.name}: split {split!r} is empty (no items are tagged "
                          f"{split!r}); it has {list(self.split_names())}")


def decode_image(path):
    """A uint8 `[height, width, 3]` image from a file path tensor (JPEG, PNG, GIF, BMP, WebP),
    decoded as the exported models decode image bytes (`mmzoo.data.preprocessor`)."""
    from mmzoo.data.preprocessor import decode_image as decode

    return decode(tf.io.read_file(path))
