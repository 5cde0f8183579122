"""The test suite's time from a fresh clone, as CI runs it: `CI=true bash .ci/run`.

Run by hand (never a timed test):  python bench/suite.py

Clones this repository's HEAD into a temporary folder (with MMZOO_DATA_DIR pointing at the shared
data, which CI finds at ../shared/data beside its clone), makes a new virtual environment there
and runs `.ci/run` in it with `CI=true` (the install, then the README's test command), and
records the wall time, the install time, the pytest summary and the slowest tests. Writes
bench/results/suite.json.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import DATA, ROOT, write_result  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as folder:
        clone, venv = os.path.join(folder, "mmzoo"), os.path.join(folder, "venv")
        subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        # a new virtual environment, as on a fresh machine (and this one's is left alone)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        env = {**os.environ, "CI": "true", "MMZOO_DATA_DIR": os.path.abspath(DATA),
               "VIRTUAL_ENV": venv,
               "PATH": os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"]}
        for name in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        start = time.perf_counter()
        out = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, capture_output=True,
                             text=True)
        seconds = time.perf_counter() - start
    log = out.stdout + out.stderr
    if out.returncode:
        path = os.path.join(tempfile.gettempdir(), "mmzoo_suite.log")
        with open(path, "w") as f:
            f.write(log)
        print(out.stdout[-6000:])  # pytest's report (the install's warnings are on stderr)
        raise SystemExit(f".ci/run failed ({out.returncode}); the whole log is in {path}")
    summary = re.findall(r"^(?:=+ )?(\d+ passed[^\n]*?) in ([\d.]+)s", log, re.M)[-1]
    tests = float(summary[1])  # pytest's own time: .ci/run's includes the install
    slowest = re.findall(r"^([\d.]+)s (call|setup)\s+(\S+)", log, re.M)
    result = {"command": "CI=true bash .ci/run (fresh clone)", "seconds": round(seconds),
              "test_seconds": round(tests), "install_seconds": round(seconds - tests),
              "pytest": summary[0],
              "slowest": [{"test": name, "phase": phase, "seconds": float(s)}
                          for s, phase, name in slowest]}
    print(result)
    path = write_result("suite", result)
    # what ran is the clone of `commit`, whatever this working tree holds meanwhile
    import json

    with open(path) as f:
        written = json.load(f)
    written["measured"].update(commit=commit, dirty=False)
    with open(path, "w") as f:
        json.dump(written, f, indent=2)


if __name__ == "__main__":
    main()
