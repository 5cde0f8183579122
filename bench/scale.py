"""How cost grows with data: listing, training and evaluation at 1x, 10x and 100x.

Run by hand (never a timed test):

    python bench/scale.py                          # both sources, 1x 10x 100x
    python bench/scale.py --sources csv --sizes 1 10 --cache none

Sources, built in `--work` (default /tmp/mmzoo-scale) from the real data in ../shared/data:
- csv: `text_word_vector_mlp` on a CSV of 10k x SIZE rows made from the AG News rows (row i is
  the title of AG News row i mod 6,080 with, past the first 6,080, the description of another
  row of the same class, drawn with a fixed seed);
- captions: `dual_encoder` (text-image matching: one caption per photo and epoch, and
  retrieval evaluated by blocks of the similarity matrix) on a Flickr8k-layout folder of
  1k x SIZE JPEG photos made from the Flickr8k photos (random crops of 60-100% of each side,
  half of them flipped, JPEG quality 90), each with the five captions of its photo.

Per source and size, each in a fresh child process:
- listing: seconds of the first `mmzoo.data.open_source` (the folder's index removed first)
  and of the second;
- `mmzoo train NAME --data SOURCE --epochs 2 --cache CACHE`: peak RSS (`ru_maxrss` of the
  child, as `/usr/bin/time -v` reports it), seconds from the process start to the first
  training step, examples/s of the second epoch (training examples / its seconds, its
  validation included; the first epoch also traces the graphs, a fixed cost that weighs more
  on a small epoch), examples/s of that epoch's training steps after its first tenth (steady),
  and the disk cache's size (`cache.json` of the run);
- `mmzoo evaluate RUN`: peak RSS.

Writes bench/results/scale.json and bench/results/scale.png (the figures against data size).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import DATA, RESULTS, peak_rss, provenance, read_result, write_result  # noqa: E402

MODELS = {"csv": "text_word_vector_mlp", "captions": "dual_encoder"}
BASE = {"csv": 10_000, "captions": 1_000}   # rows, photos at size 1
BATCH = 64  # mmzoo train's default
EPOCHS = 2  # the second is timed: no tracing, and what every later epoch does


def build_csv(rows, path):
    if os.path.exists(path):
        return
    with open(os.path.join(DATA, "ag_news", "news.csv"), newline="", encoding="utf-8") as f:
        data = list(csv.DictReader(f))
    by_label = {}
    for row in data:
        by_label.setdefault(row["label"], []).append(row)
    rng = random.Random(0)
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "title", "description"])
        for i in range(rows):
            row = data[i % len(data)]
            other = row if i < len(data) else rng.choice(by_label[row["label"]])
            writer.writerow([row["label"], row["title"], other["description"]])
    os.replace(path + ".tmp", path)


def _photos(args):
    """Write photos `names` (crops and flips of `sources`) into `folder` (a worker's share)."""
    from PIL import Image

    folder, jobs = args
    for name, source, seed in jobs:
        rng = random.Random(seed)
        with Image.open(source) as image:
            image = image.convert("RGB")
            w, h = image.size
            cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            image = image.crop((x, y, x + cw, y + ch))
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            image.save(os.path.join(folder, name), quality=90)


def build_captions(photos, folder):
    done = os.path.join(folder, "captions.txt")
    if os.path.exists(done):
        return
    import multiprocessing

    src = os.path.join(DATA, "flickr8k_1k")
    with open(os.path.join(src, "captions.txt"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    captions = {}
    for name, caption in rows:
        captions.setdefault(name, []).append(caption)
    names = sorted(captions)
    os.makedirs(os.path.join(folder, "Images"), exist_ok=True)
    jobs = [(f"{i:06d}_{names[i % len(names)]}", os.path.join(src, "Images",
                                                            names[i % len(names)]), i)
            for i in range(photos)]
    workers = os.cpu_count() or 1
    shares = [(os.path.join(folder, "Images"), jobs[k::workers]) for k in range(workers)]
    with multiprocessing.Pool(workers) as pool:
        pool.map(_photos, shares)
    with open(done + ".tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for name, _, i in jobs:
            for caption in captions[names[i % len(names)]]:
                writer.writerow([name, caption])
    os.replace(done + ".tmp", done)


def child_list(source):
    """In a child: seconds of the first and the second `open_source`."""
    import mmzoo

    times = []
    for _ in range(2):
        start = time.perf_counter()
        mmzoo.data.open_source(source)
        times.append(round(time.perf_counter() - start, 3))
    print(json.dumps({"first_s": times[0], "second_s": times[1]}))


def child_train(name, source, out, cache, started):
    """In a child: one epoch of `mmzoo.train`, timed."""
    import keras

    import mmzoo

    marks = {}

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            marks.setdefault("first_step", time.time())

        def on_train_batch_end(self, batch, logs=None):
            marks["batch_ends"].append(time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            marks["epoch_begin"], marks["batch_ends"] = time.perf_counter(), []

        def on_epoch_end(self, epoch, logs=None):
            marks.setdefault("epoch_s", []).append(time.perf_counter() - marks["epoch_begin"])

    _, history = mmzoo.train(name, source, epochs=EPOCHS, out=out, cache=cache, verbose=0,
                             callbacks=[Timer()], overwrite=True, batch_size=BATCH)
    ends = marks["batch_ends"]        # of the last epoch
    skip = max(1, len(ends) // 10)   # its first tenth: filling the pipeline's buffers
    steady = (len(ends) - 1 - skip) * BATCH / (ends[-1] - ends[skip])  # last batch may be short
    print(json.dumps({"first_step_s": round(marks["first_step"] - started, 1),
                      "first_epoch_s": round(marks["epoch_s"][0], 1),
                      "epoch_s": round(marks["epoch_s"][-1], 1), "steady_per_s": round(steady, 1),
                      "cache": history.cache}))


def run_child(args):
    """`(peak resident MB, the child's JSON line)` of `python bench/scale.py ARGS`."""
    mb, _, out = peak_rss([sys.executable, os.path.abspath(__file__), *args], capture=True,
                          quiet=True)
    return mb, json.loads(out.strip().splitlines()[-1])


def train_examples(kind, source):
    """Training examples of one epoch: rows, or photos (one caption each), of the train split."""
    import mmzoo

    src = mmzoo.data.open_source(source)
    task = "retrieval" if kind == "captions" else None
    return int(src.fit_splits(task, decode=False)[0].cardinality())


def measure(kind, size, work, cache):
    n = BASE[kind] * size
    if kind == "csv":
        path = os.path.join(work, f"news_{n}.csv")
        build_csv(n, path)
        source, index = f"csv:{path}", None
    else:
        path = os.path.join(work, f"captions_{n}")
        build_captions(n, path)
        from mmzoo.data.index import index_folder

        source, index = f"captions:{path}", index_folder(path)  # listed anew: no index
    if index:
        shutil.rmtree(index, ignore_errors=True)
    _, listing = run_child(["--child", "list", source])
    run = os.path.join(work, f"run_{kind}_{n}_{cache}")
    train_mb, trained = run_child(["--child", "train", MODELS[kind], source, run, cache,
                                   str(time.time())])
    evaluate_mb, _, _ = peak_rss([sys.executable, "-m", "mmzoo", "evaluate", run], quiet=True)
    examples = train_examples(kind, source)
    cache_info = trained["cache"]["train"]
    row = {"source": kind, "size": size, "items": n, "model": MODELS[kind], "cache": cache,
           "cache_chosen": cache_info["mode"], "listing_first_s": listing["first_s"],
           "listing_second_s": listing["second_s"], "train_examples": examples,
           "first_step_s": trained["first_step_s"], "first_epoch_s": trained["first_epoch_s"],
           "epoch_s": trained["epoch_s"],
           "examples_per_s": round(examples / trained["epoch_s"], 1),
           "steady_examples_per_s": trained["steady_per_s"],
           "train_peak_rss_mb": round(train_mb), "evaluate_peak_rss_mb": round(evaluate_mb),
           "disk_cache_mb": round(sum(c.get("disk_bytes", 0)
                                      for c in trained["cache"].values()) / 1e6, 1)}
    print(json.dumps(row), flush=True)
    return row


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("train_peak_rss_mb", "peak RSS of mmzoo train (MB)"),
              ("examples_per_s", "training examples/s"),
              ("listing_second_s", "second listing (s)"),
              ("evaluate_peak_rss_mb", "peak RSS of mmzoo evaluate (MB)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (key, title) in zip(axes, panels):
        for (kind, cache) in sorted({(r["source"], r["cache"]) for r in rows}):
            mine = sorted((r for r in rows if (r["source"], r["cache"]) == (kind, cache)),
                          key=lambda r: r["size"])
            ax.plot([r["size"] for r in mine], [r[key] for r in mine], marker="o",
                    label=f"{kind} ({MODELS[kind]}), cache {cache}")
        ax.set_xscale("log")
        ax.set_xlabel("data size (x: 10k rows / 1k photos)")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def table():
    """The README's scale table, from bench/results/scale.json."""
    from common import shown

    result = read_result("scale")
    if not result:
        return "Not measured yet (`python bench/scale.py`)."
    lines = [f"Measured on {result['measured']['machine']}, each row at the commit it names; "
             "each run in a fresh process (examples/s: the second epoch of two where the row "
             "says `2 epochs`, else the only one):", "",
             "| source | size | model | `--cache` (chose) | first / second listing, s | "
             "first step, s | examples/s: epoch (steady) | peak RSS train, MB | peak RSS "
             "evaluate, MB | disk cache, MB | measured at |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(result["rows"], key=lambda r: (r["source"], r["cache"], r["size"]))
    for r in rows:
        what = "CSV rows" if r["source"] == "csv" else "photos"
        steady = (f"{r['steady_examples_per_s']:,.0f}" if "steady_examples_per_s" in r
                  else "-")
        chose = r["cache"] if r["cache"] == r["cache_chosen"] else \
            f"{r['cache']} ({r['cache_chosen']})"
        epochs = " (2 epochs)" if "first_epoch_s" in r else ""
        lines.append(
            f"| {r['source']} | {r['items']:,} {what}{epochs} | `{r['model']}` | {chose} | "
            f"{r['listing_first_s']:.2f} / {r['listing_second_s']:.2f} | "
            f"{r['first_step_s']:.1f} | {r['examples_per_s']:,.0f} ({steady}) | "
            f"{r['train_peak_rss_mb']:,} | {r['evaluate_peak_rss_mb']:,} | "
            f"{r['disk_cache_mb']:,.1f} | {shown(r.get('measured', result['measured']))} |")
    return "\n".join(lines) + "\n\n![scale](bench/results/scale.png)"


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if sys.argv[2] == "list":
            return child_list(sys.argv[3])
        name, source, out, cache, started = sys.argv[3:8]
        return child_train(name, source, out, cache, float(started))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--cache", nargs="+", default=["auto"],
                        choices=["auto", "memory", "disk", "none"])
    parser.add_argument("--work", default="/tmp/mmzoo-scale")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = [measure(kind, size, args.work, cache) for kind in args.sources
            for cache in args.cache for size in args.sizes]
    # rows not measured this time are kept, each with the commit it was measured at
    now = provenance()
    rows = [{**r, "measured": now} for r in rows]
    previous = read_result("scale")
    if previous:
        ours = {(r["source"], r["size"], r["cache"]) for r in rows}
        rows = [{**r, "measured": r.get("measured", previous["measured"])}
                for r in previous["rows"]
                if (r["source"], r["size"], r["cache"]) not in ours] + rows
    write_result("scale", {"rows": rows})
    plot(rows, os.path.join(RESULTS, "scale.png"))


if __name__ == "__main__":
    main()
