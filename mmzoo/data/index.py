"""What listing a folder found, recorded once: parallel file checks and the folder's index.

Listing a big folder (a caption folder of 100k photos) checks every file; the second
`open_source` of the unchanged folder reads the index written by the first instead. An index
is a keyed artifact (`mmzoo.artifacts.Artifact`): named by the folder's real path, its
fingerprint (the name, size and modification time of every file listed, one `os.scandir`, no
file opened, and of the source's own files: captions, splits) and `INDEX_VERSION`, so a file
added, removed, replaced or edited makes a new index beside the old one, which a process
already reading it goes on reading. Any number of processes may list one folder at once: each
writes its own staging copy and the first to finish puts it in place.

Indexes live in mmzoo's cache (`$MMZOO_CACHE_DIR`, default `$XDG_CACHE_HOME/mmzoo`, else
`~/.cache/mmzoo`) under `index/`, in a folder named by a digest of the data folder's real
path; a data folder is never written to unless the user asks (the source option
`index_dir=DIR` puts its indexes in DIR, which may be inside the data).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import hashlib
import os
import shutil
import tempfile

from tqdm.auto import tqdm

from mmzoo.artifacts import Artifact

INDEX_VERSION = 3  # bump when what an index holds, or how files are checked, changes
RECORDS = "records.tfrecord"
UNUSED_DAYS = 30  # indexes of a folder not read for this long are removed when another is made


def cache_root():
    """mmzoo's cache folder: `$MMZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/mmzoo`, else
    `~/.cache/mmzoo`."""
    if os.environ.get("MMZOO_CACHE_DIR"):
        return os.environ["MMZOO_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mmzoo")


def index_folder(path):
    """Where the indexes of data folder `path` live by default (see the module docstring)."""
    digest = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:16]
    return os.path.join(cache_root(), "index", digest)


def fingerprint(files=(), folders=()):
    """A digest of the name, size and modification time of `files` (missing ones included) and
    of every file in `folders` (one `os.scandir` each; nothing is opened). Paths count by their
    real path, so the same files named another way give the same digest."""
    h = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for path in files:
        name = os.path.realpath(path)
        try:
            s = os.stat(path)
            h.update(f"{name}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{name}\0missing\n".encode())
    for folder in folders:
        h.update(f"{os.path.realpath(folder)}/\n".encode())
        entries = []
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    s = entry.stat()
                except OSError:
                    continue
                entries.append(f"{entry.name}\0{s.st_size}\0{s.st_mtime_ns}")
        h.update("\n".join(sorted(entries)).encode())
    return h.hexdigest()


def check_files(paths, check, desc, workers=None):
    """`[check(path) for path in paths]`, run on a pool of threads (the checks read a few bytes
    of each file: they wait on the disk, not the CPU), with a progress bar for long lists."""
    paths = list(paths)
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(check, paths, chunksize=64)
        return list(tqdm(results, total=len(paths), desc=desc, unit="file", leave=False,
                         mininterval=0.5, disable=len(paths) < 500))


def indexed(path, role, digest, make, *, index_dir=None):
    """`(metadata, records file)` of the `role` index of data folder `path` for `digest` (its
    current `fingerprint`): the one in place when there is one, else `make()` is run, giving
    `(metadata, serialized tf.train.Examples)`, and its result written as a new index. When the
    index folder cannot be written, the index goes to a temporary folder removed at exit (the
    next listing checks the files again)."""
    import tensorflow as tf

    parts = {"folder": os.path.realpath(path), "fingerprint": digest, "version": INDEX_VERSION}
    art = Artifact(index_dir or index_folder(path), role, parts)
    if not art.ready():
        meta, records = make()

        def write(art):
            with art.build(meta=meta) as staging:
                with tf.io.TFRecordWriter(os.path.join(staging, RECORDS)) as writer:
                    for record in records:
                        writer.write(record)

        try:
            write(art)
        except OSError:
            scratch = tempfile.mkdtemp(prefix="mmzoo-index-")
            atexit.register(shutil.rmtree, scratch, ignore_errors=True)
            art = Artifact(scratch, role, parts)
            write(art)
        art.prune(UNUSED_DAYS)
    art.touch()
    return art.manifest()["meta"], os.path.join(art.path, RECORDS)


__all__ = ["cache_root", "check_files", "fingerprint", "index_folder", "indexed"]
