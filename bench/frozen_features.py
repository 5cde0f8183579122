"""Frozen-feature training against running the frozen backbone every step.

Run by hand (never a timed test):

    python bench/frozen_features.py

For each model (the Flickr8k recipes' `caption_lstm` and `dual_encoder` on the ImageNet
MobileNet of ../shared/data/weights), trains 3 epochs twice from the same seed: with
`feature_cache="memory"` (the backbone runs once per image, in epoch 1) and `"off"` (the backbone
runs every step), and records each epoch's wall time, the speed-up of the epochs after the first,
and the validation loss of both runs (the same training, so the same figures). Results go to
bench/results/frozen_features.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import DATA, write_result  # noqa: E402

EPOCHS = 3
MODELS = ("dual_encoder", "caption_lstm")


def main():
    import keras

    import mmzoo

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    data = f"captions:{DATA}/flickr8k_1k"
    overrides = {"image_encoder": "mobilenet", "image_alpha": 0.25, "image_size": 224,
                 "image_weights": f"{DATA}/weights/mobilenet_v1_0.25_224_imagenet_no_top.h5"}
    result = {"data": data, "epochs": EPOCHS, "batch_size": 64, "overrides": overrides,
              "models": {}}
    for name in MODELS:
        runs = {}
        for cache in ("memory", "off"):
            timer = Timer()
            with tempfile.TemporaryDirectory() as out:
                _, history = mmzoo.train(name, data, epochs=EPOCHS, batch_size=64, out=out,
                                         overrides=overrides, feature_cache=cache, verbose=0,
                                         callbacks=[timer])
            runs[cache] = {"epoch_seconds": [round(t, 2) for t in timer.times],
                           "val_loss": [round(v, 4) for v in history.history["val_loss"]]}
            print(f"{name} feature_cache={cache}: epochs {runs[cache]['epoch_seconds']} s, "
                  f"val_loss {runs[cache]['val_loss']}", flush=True)
        later = {c: sum(r["epoch_seconds"][1:]) / (EPOCHS - 1) for c, r in runs.items()}
        runs["speedup_after_first_epoch"] = round(later["off"] / later["memory"], 2)
        runs["first_epoch_speedup"] = round(runs["off"]["epoch_seconds"][0]
                                            / runs["memory"]["epoch_seconds"][0], 2)
        print(f"{name}: epochs after the first {runs['speedup_after_first_epoch']}x faster "
              "with cached features", flush=True)
        result["models"][name] = runs
    write_result("frozen_features", result)


if __name__ == "__main__":
    main()
