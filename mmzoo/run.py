"""Who owns `--out`: the run folder (`RunFolder`), its lock and ledger, and one loader for what
mmzoo wrote (`open_model`: a run, a `.keras` file, or an export of any format).

A run folder is the user's folder that `mmzoo train --out DIR` writes into (and `evaluate` and
`card` add to). mmzoo keeps three promises about it:

- **one writer at a time**: a `RunFolder` is `held` under an exclusive lock (`fcntl.flock` on
  `.mmzoo-lock`) for as long as a command writes into it; a second command that would write
  there ends in one line naming the process that holds it (`FolderBusy`, exit 2);
- **nothing of the user's is touched**: before anything is written, every name the command
  would write that exists and that mmzoo did not write is refused, named (`refuse_foreign`):
  nothing is deleted or overwritten, a user's `backup/` or `README.md` included;
- **claim on write, remove only what is still ours**: each name is claimed in the ledger
  (`.mmzoo-written.json`) when it is written, with what was written (each file's size and
  modification time), so `remove_ours` (`--overwrite`) removes exactly the files still as
  mmzoo left them and keeps, naming them, any it finds changed. `rollback` takes back what a
  command wrote before it failed.

Examples:
```python
folder = mmzoo.run.RunFolder("runs/vqa")
with folder.held("my script"):
    folder.refuse_foreign(["notes.json"])
    folder.write_json("notes.json", {"seed": 0})
model, run = mmzoo.run.open_model("runs/vqa")       # the run's model.keras, and its folder
```
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import sys
import tempfile
import time

from mmzoo import _startup, plugins
from mmzoo.artifacts import umask
from mmzoo.errors import InvalidValue, MissingFile

LEDGER = ".mmzoo-written.json"
LOCK = ".mmzoo-lock"
MONITOR = "val_loss"          # the history column the best epoch is chosen by
METADATA, CARD = "metadata.json", "README.md"
# How a SavedModel folder written by `mmzoo export` is told from any other: this file in its
# `assets.extra/` (the folder SavedModel keeps for files the graph does not read); a portable
# export has a `metadata.json` saying `"exported_by": "mmzoo"`. Both list every file written.
MARKER = os.path.join("assets.extra", "mmzoo_export.json")
PORTABLE_FORMATS = ("onnx", "litert")


class FolderBusy(InvalidValue):
    """Another process holds the folder (`RunFolder.held`)."""


class NotOurs(InvalidValue):
    """A name mmzoo would write exists and is not mmzoo's (`RunFolder.refuse_foreign`)."""


# --- the lock ---------------------------------------------------------------------------------

def _describe_holder(text):
    try:
        holder = json.loads(text)
        return (f"pid {holder['pid']} on {holder['host']}: `{holder['command']}`, since "
                f"{holder['since']}")
    except (ValueError, KeyError, TypeError):
        return "another process"


class FolderLock:
    """An exclusive lock on `path` (a lock file), held by one process at a time and released
    when it ends, however it ends (`fcntl.flock`). The holder writes who it is into the file,
    so a refused process can name it.

    Args:
        path: str. The lock file.
        folder: str. What it locks, for the messages.
        command: str. What the holder is doing (e.g. `mmzoo train x --out runs/x`).
    """

    def __init__(self, path, folder, command):
        self.path, self.folder, self.command = path, folder, command
        self._fd = None
        self._depth = 0

    def acquire(self):
        if self._fd is not None:
            self._depth += 1
            return
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:     # held by another process (any other error is ours)
                holder = ""
                with contextlib.suppress(OSError):
                    holder = os.read(fd, 4096).decode(errors="replace")
                os.close(fd)
                raise FolderBusy(
                    f"{self.folder} is being written by another mmzoo process "
                    f"({_describe_holder(holder)}); wait for it to finish, or choose another "
                    "folder") from None
            # the file may have been removed by a holder releasing it meanwhile: lock anew
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self._fd, self._depth = fd, 1

    def release(self):
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self):
        return self._fd is not None


def command_line():
    """This process's command, for a lock's holder: `mmzoo train ...` or the Python program."""
    args = _startup.command_line()
    words = ["mmzoo", *args] if args is not None else list(getattr(sys, "orig_argv", sys.argv))
    return " ".join(words)[:300]


# --- the ledger -------------------------------------------------------------------------------

def _stat(path):
    """`[size, modification time ns]` of a file: what tells a file as mmzoo left it."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def _folder_files(path):
    return {os.path.relpath(os.path.join(d, n), path): _stat(os.path.join(d, n))
            for d, _, names in os.walk(path) for n in names}


def check_name(name, what="name"):
    """`name` if it is a plain name in a folder (no separator, not `.` or `..`, no NUL);
    else an `InvalidValue`: a split or a file name mmzoo writes is a name, never a path."""
    text = str(name)
    if (not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text
            or os.sep in text or (os.altsep and os.altsep in text) or text.startswith(".")):
        raise InvalidValue(f"{what} {text!r} is not a name (it would write outside the folder, "
                           "or a hidden file); give a plain name such as 'test'")
    return text


class RunFolder:
    """A folder mmzoo writes into, owned while `held`: the lock, what is mmzoo's in it (the
    ledger), and the writes that claim a name as they make it.

    Args:
        path: str. The folder (created when the first thing is written, or when held).
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.ledger = os.path.join(self.path, LEDGER)
        self._lock = None
        self._created = False
        self._written = []   # names this process wrote (for `rollback`), in order

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    def __fspath__(self):
        return self.path

    def file(self, name):
        """The path of `name` in the folder (`name` checked to be a name)."""
        return os.path.join(self.path, check_name(name))

    # --- holding ------------------------------------------------------------------------

    @contextlib.contextmanager
    def held(self, command=None):
        """Hold the folder for the block: its exclusive lock (the folder is created when it
        does not exist). Nested holds in one process are one. A folder held by another process
        fails naming it (`FolderBusy`)."""
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise InvalidValue(f"{self.path} is a file, not a folder; give a folder for mmzoo to "
                               "write into")
        if not os.path.isdir(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                os.mkdir(self.path)
                self._created = True
            except FileExistsError:     # made by another process meanwhile: not ours
                pass
        if self._lock is None:
            self._lock = FolderLock(os.path.join(self.path, LOCK), self.path,
                                    command or command_line())
        self._lock.acquire()
        try:
            yield self
        finally:
            self._lock.release()
            if self._created and not self._lock.held:   # made here, and nothing written in it
                with contextlib.suppress(OSError):
                    os.rmdir(self.path)

    @property
    def is_held(self):
        return self._lock is not None and self._lock.held

    # --- what is ours -------------------------------------------------------------------

    def entries(self):
        """`{name: entry}` of the ledger: `{"kind": "file", "stat": [...]}`, `{"kind":
        "folder", "files": {...}}`, `{"kind": "pending"}` (claimed, not recorded yet) or
        `{"kind": "legacy"}` (claimed by an older mmzoo, which recorded names only). An entry
        being written (`writing`) holds `since`: when mmzoo started writing it again."""
        try:
            with open(self.ledger, encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            return {}
        if isinstance(found.get("entries"), dict):
            return found["entries"]
        return {name: {"kind": "legacy"} for name in found.get("created", [])}

    def _save(self, entries):
        if not entries:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.ledger)
            return
        os.makedirs(self.path, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mmzoo-written-", dir=self.path)
        os.fchmod(fd, 0o666 & ~umask())   # as `open` makes files (mkstemp makes them 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 2, "entries": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.ledger)

    def ours(self, name):
        """Whether mmzoo claimed `name` here."""
        return name in self.entries()

    def foreign(self, names):
        """Those of `names` that exist here and that mmzoo did not write."""
        entries = self.entries()
        return [n for n in names if n not in entries and os.path.lexists(self.file(n))]

    def refuse_foreign(self, names, fix="move them away, or choose another folder"):
        """Fail naming every one of `names` that exists here and is not mmzoo's, before anything
        is written: mmzoo never overwrites or removes what it did not write."""
        found = self.foreign(names)
        if found:
            shown = ", ".join(n + ("/" if os.path.isdir(self.file(n)) else "") for n in found)
            raise NotOurs(f"{self.path} already holds {shown}, which mmzoo did not write and "
                          f"would write over; {fix}")

    def claim(self, name):
        """Claim `name` before writing it: fails when it exists and is not mmzoo's, or is a file
        mmzoo wrote that was changed since (mmzoo writes over its own files only as it left
        them)."""
        entries = self.entries()
        if name in entries:
            if not self._unchanged(name, entries[name]) and os.path.isfile(self.file(name)):
                raise NotOurs(f"{self.file(name)} was changed since mmzoo wrote it, and mmzoo "
                              "would write over it; move it away (or choose another folder)")
            return
        self.refuse_foreign([name])
        entries[name] = {"kind": "pending", "since": time.time_ns()}
        self._save(entries)
        self._written.append(name)

    def writing(self, *names):
        """Mark `names` (claimed) as being written from now on, until they are recorded: what a
        killed process leaves in them (a history row, a model moved into place, a log) is
        mmzoo's, for `remove_ours`."""
        entries = self.entries()
        now = time.time_ns()
        for name in names:
            if name in entries and "since" not in entries[name]:
                entries[name] = {**entries[name], "since": now}
        self._save(entries)

    def record(self, *names):
        """Record what `names` (claimed) hold now: as mmzoo left them. A name that is gone is
        forgotten."""
        entries = self.entries()
        for name in names:
            path = self.file(name)
            if not os.path.lexists(path):
                entries.pop(name, None)
            elif os.path.isdir(path):
                entries[name] = {"kind": "folder", "files": _folder_files(path)}
            else:
                entries[name] = {"kind": "file", "stat": _stat(path)}
        self._save(entries)

    def forget(self, *names):
        """Forget `names` (mmzoo removed them itself)."""
        entries = self.entries()
        for name in names:
            entries.pop(name, None)
        self._save(entries)

    def claimed(self):
        """The names mmzoo claimed here."""
        return set(self.entries())

    # --- writing ------------------------------------------------------------------------

    def write_text(self, name, text, *, append=False):
        """Write (or append) `text` to `name`, claimed and recorded; returns its path."""
        self.claim(name)
        path = self.file(name)
        with open(path, "a" if append else "w", encoding="utf-8") as f:
            f.write(text)
        self.record(name)
        return path

    def write_json(self, name, value):
        """Write `value` as JSON to `name`, claimed and recorded; returns its path."""
        return self.write_text(name, json.dumps(value, indent=2))

    # --- removing what is ours ----------------------------------------------------------

    def _unchanged(self, name, entry):
        path = self.file(name)
        if entry["kind"] in ("legacy", "pending") or "since" in entry:
            return True
        if entry["kind"] == "file":
            return os.path.isfile(path) and _stat(path) == entry["stat"]
        return False

    def remove_ours(self, names=None, keep=()):
        """Remove what mmzoo wrote here (of `names`, when given; never `keep`) that is still as
        it left it, and forget it. A file changed since is kept; in a folder mmzoo made, the
        files it recorded go and any other file stays (with the folder). Returns the names
        kept, each with why."""
        entries = self.entries()
        kept = []
        for name in sorted(entries):
            if (names is not None and name not in names) or name in keep:
                continue
            entry, path = entries[name], self.file(name)
            if not os.path.lexists(path):
                entries.pop(name)
            elif os.path.isdir(path) and not os.path.islink(path):
                others = self._remove_folder(path, entry)
                if others:
                    kept.append(f"{name}/ (holds {others[0]}{' ...' if len(others) > 1 else ''}"
                                ", which mmzoo did not write)")
                else:
                    entries.pop(name)
            elif self._unchanged(name, entry):
                os.remove(path)
                entries.pop(name)
            else:
                kept.append(f"{name} (changed since mmzoo wrote it)")
        self._save(entries)
        return kept

    def _remove_folder(self, path, entry):
        """Remove a folder mmzoo made: the files it recorded, those written since it started
        writing the folder again (`since`), every file of a legacy claim (whose files were never
        listed), and the folders left empty. Returns the files it leaves."""
        recorded = entry.get("files")
        since = entry.get("since")
        left = []
        for folder, dirs, names in os.walk(path, topdown=False):
            for n in names:
                rel = os.path.relpath(os.path.join(folder, n), path)
                file = os.path.join(folder, n)
                if (entry["kind"] == "legacy" or (recorded is not None and rel in recorded)
                        or (since is not None and os.stat(file).st_mtime_ns >= since)):
                    os.remove(file)
                else:
                    left.append(rel)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        return sorted(left)

    def rollback(self, keep=()):
        """Take back what this process wrote here (still as it left it), except `keep`: a
        command that failed before its work leaves no claim. The folder goes too when this
        process made it and it is left empty."""
        self.remove_ours(set(self._written) - set(keep))
        self._written = [n for n in self._written if n in keep]
        if self._created and not (self._lock is not None and self._lock.held):
            with contextlib.suppress(OSError):   # made here, and left empty
                os.rmdir(self.path)

    # --- what the folder is -------------------------------------------------------------

    @staticmethod
    def is_run(path):
        """Whether `path` is a folder `mmzoo train` wrote: its `model.keras` claimed in the
        ledger (or, from an older mmzoo, beside its `config.json`)."""
        if not os.path.isdir(path):
            return False
        entries = RunFolder(path).entries()
        model = os.path.join(path, "model.keras")
        return os.path.isfile(model) and ("model.keras" in entries or os.path.isfile(
            os.path.join(path, "config.json")))

    def recorded(self):
        """What `mmzoo train` recorded in `config.json` (`{}` without one)."""
        try:
            with open(self.file("config.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


def open_run(path, what="a run"):
    """The `RunFolder` of a folder `mmzoo train` wrote; anything else fails naming `path`
    before anything is written there."""
    if not RunFolder.is_run(path):
        found = "does not exist" if not os.path.exists(path) else (
            "is a file" if not os.path.isdir(path) else "holds no model.keras written by `mmzoo "
            "train`")
        raise MissingFile(f"{path} {found}; {what} takes a folder written by `mmzoo train`")
    return RunFolder(path)


# --- history ----------------------------------------------------------------------------------

def read_history(path):
    """The rows of a `history.csv` (dicts of strings), or [] when there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def best_epoch(rows):
    """`{"epoch": 1-based, "epochs": n, "metrics": {...}}` of the row with the lowest
    validation loss, or None for no rows."""
    if not rows:
        return None
    values = [float(r[MONITOR]) if r.get(MONITOR) else float("inf") for r in rows]
    i = min(range(len(rows)), key=values.__getitem__)
    return {"epoch": i + 1, "epochs": len(rows),
            "metrics": {k: _rounded(k, v) for k, v in rows[i].items() if k != "epoch"}}


def _rounded(key, value):
    """A history value for display: 4 decimals, a learning rate 3 significant digits."""
    value = float(value)
    return float(f"{value:.3g}") if key == "learning_rate" else round(value, 4)


# --- exports ----------------------------------------------------------------------------------

def portable_record(path):
    """The `metadata.json` of a portable (ONNX, LiteRT) export at `path`, or None."""
    try:
        with open(os.path.join(path, METADATA)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("exported_by") == "mmzoo" \
        and meta.get("format") in PORTABLE_FORMATS else None


def is_export(path):
    """Whether `path` is a folder that `mmzoo.export` wrote: a SavedModel (`saved_model.pb`
    and `assets.extra/mmzoo_export.json`) or an ONNX / LiteRT export (a `metadata.json` of
    mmzoo's)."""
    return ((os.path.isfile(os.path.join(path, "saved_model.pb"))
             and os.path.isfile(os.path.join(path, MARKER)))
            or portable_record(path) is not None)


def export_record(path):
    """What a previous export at `path` says of itself: its `files`, and `stats` (each file's
    size and modification time as written; the record itself aside); `{}` when it says
    nothing."""
    portable = portable_record(path)
    if portable is not None:
        return portable
    try:
        with open(os.path.join(path, MARKER)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def file_stats(folder, files):
    """`{file: [size, modification time ns]}` of `files` (relative to `folder`)."""
    return {f: _stat(os.path.join(folder, f)) for f in files}


def changed_files(folder, stats):
    """Those of `stats`' files that are no longer as they were (`file_stats`) in `folder`."""
    return sorted(f for f, stat in stats.items() if os.path.isfile(os.path.join(folder, f))
                  and _stat(os.path.join(folder, f)) != stat)


def kind_of(path):
    """What `path` is: `run` (a folder `mmzoo train` wrote), `keras` (a `.keras` file),
    `saved_model`, `onnx` or `litert` (a folder `mmzoo export` wrote; a SavedModel another
    tool wrote is `saved_model` too); anything else fails naming it."""
    if os.path.isfile(path) and path.endswith(".keras"):
        return "keras"
    if RunFolder.is_run(path):
        return "run"
    portable = portable_record(path)
    if portable is not None:
        return portable["format"]
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return "saved_model"
    found = "does not exist" if not os.path.exists(path) else "is not a run or an export"
    raise MissingFile(f"{path} {found}; give a folder written by `mmzoo train` or `mmzoo export` "
                      "(SavedModel, ONNX or LiteRT), or a .keras file")


def open_model(path):
    """`(model, run)`: the Keras model of a run folder (its `model.keras`) or of a `.keras` file,
    and the run's `RunFolder` (None for a file). The module that registered the model, as the
    run recorded it, is imported first (`mmzoo.plugins.import_recorded`), so a model of one's
    own needs no `--import` once trained."""
    import keras  # heavy: only a run's model needs it

    kind = kind_of(path)
    if kind not in ("run", "keras"):
        raise InvalidValue(f"{path} is a {kind} export; this command takes a folder written by "
                           "`mmzoo train` (or a .keras file)")
    from mmzoo.registry import is_registered   # heavy too: it imports Keras

    run = RunFolder(path) if kind == "run" else None
    file = run.file("model.keras") if run else path
    recorded = run.recorded() if run else recorded_beside(file)
    if not is_registered(recorded.get("model")):
        plugins.import_recorded(recorded.get("module"), recorded.get("model"))
    return keras.saving.load_model(file), run


def recorded_beside(file):
    """The `config.json` beside a `.keras` file (a run's, given as its model file), or `{}`."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(file)), "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


__all__ = ["CARD", "FolderBusy", "FolderLock", "LEDGER", "LOCK", "MARKER", "METADATA",
           "NotOurs", "RunFolder", "best_epoch", "changed_files", "check_name",
           "export_record", "file_stats", "is_export",
           "kind_of", "open_model", "open_run", "portable_record", "read_history",
           "recorded_beside"]
