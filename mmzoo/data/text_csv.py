"""Text classification rows from a CSV file with a header, streamed (never held in memory)."""

from __future__ import annotations

import array
import csv
import os

import numpy as np
import tensorflow as tf

from mmzoo.data.base import (HELD_IN, HELD_OUT, Source, hash_split, in_split, keep_rank,
                              progress_bytes, register_source, train_part)
from mmzoo.data.checks import Problems, file_problem, utf8_lines
from mmzoo.data.text import standardize
from mmzoo.errors import DATA_ERROR, InvalidValue, MissingFile

SPLIT_VALUES = {"train": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test"}
CHUNK_ROWS = 4096  # rows checked (standardised) and read (one tf.data element) at a time
# The part of the file each row is in, kept from the listing as one byte a row (`BAD`: a bad
# row), so that reading a split neither normalises nor hashes a row again.
PARTS = ("validation", "test", HELD_IN, HELD_OUT)
BAD = len(PARTS)


def _names(value):
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        return tuple(v.strip() for v in str(value).split(",") if v.strip())
    return tuple(str(v) for v in value)


@register_source
class TextCSV(Source):
    """`csv:PATH`: one text example per row, `{"text": str, "label": str}`.

    The text is the `text` column, or the `text=` columns joined by a space (by default
    `title` and `description` when the file has no `text` column, as AG News has). Labels keep
    the CSV's own values, as strings.

    Splits: the file's `split` column when it has one (`train`, `validation`/`dev`, `test`);
    otherwise from a stable hash of each row's text as the models read it (`standardize`: lower
    case, runs of characters other than letters and digits one space;
    `mmzoo.data.base.hash_split`: 1 in 10 `validation`, 1 in 10 `test`), so rows with the same
    words share a split (none leaks from training to test) and adding, removing or reordering
    rows moves no other row. Every label keeps a row in training: a label all of whose rows
    hash outside it has its row with the smallest hash moved to `train`.

    Every row is checked when the file is listed: a missing or empty field is reported with
    its line number, and so is a text with no letters or digits (it standardises to nothing, so
    a model would read only padding) and a label outside `labels=` when that is given.

    The file is streamed, both when it is listed and when it is read: listing keeps only the
    count of rows per split and the numbers of bad rows, and `dataset` parses the file again,
    4,096 rows at a time, with the same parser (Python's `csv`, so quoting, embedded newlines and
    escaped quotes read the same in both), so memory does not grow with the file.

    Options:
        text: str. Text column(s), comma-separated.
        label: str. Label column (default `label`).
        labels: str or tuple. The known labels (comma-separated); others are bad rows.
    """

    kind = "csv"
    streams_held_out = True
    tasks = ("classification",)
    modalities = ("text",)
    options = {"text": None, "label": "label", "labels": None}
    description = "csv:PATH: text classification rows (text and label columns)"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        problem = file_problem(path) if path else "no path given"
        if problem and problem.startswith("empty"):
            raise InvalidValue(f"{self.name}: {path} is empty (0 bytes)")
        if problem:
            raise MissingFile(f"{self.name}: cannot read the CSV file ({problem})")
        self.known = _names(self.opts["labels"])
        self.stamp = self._stamp()
        # identities moved into training (`forced`) and into its held-in part (`forced_in`) so
        # that every label is trained on (`mmzoo.data.base.keep_classes`'s rule)
        self.forced, self.forced_in = set(), set()
        for _ in range(3):  # a move changes the counts: list again (only when one is needed)
            problems, rows, moves = self._list()
            if not moves:
                break
        problems.report(f"{rows} rows")
        if not self.counts:
            raise InvalidValue(f"{self.name}: {path} has no data rows")

    def _list(self):
        """Check every row: `(problems, rows, moved)`, `moved` whether a label had no row in
        training (or in its held-in part) and had one moved there, so the file must be listed
        again; sets `self.parts` (each row's part, a byte: `PARTS`, or `BAD`) and
        `self.counts` (rows per split, `train` also as its held-in and held-out parts)."""
        problems = Problems(self.name, self.on_error)
        self.parts, self.counts, rows = array.array("B"), {}, 0
        self.labelled = {}  # label -> {part: (rank, identity) of its best row outside it}
        with progress_bytes(self.path, f"checking {self.name}") as bar:
            chunk = []  # (row number, line, text, split, label) of good rows, checked together
            for i, at, text, label, split, problem in self._parse(bar):
                rows += 1
                self.parts.append(BAD)
                if problem:
                    problems.add(at, problem)
                    continue
                chunk.append((i, at, text, split, label))
                if len(chunk) == CHUNK_ROWS:
                    self._check_words(chunk, problems)
                    chunk = []
            self._check_words(chunk, problems)
        self.counts["train"] = self.counts.get(HELD_IN, 0) + self.counts.get(HELD_OUT, 0)
        if not self.counts["train"]:
            del self.counts["train"]
        moves = 0
        for label, best in self.labelled.items():
            if "train" not in best["seen"] and best["train"] and not self.has_splits:
                moves += best["train"][1] not in self.forced
                self.forced.add(best["train"][1])
            elif "train" in best["seen"] and best[HELD_IN]:
                moves += best[HELD_IN][1] not in self.forced_in
                self.forced_in.add(best[HELD_IN][1])
        return problems, rows, moves

    def _stamp(self):
        stat = os.stat(self.path)
        return stat.st_size, stat.st_mtime_ns

    def _parse(self, bar=None):
        """`(row number, "path:line", text, label, split, problem)` of every data row, in file
        order: `split` the file's own (None without a `split` column); `problem` what is wrong
        with a bad row (None for a good one)."""
        path = self.path
        with open(path, "rb") as f:
            reader = csv.reader(utf8_lines(f, path))
            header = next(reader, None)
            if not header:
                raise InvalidValue(f"{self.name}: {path} is empty (no header line)")
            header = [h.strip() for h in header]
            text_cols = _names(self.opts["text"]) or (
                ("text",) if "text" in header else ("title", "description"))
            label_col = self.opts["label"]
            missing = [c for c in (*text_cols, label_col) if c not in header]
            if missing:
                raise InvalidValue(
                    f"{self.name}: {path} has no column(s) {missing}; its header is {header}. "
                    "Choose columns with the text= and label= options, e.g. "
                    "csv:PATH?text=title,description&label=label")
            self.text_columns = text_cols
            where = {c: header.index(c) for c in (*text_cols, label_col)}
            split_at = header.index("split") if "split" in header else None
            self.has_splits = split_at is not None
            line, i, done = reader.line_num, -1, f.tell() if bar is not None else 0
            for row in reader:
                first_line, line = line + 1, reader.line_num
                if not row:
                    continue  # a blank line is not a row
                at = f"{path}:{first_line}"
                i += 1
                if bar is not None and i % CHUNK_ROWS == 0:
                    now = f.tell()
                    bar.update(now - done)
                    done = now
                if len(row) < len(header):
                    gone = [c for c in header[len(row):] if c in where or c == "split"]
                    if gone:
                        yield i, at, None, None, None, (f"row has {len(row)} of {len(header)} "
                                                        f"fields; missing {gone}")
                        continue
                label = row[where[label_col]].strip()
                text = " ".join(row[where[c]].strip() for c in text_cols).strip()
                tag = None
                problem = None
                if not label:
                    problem = f"empty label ({label_col!r})"
                elif not text:
                    problem = f"empty text ({', '.join(text_cols)})"
                elif self.known is not None and label not in self.known:
                    problem = f"label {label!r} is not one of {list(self.known)}"
                elif split_at is not None:
                    tag = SPLIT_VALUES.get(row[split_at].strip().lower())
                    if tag is None:
                        problem = (f"split {row[split_at]!r} is not one of "
                                   f"{sorted(SPLIT_VALUES)}")
                yield i, at, text, label, tag, problem

    def _tag(self, identity, split):
        """The part a row is in: `validation`, `test`, or `train` as `HELD_IN` / `HELD_OUT`
        (what `fit_splits` holds out when the file has no validation rows); `split` the file's
        own, else from the row's identity (`hash_split`)."""
        if split is None:
            split = "train" if identity in self.forced else hash_split(identity)
        return split if split != "train" else train_part(identity, self.forced_in)

    def _check_words(self, chunk, problems):
        """Each row's part, from its text as the models read it (the models' own `standardize`,
        a chunk at a time: the row's identity); rows whose text standardises to nothing
        (punctuation only: no token a model could read) are bad rows."""
        if not chunk:
            return
        clean = standardize(tf.constant([row[2] for row in chunk])).numpy()
        for (i, at, text, split, label), c in zip(chunk, clean):
            if c:
                identity = c.decode()
                tag = self._tag(identity, split)
                self.counts[tag] = self.counts.get(tag, 0) + 1
                self.parts[i] = PARTS.index(tag)
                self._note_label(label, tag, identity)
                continue
            problems.add(at, f"text {text!r} ({', '.join(self.text_columns)}) has no letters "
                             "or digits: it standardises to nothing")

    def _note_label(self, label, tag, identity):
        """Keep, per label, its row of smallest rank (`keep_rank`) outside training and outside
        training's held-in part, dropping each once the label has a row there: what is left
        after listing is the row to move so that every label is trained on."""
        best = self.labelled.setdefault(label, {"train": None, HELD_IN: None, "seen": set()})
        # (part, the tags inside it, the tags a row may be moved from)
        for part, inside, movable in (("train", (HELD_IN, HELD_OUT), ("validation", "test")),
                                      (HELD_IN, (HELD_IN,), (HELD_OUT,))):
            if part in best["seen"]:
                continue
            if tag in inside:
                best["seen"].add(part)
                best[part] = None
            elif tag in movable:
                rank = (keep_rank(identity), identity)
                if best[part] is None or rank < best[part]:
                    best[part] = rank

    def watched(self):
        return (self.path,), ()

    def dataset(self, split=None, task=None, *, decode=True):
        count = self.counted(split, task)

        def chunks():
            if self._stamp() != self.stamp:
                raise InvalidValue(f"{DATA_ERROR}{self.name}: {self.path} changed after it "
                                   "was listed; open the source again (mmzoo.data.open_source, "
                                   "or run the command again)")
            wanted = bytes(split is None or in_split(part, split) for part in PARTS) + b"\0"
            texts, labels = [], []
            for i, _, text, label, _, _ in self._parse():  # each row's part: from the listing
                if not wanted[self.parts[i]]:
                    continue
                texts.append(text)
                labels.append(label)
                if len(texts) == CHUNK_ROWS:
                    yield {"text": np.array(texts, object), "label": np.array(labels, object)}
                    texts, labels = [], []
            if texts:
                yield {"text": np.array(texts, object), "label": np.array(labels, object)}

        spec = tf.TensorSpec([None], tf.string)
        ds = tf.data.Dataset.from_generator(chunks, output_signature={"text": spec,
                                                                      "label": spec})
        return ds.unbatch().apply(tf.data.experimental.assert_cardinality(count))
