"""Text classification rows from a CSV file with a header."""

from __future__ import annotations

import csv

import tensorflow as tf

from mmzoo.data.base import Source, index_split, register_source
from mmzoo.data.checks import Problems, file_problem
from mmzoo.data.text import standardize
from mmzoo.errors import InvalidValue, MissingFile

SPLIT_VALUES = {"train": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test"}


def _names(value):
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


@register_source
class TextCSV(Source):
    """`csv:PATH`: one text example per row, `{"text": str, "label": str}`.

    The text is the `text` column, or the `text=` columns joined by a space (by default
    `title` and `description` when the file has no `text` column, as AG News has). Labels keep
    the CSV's own values, as strings.

    Splits: the file's `split` column when it has one (`train`, `validation`/`dev`, `test`);
    otherwise by data row number i (0-based, header not counted): `validation` when
    i % 10 == 8, `test` when i % 10 == 9, `train` for the rest (80/10/10, deterministic).

    Every row is checked when the file is listed: a missing or empty field is reported with
    its line number, and so is a text with no letters or digits (it standardises to nothing, so
    a model would read only padding) and a label outside `labels=` when that is given.

    Options:
        text: str. Text column(s), comma-separated.
        label: str. Label column (default `label`).
        labels: str or tuple. The known labels (comma-separated); others are bad rows.
    """

    kind = "csv"
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
        known = _names(self.opts["labels"])
        problems = Problems(self.name, self.on_error)
        self.columns, self.tags = {"text": [], "label": []}, []
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
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
            where = {c: header.index(c) for c in (*text_cols, label_col)}
            split_at = header.index("split") if "split" in header else None
            line, rows, lines = reader.line_num, 0, []
            for row in reader:
                first_line, line = line + 1, reader.line_num
                if not row:
                    continue  # a blank line is not a row
                at = f"{path}:{first_line}"
                i, rows = rows, rows + 1
                if len(row) < len(header):
                    gone = [c for c in header[len(row):] if c in where or c == "split"]
                    if gone:
                        problems.add(at, f"row has {len(row)} of {len(header)} fields; "
                                         f"missing {gone}")
                        continue
                label = row[where[label_col]].strip()
                text = " ".join(row[where[c]].strip() for c in text_cols).strip()
                if not label:
                    problems.add(at, f"empty label ({label_col!r})")
                    continue
                if not text:
                    problems.add(at, f"empty text ({', '.join(text_cols)})")
                    continue
                if known is not None and label not in known:
                    problems.add(at, f"label {label!r} is not one of {list(known)}")
                    continue
                tag = index_split(i)
                if split_at is not None:
                    tag = SPLIT_VALUES.get(row[split_at].strip().lower())
                    if tag is None:
                        problems.add(at, f"split {row[split_at]!r} is not one of "
                                         f"{sorted(SPLIT_VALUES)}")
                        continue
                self.columns["text"].append(text)
                self.columns["label"].append(label)
                self.tags.append(tag)
                lines.append(at)
        self._drop_wordless(lines, text_cols, problems)
        problems.report(f"{rows} rows")
        if not self.tags:
            raise InvalidValue(f"{self.name}: {path} has no data rows")

    def _drop_wordless(self, lines, text_cols, problems):
        """Rows whose text standardises to nothing (punctuation only: no token a model could
        read) are bad rows too; one batched `standardize` over every text finds them."""
        if not self.tags:
            return
        clean = standardize(tf.constant(self.columns["text"])).numpy()
        empty = {i for i, c in enumerate(clean) if not c}
        for i in sorted(empty):
            problems.add(lines[i], f"text {self.columns['text'][i]!r} ({', '.join(text_cols)}) "
                                   "has no letters or digits: it standardises to nothing")
        if empty:
            keep = [i for i in range(len(self.tags)) if i not in empty]
            self.columns = {k: [v[i] for i in keep] for k, v in self.columns.items()}
            self.tags = [self.tags[i] for i in keep]

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        return tf.data.Dataset.from_tensor_slices(rows)

