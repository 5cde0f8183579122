"""Training throughput: the zoo (files on disk -> mmzoo.data.pipeline -> mmzoo.build) against the
same graph written by hand in plain Keras and fed from in-memory NumPy arrays.

Run by hand (never a timed test):

    python bench/throughput.py                     # every registered model
    python bench/throughput.py --models vqa_cnn_lstm audio_mfcc_cnn --examples 2048 --rounds 3

For each model, on the real data of its quality recipe (bench/quality.py):
- zoo: `mmzoo.build(name, **adapted config)` trained with `model.fit` on
  `mmzoo.data.pipeline(model, source split, training=True, augment=False)`: decoding, resizing
  and tokenizing included. An audio model is trained as `mmzoo train` trains it: its MFCCs are
  computed once per clip by the pipeline (`features=True`, before the cache) and
  `mmzoo.features.feature_model` (the same layers) trains on them. Its first epoch reads
  the files (reported separately as `zoo_first_epoch`); later epochs read the pipeline's cache.
  The plain anchor does not augment, so for audio models the augmenting pipeline (the `mmzoo
  train` default: cached MFCCs shifted, scaled and masked, `augment_mfcc`) is timed too:
  `zoo_augment`, `augment_ratio`.
- plain: the same layers (same widths, depths, losses and optimizer) written with plain
  `keras.layers`, trained on NumPy arrays already in memory: images as float32, token ids as int32,
  and for audio the MFCCs precomputed with librosa (so the plain graph does no MFCC work at all).
- zoo, NumPy: the zoo's graph (`mmzoo.build`) fed the pipeline's own output from NumPy arrays in
  memory, without augmentation. It splits the ratio in two: pipeline = zoo / zoo on NumPy (what
  reading files through tf.data, and augmenting, costs) and graph = zoo on NumPy / plain (what
  the zoo's graph costs against the hand-written one).
- All three train on the same `--examples` training examples, alternating zoo, zoo on NumPy,
  plain, zoo, ... for `--rounds` rounds of about `--seconds` each (whole epochs) after a
  warm-up epoch each; the throughput is the median over rounds, in training examples per
  second. ratio = zoo / plain.

Prints a table and writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

import mmzoo  # noqa: E402
from mmzoo.data import adapt, open_source, pipeline  # noqa: E402
from mmzoo.contract import front_ends  # noqa: E402
from mmzoo.features import feature_model  # noqa: E402
from mmzoo.registry import get_spec  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import provenance, read_result, shown, write_result  # noqa: E402
from quality import DATA, RECIPES  # noqa: E402


# ---------------------------------------------------------------- the plain-Keras graphs
def plain_image(cfg, image):
    x = layers.Rescaling(1.0 / 255)(image)
    for f in cfg.filters:
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    pooling = "max" if cfg.image_pooling == "auto" else cfg.image_pooling  # auto: max for cnn
    return {"max": layers.GlobalMaxPooling2D, "avg": layers.GlobalAveragePooling2D,
            "flatten": layers.Flatten}[pooling]()(x)


def plain_text(cfg, ids, vocab_size, kind="lstm"):
    dropout = getattr(cfg, "dropout", 0.0)
    if kind == "transformer":
        x = keras_hub.layers.TokenAndPositionEmbedding(vocab_size, cfg.sequence_length,
                                                       cfg.embed_dim, mask_zero=True)(ids)
        for _ in range(cfg.num_layers):
            x = keras_hub.layers.TransformerEncoder(cfg.text_units * 2, cfg.num_heads,
                                                    dropout=dropout)(x)
        return layers.GlobalAveragePooling1D()(x)
    x = layers.Embedding(vocab_size, cfg.embed_dim, mask_zero=True)(ids)
    if kind == "word_vector_mlp":
        x = layers.GlobalAveragePooling1D()(x)
        x = layers.Dense(cfg.text_units, activation="relu")(x)
        return layers.Dropout(dropout)(x) if dropout else x
    return layers.LSTM(cfg.text_units, dropout=dropout)(x)


def plain_audio(cfg, mfcc, kind="cnn"):
    x = layers.BatchNormalization(momentum=0.9)(mfcc)
    if kind == "lstm":
        return layers.LSTM(cfg.audio_units)(x)
    for f in cfg.audio_filters:
        x = layers.Conv1D(f, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(2, padding="same")(x)
    return layers.GlobalAveragePooling1D()(x)


def plain_head(cfg, x):
    for units in cfg.hidden_units:
        x = layers.Dropout(cfg.dropout)(x) if cfg.dropout else x
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dropout(cfg.dropout)(x) if cfg.dropout else x
    return layers.Dense(len(cfg.labels), activation="softmax")(x)


def plain_fuse(features, method, dim):
    if method == "concat":
        return layers.Concatenate()(features)
    projected = [layers.Dense(dim, activation="tanh")(f) for f in features]
    if method == "sum":
        return layers.Add()(projected)
    if method == "product":
        return layers.Multiply()(projected)
    if method == "gated":
        joint = layers.Concatenate()(features)
        return layers.Add()([layers.Multiply()([layers.Dense(dim, activation="sigmoid")(joint), p])
                             for p in projected])
    raise ValueError(f"the plain anchor has no {method!r} fusion")


def plain_model(name, cfg, arrays):
    """The hand-written plain-Keras version of the zoo's `name` with config `cfg`."""
    inputs = {k: keras.Input(shape=v.shape[1:], dtype=str(v.dtype), name=k)
              for k, v in arrays.items()}
    vocab = len(getattr(cfg, "vocabulary", ())) + 2
    adam = keras.optimizers.Adam(cfg.learning_rate)
    if name in ("audio_mfcc_cnn", "audio_mfcc_lstm"):
        out = plain_head(cfg, plain_audio(cfg, inputs["audio"], name.split("_")[-1]))
    elif name.startswith("text_") and name != "text_image_concat":
        kind = {"text_word_vector_mlp": "word_vector_mlp", "text_lstm": "lstm",
                "text_transformer": "transformer"}[name]
        out = plain_head(cfg, plain_text(cfg, inputs["text"], vocab, kind))
    elif name in ("vqa_cnn_lstm", "text_image_concat", "trimodal_classifier"):
        text = "question" if name == "vqa_cnn_lstm" else "text"
        features = [plain_image(cfg, inputs["image"]), plain_text(cfg, inputs[text], vocab)]
        if "audio" in inputs:
            features.append(plain_audio(cfg, inputs["audio"], cfg.audio_encoder))
        out = plain_head(cfg, plain_fuse(features, cfg.fusion, cfg.fusion_dim))
    elif name == "late_fusion_classifier":
        probs = []
        for x in (plain_text(cfg, inputs["text"], vocab), plain_image(cfg, inputs["image"])):
            x = layers.Dropout(cfg.dropout)(x) if cfg.dropout else x
            probs.append(layers.Dense(len(cfg.labels), activation="softmax")(x))
        out = layers.Average()(probs)
    elif name == "caption_lstm":
        features = plain_image(cfg, inputs["image"])
        h = layers.Dense(cfg.units, activation="tanh")(features)
        c = layers.Dense(cfg.units)(features)
        x = layers.Embedding(vocab, cfg.embed_dim, mask_zero=True)(inputs["text"])
        x = layers.Dropout(cfg.dropout)(x) if cfg.dropout else x
        x = layers.LSTM(cfg.units, return_sequences=True)(x, initial_state=[h, c])
        x = layers.Dropout(cfg.dropout)(x) if cfg.dropout else x
        out = layers.Dense(vocab, activation="softmax")(x)
        model = keras.Model(inputs, out)
        model.compile(adam, keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
                      metrics=["accuracy"])
        return model
    elif name == "dual_encoder":
        t = layers.Dense(cfg.embedding_dim)(plain_text(cfg, inputs["text"], vocab,
                                                       cfg.text_encoder))
        v = layers.Dense(cfg.embedding_dim)(plain_image(cfg, inputs["image"]))
        t, v = layers.UnitNormalization()(t), layers.UnitNormalization()(v)
        out = layers.Lambda(lambda tv: 10.0 * ops.matmul(tv[0], ops.transpose(tv[1])))([t, v])
        model = keras.Model(inputs, out)

        def clip_loss(_, logits):
            labels = ops.arange(ops.shape(logits)[0])
            ce = keras.losses.sparse_categorical_crossentropy
            return (ce(labels, logits, from_logits=True)
                    + ce(labels, ops.transpose(logits), from_logits=True)) / 2

        model.compile(adam, clip_loss)
        return model
    else:
        raise KeyError(f"no plain-Keras anchor for {name!r}; add one to bench/throughput.py")
    model = keras.Model(inputs, out)
    model.compile(adam, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---------------------------------------------------------------- data
def librosa_mfcc(waves, cfg):
    return np.stack([librosa.feature.mfcc(
        y=w, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels).T for w in waves]).astype("float32")


def to_numpy(ds, cfg):
    """The pipeline's (inputs, targets) as NumPy arrays in memory; with a config `cfg`, audio
    becomes librosa MFCCs."""
    xs, ys = {}, []
    for x, y in ds:
        for k, v in x.items():
            xs.setdefault(k, []).append(v.numpy())
        ys.append(y.numpy())
    arrays = {k: np.concatenate(v) for k, v in xs.items()}
    if "audio" in arrays and cfg is not None:
        arrays["audio"] = librosa_mfcc(arrays["audio"], cfg)
    return arrays, np.concatenate(ys)


def recipe_for(name):
    for recipe, (model, source, _, batch, *_) in RECIPES.items():   # speech recipes add fields
        if model == name and recipe == name:
            return source.format(data=DATA), batch
    raise KeyError(f"no quality recipe for {name!r} in bench/quality.py")


# ---------------------------------------------------------------- timing
def epoch_seconds(fit):
    start = time.perf_counter()
    fit()
    return time.perf_counter() - start


def measure(name, examples, rounds, seconds=3.0, seed=0):
    source, batch = recipe_for(name)
    spec = get_spec(name)
    src = open_source(source)
    train_raw = src.fit_splits(spec.task)[0].take(examples)
    config = adapt(name, src.fit_splits(spec.task, decode=False)[0])
    cfg = spec.make_config(**config)
    keras.utils.set_random_seed(seed)

    whole = mmzoo.build(name, **config)
    # As `mmzoo train` trains it: an audio model trains on its MFCCs, computed once per example
    # in the pipeline before its cache (frozen image backbones, which the plain anchor runs
    # every step, are timed in bench/frozen_features.py instead).
    fronts = front_ends(whole)
    fronts = fronts if set(fronts) == {"audio"} else {}
    zoo = feature_model(whole, fronts) if fronts else whole
    features = bool(fronts)
    # Like for like: the plain anchor does not augment, so neither does this pipeline; the
    # augmenting pipeline (audio models) is timed as one more contender.
    zoo_ds = pipeline(whole, train_raw, batch_size=batch, training=True, seed=seed,
                      augment=False, features=features)
    audio = "audio" in spec.inputs
    zoo_augment_ds = (pipeline(whole, train_raw, batch_size=batch, training=True, seed=seed,
                               features=features) if audio else None)
    # The same examples in memory: what the pipeline yields (no augmentation), as NumPy.
    raw_arrays, targets = to_numpy(pipeline(whole, train_raw, batch_size=256, training=True,
                                            seed=seed, augment=False), None)
    zoo_arrays = (to_numpy(pipeline(whole, train_raw, batch_size=256, training=True, seed=seed,
                                    augment=False, features=True), None)[0]
                  if features else raw_arrays)
    arrays = dict(raw_arrays)
    if "audio" in arrays:
        arrays["audio"] = librosa_mfcc(arrays["audio"], cfg)
    n = len(targets)
    plain = plain_model(name, cfg, arrays)
    zoo_numpy = mmzoo.build(name, **config)
    if features:
        zoo_numpy = feature_model(zoo_numpy)

    def fits(epochs):
        augmenting = ({"zoo_augment": lambda: zoo.fit(zoo_augment_ds, epochs=epochs, verbose=0)}
                      if audio else {})
        return {
            "zoo": lambda: zoo.fit(zoo_ds, epochs=epochs, verbose=0), **augmenting,
            "zoo_numpy": lambda: zoo_numpy.fit(zoo_arrays, targets, batch_size=batch,
                                               epochs=epochs, shuffle=True, verbose=0),
            "plain": lambda: plain.fit(arrays, targets, batch_size=batch, epochs=epochs,
                                       shuffle=True, verbose=0)}

    first = epoch_seconds(fits(1)["zoo"])     # reads and decodes the files, fills the cache
    if audio:
        epoch_seconds(fits(1)["zoo_augment"])  # its own cache
    warm = {k: epoch_seconds(f) for k, f in fits(1).items()}   # traces every graph once more
    epochs = max(1, round(seconds / min(warm.values())))       # rounds of about `seconds` each
    times = {k: [] for k in warm}
    for _ in range(rounds):                   # alternating: zoo, zoo graph on NumPy, plain, ...
        for k, f in fits(epochs).items():
            times[k].append(epoch_seconds(f) / epochs)
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    return {"model": name, "data": source, "examples": n, "batch_size": batch,
            "epochs_per_round": epochs,
            "zoo_params": whole.count_params(), "plain_params": plain.count_params(),
            "trains_on": "MFCCs cached by the pipeline" if "audio" in fronts else "its inputs",
            "zoo_first_epoch": round(n / first, 1),
            **{k: round(v, 1) for k, v in rate.items()},
            "ratio": round(rate["zoo"] / rate["plain"], 3),
            "pipeline_ratio": round(rate["zoo"] / rate["zoo_numpy"], 3),
            "graph_ratio": round(rate["zoo_numpy"] / rate["plain"], 3),
            **({"augment_ratio": round(rate["zoo_augment"] / rate["zoo"], 3)} if audio else {}),
            "seconds_per_epoch": {k: [round(s, 3) for s in v] for k, v in times.items()}}


def table():
    """The README's throughput table, from bench/results/throughput.json."""
    result = read_result("throughput")
    machine = result["measured"]["machine"]
    lines = [f"Measured on {machine}, each row at the commit it names; training examples per "
             "second:", "",
             "| model | zoo | zoo graph on NumPy | plain Keras on NumPy | **ratio** | pipeline | "
             "graph | zoo, first epoch | zoo, augmenting | measured at |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        augmenting = (f"{r['zoo_augment']:.0f} ({r['augment_ratio']:.2f}; "
                      f"{r['zoo_augment'] / r['plain']:.2f} of plain)"
                      if "zoo_augment" in r else "-")
        lines.append(f"| `{r['model']}` | {r['zoo']:.0f} | {r['zoo_numpy']:.0f} | "
                     f"{r['plain']:.0f} | **{r['ratio']:.2f}** | {r['pipeline_ratio']:.2f} | "
                     f"{r['graph_ratio']:.2f} | {r['zoo_first_epoch']:.0f} | {augmenting} | "
                     f"{shown(r.get('measured', result['measured']))} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help="models to measure (default: every registered model)")
    parser.add_argument("--examples", type=int, default=2048,
                        help="training examples per epoch (default 2048)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="timed rounds of each, alternating (default 6)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="length of a round: epochs are repeated to last about this long")
    parser.add_argument("--table", action="store_true",
                        help="print the README's table from bench/results and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return
    names = args.models or mmzoo.list_models()
    rows = []
    header = (f"{'model':24} {'zoo':>8} {'zoo,NumPy':>9} {'plain':>8} {'ratio':>6} "
              f"{'pipeline':>8} {'graph':>6} {'1st epoch':>9}  (training examples/s)")
    print(header, flush=True)
    for name in names:
        r = measure(name, args.examples, args.rounds, args.seconds)
        rows.append(r)
        print(f"{name:24} {r['zoo']:8.0f} {r['zoo_numpy']:9.0f} {r['plain']:8.0f} "
              f"{r['ratio']:6.2f} {r['pipeline_ratio']:8.2f} {r['graph_ratio']:6.2f} "
              f"{r['zoo_first_epoch']:9.0f}"
              + (f"  augmenting: {r['zoo_augment']:.0f}" if "zoo_augment" in r else ""),
              flush=True)
    # Models not measured this time keep their rows, each with the commit it was measured at
    # (the table shows it per row).
    previous = read_result("throughput") or {"models": []}
    now = provenance()
    rows = [{**r, "measured": now} for r in rows]
    kept = [{**r, "measured": r.get("measured", previous["measured"])}
            for r in previous["models"] if r["model"] not in names]
    write_result("throughput", {"examples": args.examples, "rounds": args.rounds,
                                "seconds": args.seconds,
                                "models": sorted(kept + rows, key=lambda r: r["model"])})


if __name__ == "__main__":
    main()
