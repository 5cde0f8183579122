"""The README's generated parts: every figure from bench/results, every model fact from the
registry. A test (tests/test_readme.py) fails when the README and these disagree.

    python bench/report.py --check      # exit 1 and name the stale parts
    python bench/report.py --write      # rewrite them in README.md

Each part sits between `<!-- begin: NAME ... -->` and `<!-- end: NAME -->` lines.
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
BLOCK = re.compile(r"(<!-- begin: (?P<name>[a-z_]+)[^>]*-->\n)(?P<body>.*?)"
                   r"(<!-- end: (?P=name) -->)", re.S)


def models():
    from mmzoo.registry import model_table

    return model_table()


def quality():
    from quality import table

    return table()


def throughput():
    from throughput import table

    return table()


def latency():
    from latency import table

    return table()


def scale():
    from scale import table

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


PARTS = {"models": models, "quality": quality, "throughput": throughput, "latency": latency,
         "scale": scale, "measured": measured}


def render(text):
    """`text` (the README) with every generated part made anew; `(new text, stale names)`."""
    stale = []

    def replace(match):
        name = match["name"]
        if name not in PARTS:
            raise SystemExit(f"README.md: unknown generated part {name!r}; known: {list(PARTS)}")
        body = PARTS[name]().rstrip("\n") + "\n"
        if body != match["body"]:
            stale.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text), stale


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail if a part is stale")
    group.add_argument("--write", action="store_true", help="rewrite the parts in README.md")
    args = parser.parse_args()
    with open(README) as f:
        text = f.read()
    new, stale = render(text)
    if args.write:
        with open(README, "w") as f:
            f.write(new)
        print(f"README.md: rewrote {stale or 'nothing (all current)'}")
    elif stale:
        raise SystemExit(f"README.md: stale generated parts {stale}; run python bench/report.py "
                         "--write")
    else:
        print("README.md: every generated part is current")


if __name__ == "__main__":
    main()
