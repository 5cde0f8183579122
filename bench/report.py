"""The generated parts of the README and of docs/: every figure from bench/results, every model
and task fact from the registry. A test (tests/test_readme.py) fails when the documents and
these disagree.

    python bench/report.py --check      # exit 1 and name the stale parts
    python bench/report.py --write      # rewrite them in README.md and docs/*.md

Each part sits between `<!-- begin: NAME ... -->` and `<!-- end: NAME -->` lines, once in all
the documents. The first cell of each notebook ends with its `**Time:**` line, also rewritten
from bench/results.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import ROOT, read_result, shown  # noqa: E402

README = os.path.join(ROOT, "README.md")
# The guides README links to, in reading order (tests/test_readme.py runs their snippets so)
GUIDES = ("data", "models", "training", "export-and-serving", "results", "troubleshooting",
          "architecture")
DOCUMENTS = (README, *(os.path.join(ROOT, "docs", f"{name}.md") for name in GUIDES))
BLOCK = re.compile(r"(<!-- begin: (?P<name>[a-z_]+)[^>]*-->\n)(?P<body>.*?)"
                   r"(<!-- end: (?P=name) -->)", re.S)


def models():
    from mmzoo.registry import model_table

    return model_table()


def tasks():
    from mmzoo.registry import task_table

    return task_table()


def quality():
    from quality import table

    return table()


def throughput():
    from throughput import table

    return table()


def latency():
    from latency import table

    return table()


def portable():
    from portable import table

    return table()


def scale():
    from scale import table

    return table()


def voice_notes():
    from voice_notes import table

    return table()


def measured():
    """Bullets of the single figures: MFCC speed, peak memory, listing time, the test suite."""
    lines = []
    mfcc = read_result("mfcc_speed")
    if mfcc:
        ms = mfcc["ms_per_clip"]
        lines.append(
            f"- **MFCC** (`python bench/mfcc_speed.py`, {mfcc['clips']} real 1-second FSDD clips "
            f"at {mfcc['sample_rate'] // 1000} kHz, the audio models' settings, best of 3): "
            f"{ms['mmzoo.layers.MFCC']:.3f} ms per clip for `mmzoo.layers.MFCC` in a "
            f"`tf.function` against {ms['librosa (clip by clip)']:.3f} ms for "
            f"`librosa.feature.mfcc` clip by clip: **"
            f"{mfcc['speedup']['vs librosa clip by clip']:.1f}x faster** "
            f"({mfcc['speedup']['vs librosa whole batch']:.1f}x against librosa given the whole "
            f"batch at once). Largest relative error per clip "
            f"{mfcc['relative_error']['max']:.1e}. ({shown(mfcc['measured'])})")
    memory = read_result("memory")
    if memory:
        listing = memory["listing_seconds"]
        fsdd = next(v for k, v in listing.items() if k.startswith("fsdd"))
        lines.append(
            f"- **Peak memory** (`python bench/memory.py`, maximum resident set of the process): "
            f"`{memory['train']['command']}` **{memory['train']['peak_rss_mb']:,} MB** (the "
            f"pipeline caches each question's 64x64 image as uint8 and its question as token "
            f"ids); `mmzoo evaluate` of that run on the test split "
            f"{memory['evaluate']['peak_rss_mb']:,} MB. ({shown(memory['measured'])})")
        lines.append(
            f"- **Listing and checking every file** of a source: FSDD's 2,500 WAVs in "
            f"{fsdd:.2f} s, easy-VQA's 48,248 questions and 5,000 images in "
            f"{listing['easy_vqa']:.2f} s. ({shown(memory['measured'])})")
    frozen = read_result("frozen_features")
    if frozen:
        parts = []
        for key, r in frozen["models"].items():
            m, o = r["memory"], r["off"]
            gap = max(abs(a - b) for a, b in zip(m["val_loss"], o["val_loss"]))
            same = "the same" if gap == 0 else f"within {gap:.3f}"
            parts.append(
                f"`{key}` **{r['speedup_after_first_epoch']:.1f}x** ({o['epoch_seconds'][1]:.1f} "
                f"s -> {m['epoch_seconds'][1]:.1f} s; first epoch {o['epoch_seconds'][0]:.1f} s "
                f"-> {m['epoch_seconds'][0]:.1f} s; validation losses {same})")
        lines.append(
            "- **Frozen-feature training** (`python bench/frozen_features.py`, Flickr8k's 753 "
            "training photos at 224x224, batch 64, 3 epochs each way; epochs after the first, "
            "backbone every step -> cached features): " + "; ".join(parts)
            + f". ({shown(frozen['measured'])})")
    suite = read_result("suite")
    if suite:
        lines.append(
            f"- **Test suite** (`python bench/suite.py`: `CI=true bash .ci/run` in a fresh "
            f"clone, a new virtual environment): {suite['pytest']} in "
            f"{suite['test_seconds'] / 60:.1f} min, {suite['seconds'] / 60:.1f} min with the "
            f"install. ({shown(suite['measured'])})")
    return "\n".join(lines)


def _minutes(seconds):
    return "under a minute" if seconds < 60 else f"about {max(1, round(seconds / 60))} min"


def notebooks():
    """The tutorials' times at their default settings (bench/results/notebooks.json)."""
    result = read_result("notebooks")
    if not result:
        return ""
    lines = ["| notebook | time at its default settings, 2 CPU cores | measured at |",
             "|---|---|---|"]
    for name, run in result["notebooks"].items():
        lines.append(f"| `{name}` | {run['seconds']:.0f} s ({_minutes(run['seconds'])}) | "
                     f"{shown(run['measured'])} |")
    return "\n".join(lines)


TIME_LINE = "**Time:**"


def notebook_time(name):
    """The line of notebook `name`'s first cell saying how long it takes (None: not measured)."""
    result = read_result("notebooks") or {"notebooks": {}}
    run = result["notebooks"].get(name)
    if run is None:
        return None
    return (f"{TIME_LINE} {_minutes(run['seconds'])} on 2 CPU cores at its default settings "
            f"({run['seconds']:.0f} s, measured by `python bench/notebooks.py` at "
            f"{shown(run['measured'])}).")


def notebook_first_cells(write=False):
    """The notebooks whose first cell's time line is not `notebook_time`'s; with `write`, the
    line is rewritten (or added) in each of them."""
    import glob

    import nbformat

    stale = []
    for path in sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb"))):
        name = os.path.basename(path)
        line = notebook_time(name)
        if line is None:
            continue
        nb = nbformat.read(path, as_version=4)
        text = nb.cells[0].source
        kept = [x for x in text.split("\n") if not x.startswith(TIME_LINE)]
        while kept and not kept[-1].strip():
            kept.pop()
        new = "\n".join(kept) + "\n\n" + line
        if new != text:
            stale.append(name)
            if write:
                nb.cells[0].source = new
                nbformat.write(nb, path)
    return stale


PARTS = {"models": models, "tasks": tasks, "quality": quality, "throughput": throughput, "latency": latency,
         "portable": portable, "voice_notes": voice_notes,
         "scale": scale, "measured": measured, "notebooks": notebooks}


def render(text):
    """`text` (a document) with every generated part made anew; `(new text, stale names)`."""
    stale = []

    def replace(match):
        name = match["name"]
        if name not in PARTS:
            raise SystemExit(f"unknown generated part {name!r}; known: {list(PARTS)}")
        body = PARTS[name]().rstrip("\n") + "\n"
        if body != match["body"]:
            stale.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text), stale


def documents():
    """`{path: text}` of the README and the guides."""
    out = {}
    for path in DOCUMENTS:
        with open(path) as f:
            out[path] = f.read()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail if a part is stale")
    group.add_argument("--write", action="store_true",
                       help="rewrite the parts in README.md and docs/*.md")
    args = parser.parse_args()
    stale = {}
    for path, text in documents().items():
        new, names = render(text)
        name = os.path.relpath(path, ROOT)
        if names:
            stale[name] = names
        if args.write and names:
            with open(path, "w") as f:
                f.write(new)
    if args.write:
        print(f"rewrote {stale or 'nothing (all current)'}")
        print(f"notebooks: rewrote the time of {notebook_first_cells(write=True) or 'none'}")
    elif stale or notebook_first_cells():
        raise SystemExit(f"stale generated parts {stale}, notebooks' times "
                         f"{notebook_first_cells()}; run python bench/report.py --write")
    else:
        print("every generated part is current")


if __name__ == "__main__":
    main()
