"""What every bench shares: where the data is, and how a result is written with the commit and
date it was measured at (the README's figures are rendered from these files by
bench/report.py, so each figure can be traced to the code it describes)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DATA = os.environ.get("MMZOO_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def provenance():
    """`{"commit", "dirty", "date", "machine"}` of this measurement: the checked-out commit,
    whether mmzoo/, bench/ (results aside) or setup.cfg differ from it (a dirty measurement
    describes no commit), the UTC time, and the machine and library versions."""
    import keras
    import tensorflow as tf

    dirty = bool(git("status", "--porcelain", "--", "mmzoo", "bench", "setup.cfg",
                     ":(exclude)bench/results"))
    return {"commit": git("rev-parse", "HEAD"), "dirty": dirty,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow "
                       f"{tf.__version__}, Keras {keras.__version__}, Python "
                       f"{platform.python_version()}"}


def peak_rss(command, *, capture=False, quiet=False):
    """`(peak resident MB, seconds, stdout)` of `command` (a list) run in a child process: its
    `ru_maxrss`, the figure `/usr/bin/time -v` reports; stdout is returned when `capture`, else
    discarded (None), and stderr discarded when `quiet`. A failed command stops the bench."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL if quiet else None, text=True)
    out = proc.stdout.read() if capture else None
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(map(str, command))} failed ({status})")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, out   # ru_maxrss is in KiB


def write_result(name, result):
    """Write `result` as bench/results/`name`.json, with its `measured` provenance first."""
    result = {"measured": provenance(), **result}
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return path


def read_result(name):
    """bench/results/`name`.json as a dict, or None when it was never measured."""
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def shown(measured):
    """`commit abc1234, 2026-11-23` for a result's provenance."""
    return f"commit {measured['commit'][:7]}, {measured['date'][:10]}"
