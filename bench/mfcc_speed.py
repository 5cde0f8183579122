"""MFCC layer against `librosa.feature.mfcc` on real FSDD clips: time per clip and error.

Run by hand (never a timed test):  python bench/mfcc_speed.py [--clips 256] [--data DIR]

Both are warmed up, then timed best of 3 on the same batch of 1-second clips (8 kHz, centred and
zero-padded or cropped). librosa is timed clip by clip (how it is called in a data loader) and
on the whole batch at once (librosa accepts `[..., samples]`). The layer runs inside a
`tf.function`, as it does in a model. Writes bench/results/mfcc_speed.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmzoo  # noqa: E402
from mmzoo.checks import read_audio  # noqa: E402
from mmzoo.data.waveform import fit_length  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import write_result  # noqa: E402

SETTINGS = dict(n_mfcc=13, n_fft=256, hop_length=80, n_mels=40)  # the audio models' defaults


def best_of(fn, repeats=3):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--data", default=os.environ.get(
        "MMZOO_DATA_DIR", os.path.join(HERE, "..", "..", "shared", "data")))
    args = parser.parse_args()

    src = mmzoo.data.open_source(f"fsdd:{os.path.join(args.data, 'fsdd')}")
    paths = src.columns["audio"][:: max(1, len(src.columns["audio"]) // args.clips)][: args.clips]
    sr = 8000
    batch = np.stack([fit_length(read_audio(p, sr)[0], sr).numpy() for p in paths])

    layer = mmzoo.layers.MFCC(sr, **SETTINGS)
    graph = tf.function(lambda x: layer(x))
    x = tf.constant(batch)

    def ours():
        return graph(x).numpy()

    def librosa_loop():
        return [librosa.feature.mfcc(y=y, sr=sr, **SETTINGS) for y in batch]

    def librosa_batch():
        return librosa.feature.mfcc(y=batch, sr=sr, **SETTINGS)

    out = ours()
    ref = np.stack(librosa_loop()).transpose(0, 2, 1)
    errors = np.linalg.norm((out - ref).reshape(len(batch), -1), axis=1) / np.linalg.norm(
        ref.reshape(len(batch), -1), axis=1)
    t_ours, t_loop, t_batch = best_of(ours), best_of(librosa_loop), best_of(librosa_batch)
    n = len(batch)
    result = {
        "clips": n, "sample_rate": sr, "settings": SETTINGS,
        "threads": {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "cpus": os.cpu_count()},
        "ms_per_clip": {"mmzoo.layers.MFCC": 1e3 * t_ours / n,
                        "librosa (clip by clip)": 1e3 * t_loop / n,
                        "librosa (whole batch)": 1e3 * t_batch / n},
        "speedup": {"vs librosa clip by clip": t_loop / t_ours,
                    "vs librosa whole batch": t_batch / t_ours},
        "relative_error": {"max": float(errors.max()), "mean": float(errors.mean())},
    }
    for key, value in result["ms_per_clip"].items():
        print(f"{key:28s} {value:8.4f} ms/clip")
    print(f"speed-up: {result['speedup']['vs librosa clip by clip']:.1f}x vs librosa clip by "
          f"clip, {result['speedup']['vs librosa whole batch']:.1f}x vs librosa on the batch")
    print(f"relative error per clip: max {errors.max():.2e}, mean {errors.mean():.2e}")
    write_result("mfcc_speed", result)


if __name__ == "__main__":
    main()
