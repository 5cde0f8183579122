"""Keyed artifacts: every derived file mmzoo writes is named by what it was made from.

A derived file (a `tf.data` cache of prepared examples, a cache of frozen-backbone features, the
index of a caption folder, prepared data) is only as good as the match between what it holds
and what a later run asks for. So each one is an `Artifact`:

- its folder is named `{role}-{key}`, the key a digest of everything it was made from (the
  source's spec and fingerprint, the split, the model's preprocessing, `FORMAT_VERSION`), so
  a name never changes meaning: what is at it was made from exactly those inputs;
- a `manifest.json` inside says what it was made from (the parts of the key), when, and which
  files it holds; a folder without a manifest that matches its name is never read;
- it is written into a fresh staging folder (`tempfile.mkdtemp`: a unique, unpredictable name
  made with mode 0700, so no other user can plant a file or a link in it) and moved into place
  with one `os.rename`, so a reader sees either nothing or the whole artifact. Just before the
  move, its folders and files get the modes the user's umask gives (`follow_umask`: 0755 and
  0644 under umask 022), as if made with `mkdir` and `open`, so a team reads what one of them
  prepared. Processes that
  build the same artifact at once each finish their own copy; the first rename wins and the
  others discard theirs. A reader keeps reading what it opened: a new version of the data gets
  a new key, hence a new folder, and never overwrites the old one in place;
- mmzoo removes only artifacts with a manifest (and staging folders it marked as its own whose
  process has died): never a file it did not write.

`mmzoo.run.RunFolder` is the other half of "delete only what we wrote": the files and folders
a run wrote in a folder the user chose (`--out`), each recorded as it is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time

from mmzoo.errors import InvalidValue

# Bump when what any artifact holds changes for the same inputs (it is part of every key).
# 2: Unicode-aware lower-casing; splits by a stable hash of each item.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
STAGING = ".staging-"
MARKER = ".mmzoo-staging"  # written first into every staging folder: how mmzoo knows its own


def digest(parts):
    """The SHA-256 hex digest of `parts` (any JSON-able value), keys sorted."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def umask():
    """The process's umask, read without changing it where the system says it (Linux's
    `/proc/self/status`); else set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path):
    """Give the folder `path` and everything under it (all written by mmzoo) the modes the
    umask gives a new folder (0o777 less it) and a new file (0o666 less it; an executable
    keeps its execute bits where the umask allows): what `mkdir` and `open` would have made,
    whatever made them (`tempfile.mkdtemp` and `mkstemp` make 0700 and 0600). Links are left
    as they are."""
    mask = umask()
    folder_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    for folder, _, names in os.walk(path):
        os.chmod(folder, folder_mode)
        for name in names:
            file = os.path.join(folder, name)
            if os.path.islink(file):
                continue
            executable = os.stat(file).st_mode & 0o111
            os.chmod(file, file_mode | (executable and (0o111 & ~mask)))


def _host():
    return socket.gethostname().replace(os.sep, "_").replace("-", "_") or "host"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Artifact:
    """A derived folder under `root`, named by a digest of what it was made from.

    Args:
        root: str. The folder that holds artifacts (created when one is built).
        role: str. What it is (`examples`, `features`, `captions-index`, ...): the start of its
            name.
        parts: dict. Everything the artifact was made from (JSON-able). The format version is
            added to it.

    Examples:
    ```python
    art = Artifact("runs/x/cache", "examples", {"data": identity, "preprocessing": pre})
    if not art.ready():
        with art.build() as staging:
            write_files(staging)
    read_files(art.path)
    ```
    """

    def __init__(self, root, role, parts, *, name=None):
        self.root, self.role = root, role
        self.parts = {"format": FORMAT_VERSION, **parts}
        self.key = digest({"role": role, **self.parts})[:24]
        self.name = name or f"{role}-{self.key}"
        self.path = os.path.join(root, self.name)

    @classmethod
    def at(cls, path, role, parts):
        """An artifact at a path the user chose (prepared data): its name says nothing, so its
        manifest alone tells what it was made from; one made from other inputs is never taken
        for it, nor replaced."""
        path = os.path.abspath(path)
        return cls(os.path.dirname(path), role, parts, name=os.path.basename(path))

    def __repr__(self):
        return f"Artifact({self.path!r})"

    def manifest(self):
        """The artifact's manifest when it is complete and was made from exactly `parts`,
        else None."""
        try:
            with open(os.path.join(self.path, MANIFEST), encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            return None
        if found.get("key") != self.key or found.get("role") != self.role:
            return None
        return found

    def ready(self):
        """Whether the artifact is in place, complete, and made from exactly these inputs."""
        return self.manifest() is not None

    @contextlib.contextmanager
    def build(self, **info):
        """Yield a fresh staging folder to write the artifact into; when the block ends without
        an error, write the manifest (with `info`) and move the folder into place at once. An
        error (or an interrupt) removes the staging folder; a kill leaves it marked as mmzoo's,
        for `sweep` to remove once its process is gone.
        """
        with staging_folder(self.root, self.name) as staging:
            yield staging
            os.remove(os.path.join(staging, MARKER))
            files = sorted(os.path.relpath(os.path.join(d, n), staging)
                           for d, _, names in os.walk(staging) for n in names)
            manifest = {"key": self.key, "role": self.role, "parts": self.parts,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files,
                        **info}
            with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1, default=str)
            follow_umask(staging)   # mkdtemp made it 0700: readable as the user's files are
            self._publish(staging)

    def _publish(self, staging):
        try:
            os.rename(staging, self.path)
            return
        except OSError:
            pass
        if self.ready():  # another process built the same artifact first: theirs is as good
            return
        try:
            with open(os.path.join(self.path, MANIFEST), encoding="utf-8") as f:
                other = json.load(f)
        except (OSError, ValueError):
            other = None
        if other is not None and other.get("role") == self.role:
            raise InvalidValue(f"{self.path} holds a {self.role} made from other inputs (see its "
                               f"{MANIFEST}); mmzoo never replaces it: choose another folder, or "
                               "remove it yourself")
        raise InvalidValue(f"{self.path} exists but is not a complete mmzoo artifact (no "
                           f"matching {MANIFEST}); mmzoo does not remove what it did not write: "
                           "move it away and run again")

    def touch(self):
        """Mark the artifact as used now (what `prune` reads)."""
        with contextlib.suppress(OSError):
            os.utime(os.path.join(self.path, MANIFEST))

    def remove(self):
        """Remove the artifact if it is in place and complete (it has its manifest)."""
        if self.ready() and self.name == f"{self.role}-{self.key}":
            shutil.rmtree(self.path, ignore_errors=True)

    def prune(self, unused_days):
        """Remove the other artifacts of this role in `root` not used for `unused_days` days."""
        cutoff = time.time() - unused_days * 86400
        for other in artifacts(self.root, self.role):
            manifest = os.path.join(self.root, other, MANIFEST)
            if other != self.name and os.path.getmtime(manifest) < cutoff:
                shutil.rmtree(os.path.join(self.root, other), ignore_errors=True)


def artifacts(root, role=None):
    """The names of the complete artifacts (of `role`) in `root`."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if name.startswith(".") or (role and not name.startswith(f"{role}-")):
            continue
        try:
            with open(os.path.join(root, name, MANIFEST), encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            continue
        if name == f"{manifest.get('role')}-{manifest.get('key')}":
            found.append(name)
    return found


@contextlib.contextmanager
def staging_folder(root, name):
    """A fresh staging folder in `root` for `name` (`tempfile.mkdtemp`: unique, unpredictable,
    mode 0700), marked as mmzoo's and by which process; removed when the block ends, whatever
    is left in it (a kill leaves it to `sweep`, which runs first)."""
    os.makedirs(root, exist_ok=True)
    sweep(root)
    staging = tempfile.mkdtemp(prefix=f".{name}{STAGING}{_host()}-{os.getpid()}-", dir=root)
    try:
        with open(os.path.join(staging, MARKER), "w") as f:
            f.write(f"{os.getpid()}\n")
        yield staging
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)


ASIDE = ".mmzoo-previous"   # `.NAME.mmzoo-previous`: the folder NAME while `swap_in` replaces it


def aside_of(path):
    """Where `swap_in` keeps the previous folder at `path` while the new one moves in."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}{ASIDE}")


def swap_in(new, path, staging):
    """Move the folder `new` to `path`, replacing the folder there, so that a kill at any
    moment leaves the previous folder or the new one: the previous is moved aside
    (`aside_of(path)`, beside it: never into `staging`, which a later sweep removes), the new
    one moved in, then the previous moved into `staging` (removed with it). A failure of the
    second move puts the previous back; after a kill between the two, the previous is at
    `aside_of(path)`, for the next writer to put back (`mmzoo.export`). An empty folder at
    `path` is simply replaced."""
    aside = aside_of(path)
    if not (os.path.isdir(path) and os.listdir(path)):
        os.replace(new, path)
        return
    os.rename(path, aside)        # never onto a leftover: the writer put it back or removed it
    try:
        os.replace(new, path)
    except BaseException:
        os.rename(aside, path)
        raise
    os.rename(aside, os.path.join(staging, "previous"))


def sweep(root):
    """Remove the staging folders in `root` that mmzoo made (marked) in a process of this host
    that has ended (killed while building)."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    host = _host()
    for name in names:
        if not name.startswith(".") or STAGING not in name:
            continue
        owner = name.rsplit(STAGING, 1)[1].split("-")
        if len(owner) < 3 or owner[0] != host or not owner[1].isdigit():
            continue
        path = os.path.join(root, name)
        marked = os.path.isfile(os.path.join(path, MARKER))
        if owner[1] == str(os.getpid()) or _alive(int(owner[1])) or not marked:
            continue
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["ASIDE", "Artifact", "FORMAT_VERSION", "aside_of", "artifacts", "digest", "follow_umask",
           "staging_folder", "swap_in", "sweep", "umask"]
