"""How long each tutorial takes at its default settings, run top to bottom as a user runs it.

Run by hand (never a timed test):  python bench/notebooks.py [NAME ...]

Executes each notebook in notebooks/ with nbclient in a fresh Jupyter kernel (its default
settings: no `MMZOO_NOTEBOOK_QUICK`), files written to a temporary folder, the shared data from
`MMZOO_DATA_DIR`, and records the wall time and what its cells printed last (each notebook's
figures of merit). Writes bench/results/notebooks.json, merging with the notebooks not run
(each entry records the commit it was measured at). The
first cell of each notebook states its time from here (tests/test_notebooks.py checks it).
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import DATA, ROOT, provenance, read_result, write_result  # noqa: E402


def run(path, out):
    import nbclient
    import nbformat

    env = {"MMZOO_NOTEBOOK_OUT": out, "MMZOO_DATA_DIR": os.path.abspath(DATA),
           "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    saved = {k: os.environ.get(k) for k in (*env, "MMZOO_NOTEBOOK_QUICK")}
    os.environ.update(env)
    os.environ.pop("MMZOO_NOTEBOOK_QUICK", None)
    try:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3", resources={
            "metadata": {"path": os.path.dirname(path)}}).execute()
        seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    printed = [o.get("text", "") for c in nb.cells if c.cell_type == "code"
               for o in c.outputs if o.get("output_type") == "stream"
               and o.get("name") == "stdout"]
    return {"seconds": round(seconds, 1), "printed": "".join(printed)[-3000:]}


def main():
    names = sys.argv[1:]
    paths = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
    if names:
        paths = [p for p in paths if any(os.path.basename(p).startswith(n) for n in names)]
    previous = read_result("notebooks") or {}
    results = dict(previous.get("notebooks", {}))
    for path in paths:
        name = os.path.basename(path)
        with tempfile.TemporaryDirectory() as out:
            results[name] = {**run(path, out), "measured": provenance()}
        print(f"{name}: {results[name]['seconds']:.0f} s", flush=True)
    write_result("notebooks", {"command": "python bench/notebooks.py (default settings)",
                               "notebooks": dict(sorted(results.items()))})


if __name__ == "__main__":
    main()
