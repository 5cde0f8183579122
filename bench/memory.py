"""Peak memory of `mmzoo train` and `mmzoo evaluate`, and how long listing a source takes.

Run by hand (never a timed test):  python bench/memory.py

- Peak resident set size (`ru_maxrss` of the finished child process, the figure `/usr/bin/time
  -v` reports) of `mmzoo train vqa_cnn_lstm --data easy_vqa --epochs 2` (the pipeline's cache is
  full after the first epoch) and of `mmzoo evaluate` on its test split.
- Listing and checking every file of a source (`mmzoo.data.open_source`): FSDD's 2,500 WAVs and
  easy-VQA's 48,248 questions and 5,000 images, best of 3 in this process.

Writes bench/results/memory.json.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import DATA, peak_rss, write_result  # noqa: E402

TRAIN = ["train", "vqa_cnn_lstm", "--data", "easy_vqa", "--epochs", "2"]


def mmzoo_rss(args):
    """`(peak resident MB, seconds)` of `python -m mmzoo ARGS` in a child process."""
    mb, seconds, _ = peak_rss([sys.executable, "-m", "mmzoo", *args])
    return mb, seconds


def listing_seconds(source):
    import mmzoo

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        mmzoo.data.open_source(source)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    assert resource  # ru_maxrss comes with os.wait4's resource usage
    with tempfile.TemporaryDirectory() as folder:
        run = os.path.join(folder, "run")
        train_mb, train_s = mmzoo_rss(TRAIN + ["--out", run])
        evaluate_mb, evaluate_s = mmzoo_rss(["evaluate", run])
    listing = {source.replace(DATA, "../shared/data"): round(listing_seconds(source), 3)
               for source in (f"fsdd:{DATA}/fsdd", "easy_vqa")}
    result = {"train": {"command": "mmzoo " + " ".join(TRAIN), "peak_rss_mb": round(train_mb),
                        "seconds": round(train_s, 1)},
              "evaluate": {"command": "mmzoo evaluate RUN (easy_vqa test split)",
                           "peak_rss_mb": round(evaluate_mb), "seconds": round(evaluate_s, 1)},
              "listing_seconds": listing}
    print(result)
    write_result("memory", result)


if __name__ == "__main__":
    main()
