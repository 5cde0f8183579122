"""Exported SavedModel latency: one request and a batch of 64, per registered model.

Run by hand (never a timed test):

    python bench/latency.py                        # every registered model
    python bench/latency.py --models vqa_cnn_lstm --calls 50

Each model is built with its default config adapted on its quality recipe's training data
(bench/quality.py; latency does not depend on the trained weights: captions are decoded for a
fixed number of steps), written with `mmzoo.export`, loaded back with `tf.saved_model.load` and
called through its `serving_default` signature with RAW inputs taken from the recipe's test
split: PNG bytes, strings and waveforms. Each call converts its outputs to NumPy (the request is
complete). After 3 warm-up calls, the median and 90th percentile of `--calls` calls are
reported in milliseconds, for 1 example and for 64 (per example too).

Prints a table and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmzoo  # noqa: E402
from mmzoo.data import adapt, open_source  # noqa: E402
from mmzoo.data.pipeline import SOURCE_KEYS  # noqa: E402
from mmzoo.data.waveform import fit_length  # noqa: E402
from mmzoo.registry import get_spec  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import read_result, shown, write_result  # noqa: E402
from throughput import recipe_for  # noqa: E402

BATCH = 64


def raw_requests(name, src, model):
    """`BATCH` raw test examples for `name`'s serving signature: PNG bytes, strings, waveforms."""
    spec = get_spec(name)
    split = "test" if "test" in src.split_names() else "validation"
    examples = src.dataset(split, task=spec.task).take(BATCH)
    raw = {n: [] for n in spec.inputs}
    audio_len = {t.name: t.shape[1] for t in model.inputs}.get("audio")
    for example in examples:
        for n in spec.inputs:
            key = next(k for k in SOURCE_KEYS[n] if k in example)
            value = example[key]
            if n == "image":
                pixels = tf.cast(tf.clip_by_value(tf.round(value), 0, 255), tf.uint8)
                if pixels.shape[-1] == 1:
                    pixels = tf.image.grayscale_to_rgb(pixels)
                raw[n].append(tf.io.encode_png(pixels).numpy())
            elif n == "audio":
                raw[n].append(fit_length(value, audio_len).numpy())
            elif key == "captions":
                raw[n].append(value[0].numpy())
            else:
                raw[n].append(value.numpy())
    return {n: tf.constant(np.stack(v)) if n == "audio" else tf.constant(v)
            for n, v in raw.items()}


def timed(fn, calls):
    for _ in range(3):
        fn()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return statistics.median(seconds) * 1e3, seconds[int(0.9 * (len(seconds) - 1))] * 1e3


def measure(name, calls, folder):
    source, _ = recipe_for(name)
    spec = get_spec(name)
    src = open_source(source)
    config = adapt(name, src.fit_splits(spec.task, decode=False)[0])
    keras.utils.set_random_seed(0)
    model = mmzoo.build(name, **config)
    path = os.path.join(folder, name)
    mmzoo.export(model, path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    wanted = serve.structured_input_signature[1]        # e.g. a captioner takes only the image
    batch = {k: v for k, v in raw_requests(name, src, model).items() if k in wanted}
    one = {k: v[:1] for k, v in batch.items()}

    def call(inputs):
        return lambda: {k: v.numpy() for k, v in serve(**inputs).items()}

    single, single_p90 = timed(call(one), calls)
    many, many_p90 = timed(call(batch), max(calls // 4, 5))
    n = int(next(iter(batch.values())).shape[0])
    return {"model": name, "data": source, "inputs": sorted(batch),
            "one_ms": round(single, 2), "one_p90_ms": round(single_p90, 2),
            "batch": n, "batch_ms": round(many, 2), "batch_p90_ms": round(many_p90, 2),
            "batch_per_example_ms": round(many / n, 3)}


def table():
    """The README's latency table, from bench/results/latency.json."""
    result = read_result("latency")
    lines = [f"Measured at {shown(result['measured'])} ({result['measured']['machine']}):", "",
             "| model | inputs | 1 request, ms | p90, ms | batch of 64, ms | per example, ms |",
             "|---|---|---|---|---|---|"]
    for r in result["models"]:
        lines.append(f"| `{r['model']}` | {', '.join(r['inputs'])} | {r['one_ms']:.2f} | "
                     f"{r['one_p90_ms']:.2f} | {r['batch_ms']:.1f} | "
                     f"{r['batch_per_example_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help="models to measure (default: every registered model)")
    parser.add_argument("--calls", type=int, default=40, help="timed single calls (default 40)")
    parser.add_argument("--table", action="store_true",
                        help="print the README's table from bench/results and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return
    rows = []
    print(f"{'model':24} {'1 request ms':>12} {'p90':>7} {'64 ms':>8} {'p90':>7} "
          f"{'ms/example':>10}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models or mmzoo.list_models():
            r = measure(name, args.calls, folder)
            rows.append(r)
            print(f"{name:24} {r['one_ms']:12.2f} {r['one_p90_ms']:7.2f} {r['batch_ms']:8.2f} "
                  f"{r['batch_p90_ms']:7.2f} {r['batch_per_example_ms']:10.3f}", flush=True)
    write_result("latency", {"calls": args.calls, "models": rows})


if __name__ == "__main__":
    main()
