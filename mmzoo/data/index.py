"""What listing a folder found, recorded once: parallel file checks and the folder's index file.

Listing a big folder (a caption folder of 100k photos) checks every file; the second
`open_source` of the unchanged folder reads the index written by the first instead. The index
is trusted only while the folder is unchanged: its fingerprint is the name, size and
modification time of every file listed (one `os.scandir`, no file opened) and of the source's
own files (captions, splits), so a file added, removed, replaced or edited is listed again.

The index lies next to the data (`PATH/.mmzoo/`), or, when the folder is read-only (no write
permission bit, whoever runs: a shared data set is never written to, even by root), in
`$MMZOO_CACHE_DIR` (default `$XDG_CACHE_HOME/mmzoo`, else `~/.cache/mmzoo`) under `index/`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import stat

from tqdm.auto import tqdm

INDEX_VERSION = 1  # bump when what an index holds, or how files are checked, changes
INDEX_FOLDER = ".mmzoo"


def cache_root():
    """mmzoo's cache folder: `$MMZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/mmzoo`, else
    `~/.cache/mmzoo`."""
    if os.environ.get("MMZOO_CACHE_DIR"):
        return os.environ["MMZOO_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mmzoo")


def writable(folder):
    """Whether mmzoo may write into `folder`: it has a write permission bit and this process
    may write there (root ignores permissions; a folder marked read-only is still left alone)."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder,
                                                                                   os.W_OK)


def index_folder(path):
    """Where the index of data folder `path` lives (see the module docstring)."""
    if writable(path):
        return os.path.join(path, INDEX_FOLDER)
    digest = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:16]
    return os.path.join(cache_root(), "index", digest)


def fingerprint(files=(), folders=()):
    """A digest of the name, size and modification time of `files` (missing ones included) and
    of every file in `folders` (one `os.scandir` each; nothing is opened)."""
    h = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for path in files:
        try:
            s = os.stat(path)
            h.update(f"{path}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    for folder in folders:
        h.update(f"{folder}/\n".encode())
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


def read_index(path, name, digest):
    """`(metadata, records file)` of index `name` of data folder `path` when it was written for
    `digest` (the folder's current `fingerprint`), else None."""
    folder = index_folder(path)
    try:
        with open(os.path.join(folder, f"{name}.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    records = os.path.join(folder, f"{name}.tfrecord")
    if meta.get("fingerprint") != digest or not os.path.exists(records):
        return None
    return meta, records


def write_index(path, name, digest, meta, records):
    """Write index `name` of `path`: `records` (serialized `tf.train.Example`s) to its TFRecord
    file, then `meta` (with `digest`) last, so an interrupted write leaves no index. Returns the
    records file; when neither the data folder nor the cache folder is writable, it is written
    to a temporary folder (removed at exit) and the next listing checks the files again."""
    import atexit
    import shutil
    import tempfile

    import tensorflow as tf

    folder = index_folder(path)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".{name}.probe")
        open(probe, "w").close()
        os.remove(probe)
    except OSError:
        folder = tempfile.mkdtemp(prefix="mmzoo-index-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    meta_path = os.path.join(folder, f"{name}.json")
    records_path = os.path.join(folder, f"{name}.tfrecord")
    if os.path.exists(meta_path):
        os.remove(meta_path)
    with tf.io.TFRecordWriter(records_path + ".tmp") as writer:
        for record in records:
            writer.write(record)
    os.replace(records_path + ".tmp", records_path)
    with open(meta_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({**meta, "fingerprint": digest, "version": INDEX_VERSION}, f)
    os.replace(meta_path + ".tmp", meta_path)
    return records_path


__all__ = ["cache_root", "check_files", "fingerprint", "index_folder", "read_index",
           "write_index", "writable"]
