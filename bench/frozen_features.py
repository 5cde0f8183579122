"""Frozen-feature training against running the frozen backbone every step.

Run by hand (never a timed test):

    python bench/frozen_features.py

For each model (the Flickr8k recipes' `caption_lstm` and `dual_encoder` on the ImageNet
MobileNet v1 alpha 0.25 of ../shared/data/weights, and `caption_lstm_mobilenet`'s default
backbone, MobileNet alpha 1.0, frozen with random weights: its speed does not depend on the
weights' values, and its ImageNet file is not here), trains 3 epochs twice from the same seed: with
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
SMALL = {"image_encoder": "mobilenet", "image_alpha": 0.25, "image_size": 224,
         "image_weights": "{data}/weights/mobilenet_v1_0.25_224_imagenet_no_top.h5"}
# result key -> (model, overrides)
MODELS = {"dual_encoder": ("dual_encoder", SMALL), "caption_lstm": ("caption_lstm", SMALL),
          "caption_lstm_mobilenet (alpha 1.0)": ("caption_lstm_mobilenet",
                                                 {"image_weights": None,
                                                  "image_trainable": False})}


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
    result = {"data": data, "epochs": EPOCHS, "batch_size": 64, "models": {}}
    for key, (name, overrides) in MODELS.items():
        overrides = {k: v.format(data=DATA) if isinstance(v, str) else v
                     for k, v in overrides.items()}
        runs = {"model": name, "overrides": overrides}
        for cache in ("memory", "off"):
            timer = Timer()
            with tempfile.TemporaryDirectory() as out:
                _, history = mmzoo.train(name, data, epochs=EPOCHS, batch_size=64, out=out,
                                         overrides=overrides, feature_cache=cache, verbose=0,
                                         callbacks=[timer])
            runs[cache] = {"epoch_seconds": [round(t, 2) for t in timer.times],
                           "val_loss": [round(v, 4) for v in history.history["val_loss"]]}
            print(f"{key} feature_cache={cache}: epochs {runs[cache]['epoch_seconds']} s, "
                  f"val_loss {runs[cache]['val_loss']}", flush=True)
        later = {c: sum(runs[c]["epoch_seconds"][1:]) / (EPOCHS - 1) for c in ("memory", "off")}
        runs["speedup_after_first_epoch"] = round(later["off"] / later["memory"], 2)
        runs["first_epoch_speedup"] = round(runs["off"]["epoch_seconds"][0]
                                            / runs["memory"]["epoch_seconds"][0], 2)
        print(f"{key}: epochs after the first {runs['speedup_after_first_epoch']}x faster "
              "with cached features", flush=True)
        result["models"][key] = runs
    write_result("frozen_features", result)


if __name__ == "__main__":
    main()
