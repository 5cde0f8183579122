"""Tables of examples, streamed (never held in memory): `csv:`, `jsonl:` and `parquet:`.

A table's columns are the model's inputs, named as mmzoo names them (`image`, `audio`, `text`,
`question`, `transcript`) plus `label`, and optionally `split` and `speaker`; columns named
otherwise are mapped with options (`csv:items.csv?image=photo&text=title`). An `image` or
`audio` cell is a path relative to the table's folder, or the file's bytes (a Parquet struct of
`bytes` and `path`, as Hugging Face `datasets` stores its Image and Audio features).
"""

from __future__ import annotations

import array
import base64
import contextlib
import csv
import decimal
import hashlib
import io
import json
import os
import re
import urllib.parse

import numpy as np
import tensorflow as tf

from mmzoo.data.base import (HELD_IN, HELD_OUT, Source, hash_split, in_split,
                              keep_rank, out_rank, progress_bytes, register_source,
                              train_part, warn_few_classes)
from mmzoo.checks import (Problems, any_field_size, audio_facts, file_problem, image_bytes_problem,
                          image_problem, warn_silent,
                          outside_problem, read_audio)
from mmzoo.data.preprocessor import decode_image as decode_bytes
from mmzoo.data.text import standardize
from mmzoo.errors import DATA_ERROR, InvalidValue, MissingFile

SPLIT_VALUES = {"train": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test"}
CHUNK_ROWS = 4096  # rows checked (standardised) and read (one tf.data element) at a time
# The part of the table each row is in, kept from the listing as one byte a row (`BAD`: a bad
# row), so that reading a split neither normalises nor hashes a row again.
PARTS = ("validation", "test", HELD_IN, HELD_OUT)
BAD = len(PARTS)
MEDIA = ("image", "audio")
TEXTS = ("text", "question", "transcript")
# roles whose column is found by its own name when the option does not name one
ROLES = (*MEDIA, *TEXTS, "label", "split", "speaker")
DELIMITERS = ",;\t|"
_SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, as surrogateescape keeps it


def _names(value):
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        return tuple(v.strip() for v in str(value).split(",") if v.strip())
    return tuple(str(v) for v in value)


def _labels(value):
    """The known labels of the `labels=` option, spelled as `label_str` spells cells."""
    names = _names(value)
    return None if names is None else tuple(label_str(n) for n in names)


_NUMBER = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?")


def label_str(value):
    """A label cell as the model's class names spell it (`mmzoo.data.adapt.label_text`): text
    stripped of spaces, integers in decimal, numbers in their shortest form whether a cell
    holds them as numbers or as text (`2`, `2.0`, ` 2` and `+2` are one class; `007` stays
    text), booleans `true`/`false`."""
    if type(value) is str:
        text = value.strip()
        match = _NUMBER.fullmatch(text)
        if match:  # exactly, in digits (never through a float: 20-digit ids stay apart)
            if not match.group(2) or not match.group(2).strip(".0"):
                return str(int(match.group(1)) * (-1 if text.startswith("-") else 1))
            return format(decimal.Decimal(text).normalize(), "f")
        return text
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return str(value).strip()


class Table(Source):
    """A table of examples, one row each (see the module docstring); subclasses read rows.

    Splits: the `split` column when there is one (`train`, `validation`/`dev`, `test`);
    otherwise from a stable hash of each row's identity (`mmzoo.data.base.hash_split`: 1 in 10
    `validation`, 1 in 10 `test`): the image or audio file it names (so every row of a photo
    shares its split), else its text as the models read it (`standardize`), so rows with the same
    words share a split and adding, removing or reordering rows moves no other row. No row moves
    into or out of `test` or `validation` for any reason: a label with no training row is a bad
    item, named when a split is read (`Source.drop_orphans`); reading every row (split None)
    keeps it. Inside training, the part `fit_splits` holds out for validation is never empty
    (`mmzoo.data.base.hold_one_out`'s rule). Classes with fewer than five training rows are
    named in a warning.

    Every row is checked when the table is listed: empty or missing fields, a text without
    letters or digits (it standardises to nothing), a label outside `labels=`, an unknown
    split, an image or audio file that is missing, not an image or audio, truncated, or outside
    the table's folder (unless `allow_outside=true`); each is named with its line or row.

    Tasks: `classification` and `vqa` give each row's inputs and `label`; `captioning` and
    `retrieval` give `{"image", "captions"}`, the captions (`text`) of every row of an image
    together (a cell may also hold a list of captions); `transcription` gives `{"audio",
    "transcript", "speaker"}` (`transcript`, else `text`). Audio comes with its `sample_rate`:
    the file's own unless `sample_rate=` says otherwise (`mmzoo.data.pipeline` resamples to the
    model's rate).

    Options:
        image, audio, question, transcript: str. The column of that input (default: the
            column of that name, when the table has one).
        text: str. Text column(s), comma-separated, joined by a space (default `text`, else
            `title,description` as AG News has them).
        label, split, speaker: str. Those columns (default: their own names).
        labels: str or tuple. The known labels (comma-separated); others are bad rows.
        sample_rate: int. Read audio at this rate (0: each file's own).
        allow_outside: bool. Read files named by absolute paths or with `..`.
    """

    streams_held_out = True
    tasks = ("classification", "vqa", "captioning", "retrieval", "transcription")
    modalities = None  # whichever columns the table has
    options = {"image": None, "audio": None, "text": None, "question": None,
               "transcript": None, "label": None, "split": None, "speaker": None,
               "labels": None, "sample_rate": 0, "allow_outside": False}
    what = "rows"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        if path and os.path.isdir(path):
            self.files = self._split_files(path)
        else:
            problem = file_problem(path) if path else "no path given"
            if problem and problem.startswith("empty"):
                raise InvalidValue(f"{self.name}: {path} is empty (0 bytes)")
            if problem:
                raise MissingFile(f"{self.name}: cannot read {path or 'the table'} ({problem})")
            self.files = [(path, None)]
        # file cells name files relative to their table's folder; a file's identity (what its
        # split is drawn from) is its path relative to the data's root: a table's folder, or the
        # folder of tables given
        self.root = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(
            os.path.abspath(path)))
        self.headers = {}  # file -> its columns (JSON Lines: every object's keys)
        self.class_names = {}  # column -> the names of its integer classes (a ClassLabel)
        self.own_splits = any(split for _, split in self.files)
        self.known = _labels(self.opts["labels"])
        self.stamp = self._stamp()
        # identities moved, inside training, into its held-in part (`forced_in`) so that every
        # label is trained on (`mmzoo.data.base.keep_classes`'s rule), and into its held-out
        # part (`forced_out`) so that validation is never empty (`hold_one_out`'s); no row
        # ever moves into or out of `test` or `validation`
        self.forced_in, self.forced_out = set(), set()
        for _ in range(3):  # a move changes the counts: list again (only when one is needed)
            problems, rows, moves = self._list()
            if not moves:
                break
        self.own_splits = self.own_splits or "split" in self.roles
        self._find_orphans()
        problems.report(f"{rows} {self.what}")
        warn_silent(self.name, self.silent, len(self.rates) and sum(self.rates.values()))
        if not self.counts:
            raise InvalidValue(f"{self.name}: {path} has no data {self.what}")
        self._warn_few()

    # --- files ------------------------------------------------------------------------------

    extensions = ()

    def _split_files(self, path):
        """`[(file, split or None)]` of a folder of tables as the Hugging Face Hub lays them out
        (`data/train-00000-of-00002.parquet`, `test.csv`, `valid/0.jsonl`): every file with
        the format's extension under `path`, its split from the first word of its name or of
        a folder above it (`train`, `validation`/`valid`/`val`/`dev`, `test`). Files of no
        split are read together with their splits drawn from a hash, unless others have one."""
        found = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.lower().endswith(self.extensions) \
                        and name not in HUB_METADATA:
                    full = os.path.join(root, name)
                    found.append((full, _split_of(os.path.relpath(full, path))))
        if not found:
            raise InvalidValue(f"{self.name}: no {'/'.join(self.extensions)} files under "
                               f"{path!r}; give a table file, or a folder of them (e.g. "
                               f"data/train-00000-of-00001{self.extensions[0]})")
        loose = [f for f, split in found if split is None]
        if loose and len(loose) < len(found):
            raise InvalidValue(
                f"{self.name}: {len(loose)} file(s) under {path!r} name no split (train, "
                f"validation, test) while others do: {', '.join(loose[:3])}; rename them, "
                "or give one file")
        configs = sorted({_config_of(os.path.relpath(f, path)) for f, _ in found})
        if len(configs) > 1:
            raise InvalidValue(
                f"{self.name}: {path!r} holds tables in {len(configs)} folders ("
                + ", ".join(c or "." for c in configs[:4]) + "), as a Hub dataset holds its "
                f"configurations; give one, e.g. {self.kind}:{os.path.join(path, configs[-1])}")
        empty = [f for f, _ in found if not os.path.getsize(f)]
        if empty:
            raise InvalidValue(f"{self.name}: {empty[0]} is empty (0 bytes)")
        return found

    # --- reading rows (subclasses) ----------------------------------------------------------

    def _reader(self, file, bar):  # pragma: no cover - abstract
        """A context manager giving `(header, rows)`: the column names, and an iterator of
        `(where, record, problem)` per row (`record` a dict column -> value, None for a bad
        row, `problem` what is wrong with it)."""
        raise NotImplementedError

    # --- columns ---------------------------------------------------------------------------

    def _roles(self, header, file):
        """role -> column (a tuple of columns for `text`) of the roles the table has; a column
        an option names that the table lacks fails naming the header."""
        roles, missing = {}, []
        for role in ROLES:
            chosen = _names(self.opts[role])
            if chosen:
                gone = [c for c in chosen if c not in header]
                missing += gone
                if not gone:
                    roles[role] = chosen if role == "text" else chosen[0]
            elif role == "text" and "text" not in header:
                if "title" in header and "description" in header:
                    roles[role] = ("title", "description")
            elif role in header:
                roles[role] = (role,) if role == "text" else role
        if missing:
            raise InvalidValue(
                f"{self.name}: {file} has no column(s) {missing}; its columns are "
                f"{header}. Map yours with options, e.g. {self.kind}:PATH?image=photo&"
                "text=title&label=category")
        if not any(r in roles for r in (*MEDIA, *TEXTS)):
            raise InvalidValue(
                f"{self.name}: {file} has none of the columns image, audio, text, "
                f"question, transcript (its columns are {header}); name yours with options, "
                f"e.g. {self.kind}:PATH?image=photo&text=title,description&label=category")
        return roles

    def _parse(self, bar=None):
        """`(row number, where, fields, problem)` of every row in table order: `fields` a
        dict role -> value (text joined; `label` a string; `split` the file's own or None;
        `image`/`audio` `(path or bytes, name)`), `problem` what is wrong with a bad row."""
        i = 0
        for file, split in self.files:  # each file's context passed along: readers interleave
            folder = os.path.dirname(os.path.abspath(file))
            with self._reader(file, bar) as (header, rows):
                roles = self._roles(header, file)
                if getattr(self, "roles", roles) != roles:
                    raise InvalidValue(f"{self.name}: {file} has other columns ({header}) than "
                                       f"{self.files[0][0]}; give tables of the same columns")
                self.roles = roles
                self.header = getattr(self, "header", None) or list(header)
                for where, record, problem in rows:
                    fields = None
                    if not problem:
                        fields, problem = self._fields(record, roles, folder)
                    if split and fields:
                        fields["split"] = split
                    yield i, where, fields, problem
                    i += 1

    def _fields(self, record, roles, folder):
        fields = {}
        for role, column in roles.items():
            if role == "text":
                values = [record.get(c) for c in column]
                if len(values) == 1 and type(values[0]) is str:
                    value = values[0].strip()
                elif len(values) == 1 and isinstance(values[0], (list, tuple, np.ndarray)):
                    value = [str(v).strip() for v in values[0] if str(v or "").strip()]
                else:
                    value = " ".join(str(v).strip() for v in values if v is not None).strip()
                if not value:
                    return None, f"empty text ({', '.join(column)})"
                fields["text"] = value
                continue
            value = record.get(column)
            if role in MEDIA:
                value, problem = self._media(value, role, column, folder)
                if problem:
                    return None, problem
            elif role == "label":
                names = self.class_names.get(column)
                if names is not None and isinstance(value, (int, np.integer)) \
                        and not isinstance(value, bool):
                    if not 0 <= value < len(names):
                        return None, (f"label {value} ({column!r}) is no class of its "
                                      f"ClassLabel ({len(names)} names)" if value != -1 else
                                      f"no label ({column!r} is -1, Hugging Face's missing "
                                      "label)")
                    value = names[value]
                value = label_str(value) if value is not None else ""
                if not value:
                    return None, f"empty label ({column!r})"
                if self.known is not None and value not in self.known:
                    return None, f"label {short(value)} is not one of {list(self.known)}"
            elif role == "split":
                text = str(value if value is not None else "").strip()
                value = SPLIT_VALUES.get(text.lower())
                if value is None:
                    return None, f"split {short(text)} is not one of {sorted(SPLIT_VALUES)}"
            else:
                value = str(value).strip() if value is not None else ""
                if not value and role in TEXTS:
                    return None, f"empty {role} ({column!r})"
            fields[role] = value
        return fields, None

    def _media(self, value, role, column, folder):
        """`((path or bytes, name), problem)` of an image or audio cell: a path relative to the
        table's folder, bytes, a struct (dict) of `bytes` and `path`, or the file's bytes as
        text: a `data:` URI, or plain base64 (what JSON tools write, e.g. `/9j/4AAQ...` for
        a JPEG)."""
        name = None
        if isinstance(value, dict):  # Hugging Face Image / Audio feature
            data, name = value.get("bytes"), value.get("path")
            if data:
                return (bytes(data), name or ""), None
            value = name
        if isinstance(value, (bytes, bytearray)) and value:
            return (bytes(value), ""), None
        if not isinstance(value, str) or not value.strip():
            return None, f"no {role} ({column!r} is empty)"
        value = value.strip()
        data, problem = (None, None) if os.path.lexists(os.path.join(folder, value[:4096])) \
            else _text_bytes(value)
        if problem:
            return None, f"{role} ({column!r}): {problem}"
        if data is not None:
            return (data, ""), None
        outside = outside_problem(value, self.opts["allow_outside"])
        if outside:
            return None, outside
        return (os.path.normpath(os.path.join(folder, value)), value), None

    # --- listing ---------------------------------------------------------------------------

    def _list(self):
        """Check every row: `(problems, rows, moved)`, `moved` whether a label had no row in
        training (or in its held-in part) and had one moved there, so the table must be listed
        again; sets `self.parts` (each row's part, a byte: `PARTS`, or `BAD`) and
        `self.counts` (rows per split, `train` also as its held-in and held-out parts)."""
        problems = Problems(self.name, self.on_error)
        self.parts, self.counts, rows = array.array("B"), {}, 0
        self.labelled = {}  # label -> {part: (rank, identity) of its best row outside it}
        # label -> [(out_rank, identity) of its held-in item of smallest rank, whether it has
        # another held-in item]: what `forced_out` may take without leaving the label untrained
        self.held_in = {}
        self.groups = {}  # part -> the identities of its images (captioning, retrieval)
        self.rates = {}  # audio sample rate -> files
        self.seconds = array.array("f")  # each row's audio clip's length (NaN: none)
        self.silent = []  # the silent audio clips
        self._checked, self._media_digest = {}, hashlib.sha256()
        with progress_bytes([f for f, _ in self.files], f"checking {self.name}") as bar:
            chunk = []  # (row number, where, fields) of good rows, checked together
            for i, at, fields, problem in self._parse(bar):
                rows += 1
                self.parts.append(BAD)
                self.seconds.append(float("nan"))
                if not problem:
                    problem = self._check_media(fields)
                if problem:
                    problems.add(at, problem)
                    continue
                chunk.append((i, at, fields))
                if len(chunk) == CHUNK_ROWS:
                    self._check_words(chunk, problems)
                    chunk = []
            self._check_words(chunk, problems)
        self._checked = None
        self.counts["train"] = self.counts.get(HELD_IN, 0) + self.counts.get(HELD_OUT, 0)
        if not self.counts["train"]:
            del self.counts["train"]
        moves = 0
        for label, best in self.labelled.items():
            if "train" in best["seen"] and best[HELD_IN]:
                moves += best[HELD_IN][1] not in self.forced_in
                self.forced_in.add(best[HELD_IN][1])
        if not moves and self.counts.get(HELD_IN) and not self.counts.get(HELD_OUT) \
                and "validation" not in self.counts:
            movable = [rank for rank, more in self.held_in.values() if more]
            if movable:  # else reading validation fails (`too_small`)
                self.forced_out.add(min(movable)[1])
                moves = 1
        return problems, rows, moves

    def _check_media(self, fields):
        """What is wrong with a row's image or audio file (checked once per file; its name,
        size and modification time go into the source's fingerprint), or None."""
        for role in MEDIA:
            if role not in fields:
                continue
            value, name = fields[role]
            key = (role, value if isinstance(value, str) else hashlib.sha1(value).digest())
            if key not in self._checked:
                facts = None
                if isinstance(value, str):
                    problem = image_problem(value) if role == "image" else None
                    if role == "audio":
                        problem, facts = audio_facts(value)
                    if not problem:
                        stat = os.stat(value)
                        self._media_digest.update(
                            f"{value}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                else:
                    problem, facts = ((image_bytes_problem(value), None) if role == "image"
                                      else audio_facts(io.BytesIO(value)))
                    self._media_digest.update(key[1])
                if facts:
                    self.rates[facts.rate] = self.rates.get(facts.rate, 0) + 1
                    if facts.silent:
                        self.silent.append(value if isinstance(value, str) else
                                           name or "(bytes)")
                self._checked[key] = problem, facts
            problem, facts = self._checked[key]
            if facts:
                self.seconds[-1] = facts.seconds
            if problem:
                where = name if isinstance(value, bytes) else value
                return f"{role} {where or '(bytes)'}: {problem}"
        return None

    def _identity(self, fields, clean):
        """A row's identity (what its split is drawn from): the image or audio it names (its
        path relative to the table's folder, normalised: `x.gif`, `./x.gif` and `a/../x.gif`
        are one file), or the digest of the bytes it holds (whatever name a struct gives
        them: Hugging Face keeps base names only, so `1.jpg` of two folders are two photos);
        else its standardised text."""
        for role in MEDIA:
            if role in fields:
                value, _ = fields[role]
                if isinstance(value, str):
                    return os.path.relpath(value, self.root).replace(os.sep, "/")
                return hashlib.sha1(value).hexdigest()
        return clean

    def _tag(self, identity, split):
        """The part a row is in: `validation`, `test`, or `train` as `HELD_IN` / `HELD_OUT`
        (what `fit_splits` holds out when the table has no validation rows); `split` the
        table's own, else from the row's identity (`hash_split`)."""
        if split is None:
            split = hash_split(identity)
        if split != "train":
            return split
        return HELD_OUT if identity in self.forced_out else train_part(identity, self.forced_in)

    def _check_words(self, chunk, problems):
        """Each row's part, from its identity (its media, else its text as the models read it:
        the models' own `standardize`, a chunk at a time); rows whose text standardises to
        nothing (punctuation only: no token a model could read) are bad rows."""
        if not chunk:
            return
        texts = [next((r for r in TEXTS if r in fields), None) for _, _, fields in chunk]
        if any(texts):
            words = []
            for (_, _, fields), role in zip(chunk, texts):
                value = fields.get(role, "") if role else ""
                words.append(" ".join(value) if isinstance(value, list) else value)
            clean = standardize(tf.constant(words)).numpy()
        else:
            clean = [b"-"] * len(chunk)
        for (i, at, fields), role, c in zip(chunk, texts, clean):
            if role and not c:
                column = self.roles[role]
                column = ", ".join(column) if isinstance(column, tuple) else column
                problems.add(at, f"{role} {short(fields[role])} ({column}) has no letters or "
                                 "digits: it standardises to nothing")
                continue
            identity = self._identity(fields, c.decode())
            tag = self._tag(identity, fields.get("split"))
            self.counts[tag] = self.counts.get(tag, 0) + 1
            self.parts[i] = PARTS.index(tag)
            if "image" in fields:
                self.groups.setdefault(tag, set()).add(identity)
            if "label" in fields:
                self._note_label(fields["label"], tag, identity, i, at)
            if tag == HELD_IN:
                held = self.held_in.setdefault(fields.get("label"), [None, False])
                rank = out_rank(identity)
                if held[0] is not None and held[0][1] != identity:
                    held[1] = True  # a second item (not a second row of the same photo)
                held[0] = rank if held[0] is None or rank < held[0] else held[0]

    def _note_label(self, label, tag, identity, i, at):
        """Keep, per label, its row of smallest rank (`keep_rank`) outside training and outside
        training's held-in part, dropping each once the label has a row there: what is left
        after listing is the row to move so that every label is trained on. Also counts its
        training rows, and keeps its rows outside training until it has one in training."""
        best = self.labelled.setdefault(
            label, {HELD_IN: None, "seen": set(), "trained": 0, "outside": [], "rows": 0})
        best["rows"] += 1
        if tag in (HELD_IN, HELD_OUT):
            best["trained"] += 1
            best["outside"] = None
        elif best["outside"] is not None:
            best["outside"].append((i, at, tag))
        # (part, the tags inside it, the tags a row may be moved from)
        for part, inside, movable in (("train", (HELD_IN, HELD_OUT), ()),
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

    def _find_orphans(self):
        """The rows of a label none of whose rows is in training (`self.orphans`): bad rows
        once a split is read (`drop_orphans`), since a model cannot learn a class it never
        sees; they stay where they are (a test row never moves into training)."""
        self.orphans = []
        if "train" not in self.counts:
            return
        how = ("" if self.own_splits or "split" in self.roles else
               " (each row's split is drawn from a hash of its identity)")
        for label, best in self.labelled.items():
            if best["trained"] or not best["outside"]:
                continue
            for i, at, tag in best["outside"]:
                self.orphans.append((i, at, f"label {label!r} is only in {tag} rows, never in "
                                            f"training{how}: a model cannot learn it; add "
                                            "training rows of it, or remove them"))

    def what_items(self):
        return self.what

    def leave_out(self, indices):
        for i in indices:
            tag = PARTS[self.parts[i]]
            self.parts[i] = BAD
            self.counts[tag] -= 1
            if not self.counts[tag]:
                del self.counts[tag]

    def _warn_few(self):
        warn_few_classes(self.name, {label: best["trained"]
                                     for label, best in self.labelled.items()})

    def audio_rates(self):
        """`{sample rate: files}` of the audio the table names (its files' own rates)."""
        return dict(self.rates)

    def audio_seconds(self, split="train"):
        return [s for s, part in zip(self.seconds, self.parts)
                if part != BAD and in_split(PARTS[part], split) and s == s]

    def _stamp(self):
        return tuple((os.stat(f).st_size, os.stat(f).st_mtime_ns) for f, _ in self.files)

    def watched(self):
        return tuple(f for f, _ in self.files), ()

    def fingerprint(self):
        """The table file's name, size and modification time, and those of every image and
        audio file it names (or the digest of their bytes)."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = hashlib.sha256(
                (super().fingerprint() + self._media_digest.hexdigest()).encode()).hexdigest()
        return self._fingerprint

    # --- reading ---------------------------------------------------------------------------

    def _keys(self, task):
        """The example keys of `task`, or an error naming the columns it needs."""
        have = set(self.roles)
        if task in ("classification", "vqa"):
            keys = [k for k in (*MEDIA, "text", "question") if k in have]
            need = "label" in have and (task != "vqa" or ("image" in have and (
                "question" in have or "text" in have)))
            wanted = ("a label column and inputs" if task == "classification"
                      else "image, question (or text) and label columns")
            keys += ["label"] + (["speaker"] if "speaker" in have else [])
        elif task in ("captioning", "retrieval"):
            keys, need = ["image", "captions"], "image" in have and "text" in have
            wanted = "image and text (caption) columns"
        else:
            keys = ["audio", "transcript", "speaker"]
            need = "audio" in have and ("transcript" in have or "text" in have)
            wanted = "audio and transcript (or text) columns"
        if not need:
            unused = self.unused_columns()
            hint = (f"; its columns {unused} are unused: map one with an option, e.g. "
                    f"{self.kind}:PATH?{_likely_role(wanted, have)}={unused[0]}" if unused else
                    f"; name them with options, e.g. {self.kind}:PATH?label=category&text=title")
            raise InvalidValue(f"{self.name}: task {task!r} needs {wanted}; the table has "
                               f"{sorted(have)}{hint}")
        return keys

    def unused_columns(self):
        """The table's columns that no role reads (its first file's)."""
        used = set()
        for column in self.roles.values():
            used.update(column if isinstance(column, tuple) else (column,))
        return [c for c in self.header if c not in used]

    def label_counts(self):
        """`{label: rows}` of the table's good rows."""
        return {label: best["rows"] for label, best in self.labelled.items()}

    def dataset(self, split=None, task=None, *, decode=True):
        task = self.check_task(task)
        keys = self._keys(task)
        grouped = "captions" in keys
        count = (self.counted(split, task) if not grouped
                 else self._grouped_count(split, task))
        wanted = bytes(split is None or in_split(part, split) for part in PARTS) + b"\0"

        def rows():
            if self._stamp() != self.stamp:
                raise InvalidValue(f"{DATA_ERROR}{self.name}: {self.path} changed after it "
                                   "was listed; open the source again (mmzoo.data.open_source, "
                                   "or run the command again)")
            for i, _, fields, _ in self._parse():  # each row's part: from the listing
                if wanted[self.parts[i]]:
                    yield fields

        spec = self._spec(keys)

        def chunks():
            examples = self._grouped(rows) if grouped else (
                self._example(fields, keys) for fields in rows())
            batch = []
            for example in examples:
                batch.append(example)
                if len(batch) == CHUNK_ROWS:
                    yield self._columns(batch, spec)
                    batch = []
            if batch:
                yield self._columns(batch, spec)

        ds = tf.data.Dataset.from_generator(chunks, output_signature={
            k: tf.TensorSpec([None, *s.shape], s.dtype) if k != "captions"
            else tf.RaggedTensorSpec([None, None], tf.string, 1, tf.int64)
            for k, s in spec.items()})
        ds = ds.unbatch().apply(tf.data.experimental.assert_cardinality(count))
        if not any(k in MEDIA for k in keys):  # text and labels: as read, no per-row map
            return ds
        return self._decoded(ds) if decode else ds.map(self._plain)

    def _grouped_count(self, split, task):
        self.counted(split, task)  # checks the split and the task
        parts = [p for p in PARTS if split is None or in_split(p, split)]
        return len(set().union(*(self.groups.get(p, set()) for p in parts)))

    def _example(self, fields, keys):
        out = {}
        for key in keys:
            if key in MEDIA:
                value, _ = fields[key]
                out[key] = value.encode() if isinstance(value, str) else value
                out[f"{key}_inline"] = not isinstance(value, str)
            elif key == "transcript":
                out[key] = fields.get("transcript", fields.get("text"))
            elif key in ("text", "question") and isinstance(fields.get(key), list):
                out[key] = " ".join(fields[key])
            else:
                out[key] = fields.get(key, "")
        return out

    def _grouped(self, rows):
        """`{"image", "captions"}` per image (by identity) of the rows, in the order of each
        image's first row: one pass keeps each image's captions (text only), a second reads
        each image's cell at its first row."""
        captions, first = {}, {}
        for n, fields in enumerate(rows()):
            key = self._identity(fields, "")
            texts = fields["text"] if isinstance(fields["text"], list) else [fields["text"]]
            captions.setdefault(key, []).extend(texts)
            first.setdefault(key, n)
        starts = {n: key for key, n in first.items()}
        for n, fields in enumerate(rows()):
            if n in starts:
                value, _ = fields["image"]
                yield {"image": value.encode() if isinstance(value, str) else value,
                       "image_inline": not isinstance(value, str),
                       "captions": captions.pop(starts[n])}

    @staticmethod
    def _spec(keys):
        spec = {}
        for key in keys:
            if key in MEDIA:
                spec[key] = tf.TensorSpec([], tf.string)
                spec[f"{key}_inline"] = tf.TensorSpec([], tf.bool)
            else:
                spec[key] = tf.TensorSpec([], tf.string)
        return spec

    @staticmethod
    def _columns(batch, spec):
        out = {}
        for key, s in spec.items():
            values = [e[key] for e in batch]
            if key == "captions":
                out[key] = tf.ragged.constant(values, dtype=tf.string, row_splits_dtype=tf.int64)
            else:
                out[key] = np.array(values, bool if s.dtype == tf.bool else object)
        return out

    @staticmethod
    def _plain(example):
        """An example without decoding: media as their paths (or bytes)."""
        return {k: v for k, v in example.items() if not k.endswith("_inline")}

    def _decoded(self, ds):
        rate = int(self.opts["sample_rate"])

        def load(e):
            out = self._plain(e)
            if "image" in e:
                data = tf.cond(e["image_inline"], lambda: e["image"],
                               lambda: tf.io.read_file(e["image"]))
                out["image"] = decode_bytes(data)
            if "audio" in e:
                wave, sr = tf.numpy_function(read_audio, [e["audio"], rate, e["audio_inline"]],
                                             (tf.float32, tf.int32), stateful=False)
                out["audio"], out["sample_rate"] = tf.ensure_shape(wave, [None]), \
                    tf.ensure_shape(sr, [])
            return out

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --- the formats ---------------------------------------------------------------------------


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"fLaC", b"OggS", b"ID3",
                b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"FORM")
BASE64_LEAST = 64  # a cell of base64 characters this long or longer may be a file's bytes


def _text_bytes(text):
    """`(bytes, problem)` of a media cell holding a file's bytes as text: a `data:` URI
    (base64 or percent-encoded), or plain base64 whose bytes start as an image or audio file
    does; `(None, None)` for a cell that is a path."""
    if text.startswith("data:"):
        head, comma, body = text.partition(",")
        if not comma:
            return None, f"a data: URI without a comma ({short(text)})"
        try:
            if head.endswith(";base64"):
                return base64.b64decode(body + "=" * (-len(body) % 4), validate=False), None
            return urllib.parse.unquote_to_bytes(body), None
        except ValueError as e:
            return None, f"a data: URI whose base64 does not decode ({e})"
    text = "".join(text.split()) if "\n" in text else text  # MIME base64: lines of 76
    if len(text) < BASE64_LEAST or not _BASE64.fullmatch(text):
        return None, None
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4),
                                altchars=b"-_" if "-" in text or "_" in text else None)
    except ValueError:
        return None, None
    return (data, None) if data.startswith(_MEDIA_MAGIC) else (None, None)


def short(value, limit=80):
    """`repr(value)` cut to about `limit` characters (with the length it had): how a message
    shows a value that may be a whole file's worth of text."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}...{text[-8:]} ({len(str(value)):,} characters)"


def _likely_role(wanted, have):
    """The role a task misses most likely (the first of `wanted`'s it names that the table
    lacks): what an error suggests mapping."""
    for role in ("label", "image", "audio", "question", "transcript", "text"):
        if role in wanted and role not in have:
            return role
    return "text"


def _class_labels(metadata):
    """`{column: [class names]}` of the ClassLabel columns a Parquet file's `huggingface`
    metadata describes (Hugging Face `datasets`: `{"info": {"features": {column: {"_type":
    "ClassLabel", "names": [...]}}}}`), `{}` without."""
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        features = info.get("info", {}).get("features", {})
        return {column: [str(n) for n in feature["names"]]
                for column, feature in features.items()
                if isinstance(feature, dict) and feature.get("_type") == "ClassLabel"
                and isinstance(feature.get("names"), list)}
    except (ValueError, AttributeError, TypeError):
        return {}


HUB_METADATA = ("dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json")


def _config_of(relative):
    """The folder of a table file (relative to the folder given) without its split folders:
    files of one configuration of a Hub dataset share it."""
    parts = relative.replace(os.sep, "/").split("/")[:-1]
    return "/".join(p for p in parts if _split_of(p) is None)


def _split_of(relative):
    """The split a table file's path (relative to its folder) names, or None: the first word of
    its name (`train-00000-of-00001.parquet`, `test.csv`, `valid_0.jsonl`) or of a folder."""
    parts = relative.replace(os.sep, "/").split("/")
    for part in reversed(parts):
        word = re.split(r"[-_.]", part.lower(), maxsplit=1)[0]
        if word in SPLIT_VALUES:
            return SPLIT_VALUES[word]
    return None


def _codec(encoding):
    """An encoding as people name it (`utf-8-sig`, Python's UTF-8 that drops a BOM: UTF-8)."""
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf-8", "utf8") \
        else encoding


def _sniff(path, encoding):
    """The delimiter of a CSV file, from its header line: the one of `,;<tab>|` it holds, else
    what `csv.Sniffer` finds in the first lines; an error when neither can tell."""
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as f:
        sample = f.read(65536)
    header = sample.splitlines()[0] if sample else ""
    found = [d for d in DELIMITERS if d in header]
    if len(found) <= 1:
        return found[0] if found else ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        shown = " and ".join(repr(d) for d in found)
        raise InvalidValue(f"{path}: cannot tell which of {shown} separates its columns; pass "
                           f"delimiter=, e.g. csv:{path}?delimiter=;") from None


@register_source
class CSVTable(Table):
    """`csv:PATH`: a table in a CSV file with a header (see `Table`).

    Read with Python's `csv` in both passes, so quoting, embedded newlines and escaped quotes
    read the same. The delimiter is the one of `,` `;` tab `|` the header holds (`delimiter=`
    to choose), the text UTF-8 (a byte-order mark dropped; `encoding=` for another, e.g.
    `latin-1` or `cp1252`). A row with bytes the encoding cannot decode is a bad row, named
    with its line.
    """

    kind = "csv"
    extensions = (".csv", ".tsv")
    options = {**Table.options, "encoding": "utf-8-sig", "delimiter": ""}
    description = ("csv:PATH: a table (image, audio, text, question, label, split columns; "
                   "text classification rows)")

    @contextlib.contextmanager
    def _reader(self, file, bar):
        path = file
        encoding = self.opts["encoding"]
        try:
            "".encode(encoding)
        except LookupError:
            raise InvalidValue(f"{self.name}: unknown encoding {encoding!r}; use a Python "
                               "codec name, e.g. utf-8, latin-1, cp1252") from None
        delimiter = self.opts["delimiter"] or _sniff(path, encoding)
        if delimiter in ("tab", "\\t"):
            delimiter = "\t"
        if len(delimiter) != 1:
            raise InvalidValue(f"{self.name}: delimiter must be one character, got "
                               f"{delimiter!r}")
        with open(path, "rb") as f:
            text = io.TextIOWrapper(f, encoding=encoding, errors="surrogateescape", newline="")
            any_field_size()
            reader = csv.reader(text, delimiter=delimiter)
            try:
                header = next(reader, None)
            except csv.Error as e:
                raise InvalidValue(f"{self.name}: {path}:1: {e}") from None
            if not header:
                raise InvalidValue(f"{self.name}: {path} is empty (no header line)")
            header = [h.strip() for h in header]
            if any(_SURROGATE.search(h) for h in header):
                raise InvalidValue(f"{self.name}: {path}:1: the header is not "
                                   f"{_codec(encoding)} text; "
                                   "pass the file's encoding, e.g. encoding=latin-1")
            yield header, self._rows(f, reader, header, bar, path)

    def _rows(self, f, reader, header, bar, path):
        encoding = self.opts["encoding"]
        line, done, i = reader.line_num, 0, 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                first, line = line + 1, reader.line_num
                yield f"{path}:{first}", None, f"not a CSV row ({e})"
                continue
            first, line = line + 1, reader.line_num
            if not row:
                continue  # a blank line is not a row
            i += 1
            if bar is not None and i % CHUNK_ROWS == 0:
                now = f.tell()
                bar.update(now - done)
                done = now
            at = f"{path}:{first}"
            found = _SURROGATE.search("\0".join(row))
            if found is not None:
                byte = found.group().encode("utf-8", "surrogateescape")
                yield at, None, (f"not {_codec(encoding)} text (byte {byte!r}); pass the file's "
                                 "encoding, e.g. encoding=latin-1 or encoding=cp1252")
                continue
            if len(row) < len(header):
                used = [c for c in self._used(header) if header.index(c) >= len(row)]
                if used:
                    yield at, None, (f"row has {len(row)} of {len(header)} fields; missing "
                                     f"{used}")
                    continue
            yield at, dict(zip(header, row)), None

    def _used(self, header):
        roles = getattr(self, "roles", {})
        used = []
        for column in roles.values():
            used += list(column) if isinstance(column, tuple) else [column]
        return used


@register_source
class JSONLTable(Table):
    """`jsonl:PATH`: a table in JSON Lines, one object per line (see `Table`). Labels may be
    numbers, booleans or strings; a line that is not a JSON object is a bad row."""

    kind = "jsonl"
    description = "jsonl:PATH: a table in JSON Lines (one object per line)"

    extensions = (".jsonl", ".json", ".ndjson")

    @contextlib.contextmanager
    def _reader(self, file, bar):
        with open(file, "rb") as f:
            if file not in self.headers:  # every object's keys, in the order first seen
                keys = {}
                for line in f:
                    try:
                        record = json.loads(line.decode("utf-8-sig"))
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        continue
                    if isinstance(record, dict):
                        keys.update(dict.fromkeys(record))
                if not keys:
                    raise InvalidValue(f"{self.name}: {file} has no line holding a JSON "
                                       "object")
                self.headers[file] = list(keys)
                f.seek(0)
            yield self.headers[file], self._rows(f, bar, file)

    def _rows(self, f, bar, file):
        done = 0
        for number, line in enumerate(f, start=1):
            if bar is not None and number % CHUNK_ROWS == 0:
                now = f.tell()
                bar.update(now - done)
                done = now
            if not line.strip():
                continue
            at = f"{file}:{number}"
            try:
                record = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as e:
                yield at, None, f"not UTF-8 text (byte {line[e.start:e.start + 1]!r})"
                continue
            except json.JSONDecodeError as e:
                yield at, None, f"not JSON ({e.msg}, column {e.colno})"
                continue
            if not isinstance(record, dict):
                yield at, None, f"not a JSON object but {type(record).__name__}"
                continue
            for key, value in record.items():  # bytes written as {"bytes": base64, ...}
                if isinstance(value, dict) and isinstance(value.get("bytes"), str):
                    try:
                        value["bytes"] = base64.b64decode(value["bytes"], validate=True)
                    except ValueError:
                        yield at, None, f"{key!r}: its bytes are not base64"
                        break
            else:
                yield at, record, None


@register_source
class ParquetTable(Table):
    """`parquet:PATH`: a table in a Parquet file (pyarrow; see `Table`), read a batch of rows at
    a time. Image and audio cells may be structs of `bytes` and `path`, as Hugging Face
    `datasets` writes its Image and Audio features; the names of a ClassLabel column (in the
    file's `huggingface` metadata) are its labels, `-1` (no label) a bad row."""

    kind = "parquet"
    extensions = (".parquet",)
    description = "parquet:PATH: a table in Parquet (Hugging Face image/audio structs too)"

    @contextlib.contextmanager
    def _reader(self, file, bar):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise ImportError("parquet: tables need pyarrow: pip install pyarrow") from e
        try:
            table = pq.ParquetFile(file)
        except Exception as e:
            raise InvalidValue(f"{self.name}: {file} is not a Parquet file ({e})") from None
        with contextlib.closing(table):
            self._note_class_names(file, _class_labels(table.schema_arrow.metadata))
            yield list(table.schema_arrow.names), self._rows(table, bar, file)

    def _note_class_names(self, file, names):
        """Keep the ClassLabel names of `file`'s columns; files that name a column's classes
        otherwise fail (their integers would mean other labels)."""
        for column, classes in names.items():
            if self.class_names.setdefault(column, classes) != classes:
                raise InvalidValue(
                    f"{self.name}: {file} names the classes of {column!r} {classes[:5]}..., "
                    f"other files {self.class_names[column][:5]}...; give files of one "
                    "dataset")

    def _rows(self, table, bar, file):
        used = []
        for column in self.roles.values():
            used += list(column) if isinstance(column, tuple) else [column]
        number = 0
        for batch in table.iter_batches(batch_size=CHUNK_ROWS, columns=sorted(set(used))):
            if bar is not None:
                bar.update(batch.nbytes)
            for record in batch.to_pylist():
                number += 1
                yield f"{file} row {number}", record, None
