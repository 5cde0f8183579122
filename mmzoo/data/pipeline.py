"""`pipeline`: raw example dicts -> batched `(inputs, targets)` shaped for one model."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mmzoo import contract
from mmzoo.artifacts import Artifact
from mmzoo.contract import TEXT_INPUTS, front_end_key, front_ends
from mmzoo.data import waveform
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import InvalidValue
from mmzoo.layers.mfcc import MFCC
from mmzoo.registry import task_of

# Example keys each model input may be fed from, in order of preference (`captions`: several
# captions per image, one of which is used per example).
SOURCE_KEYS = {"image": ("image",), "audio": ("audio",), "text": ("text", "question", "captions"),
               "question": ("question", "text")}

CACHES = ("auto", "memory", "disk", "none")
# `cache="auto"` keeps decoded images or audio in memory only when they are estimated at no more
# than this share of the machine's memory, and never more than `MEMORY_CACHE_MAX` (2 GiB).
MEMORY_CACHE_SHARE = 0.1
MEMORY_CACHE_MAX = 2 * 2**30
ESTIMATE_EXAMPLES = 16  # examples prepared to estimate the size of the whole cache


def pipeline(model, dataset, batch_size=32, training=False, *, shuffle_buffer=10_000, seed=None,
             cache="auto", cache_dir=None, augment=None, features=False, extras=()):
    """Shape a dataset of raw example dicts into batched `(inputs, targets)` for `model`.

    Every step from a raw example to model inputs is the model's `Preprocessor` (the same one
    the exported serving graph uses), and every step of its targets its task's
    (`mmzoo.registry.task_of(model)`, `mmzoo.tasks`). Per example (parallel `map`): images
    resized to the model's size (grey -> RGB), waveforms resampled to the model's rate when the
    example's `sample_rate` differs, then centred and padded or cropped to its length, and the
    task's `prepare` (a label written as its class name; a transcript as CTC ids); per batch of
    256: questions and texts tokenized with the vocabulary the model carries, and the task's
    `encode` (class names to ids); then `cache`; then the task's `expand` (a captioner's every
    caption an example of its own; a dual encoder's one caption per image, drawn anew each epoch
    when training, else the first); `shuffle` when training; `batch` (or the task's own: a
    speech recogniser's utterances of similar length batched together, zero-padded at the end);
    waveform augmentation per batch (`mmzoo.data.waveform.augment`: time shift, gain, noise);
    per batch: images cast to float32, texts drawn per epoch tokenized, and the task's
    `targets` (a captioner's caption shifted for teacher forcing); then `prefetch`.

    Audio examples say the rate they were read at in a `sample_rate` entry (every mmzoo source
    does); examples without one are taken to be at the model's rate.

    Args:
        model: keras.Model. A model built by `mmzoo.build` (it carries its vocabularies).
        dataset: tf.data.Dataset. Raw example dicts from `mmzoo.data.load`.
        batch_size: int. Examples per batch.
        training: bool. Shuffle (each epoch anew) and augment when True.
        shuffle_buffer: int. Size of the shuffle buffer.
        seed: int or None. Shuffle seed.
        cache: str. Where the prepared examples (decoded, resized, tokenized; frozen-backbone
            features) are kept after the first pass, so later epochs skip that work
            (`tf.data.Dataset.cache`): `memory`; `disk` (in `cache_dir`); `none` (every epoch
            prepares them again: memory stays flat whatever the data's size); `auto` (the
            default): for examples of text alone `none` (tokenizing a batch costs no more than
            reading it back from a cache, and a memory cache would grow with the data); for
            images, audio or frozen-backbone features `memory` when the whole cache is
            estimated at no more than 10% of the machine's memory (`MEMORY_CACHE_SHARE`) and
            2 GiB (`MEMORY_CACHE_MAX`), else `disk` (decoding costs more than reading back).
            The estimate is the mean size of the first 16 prepared examples times their
            count. The choice is in the returned dataset's `cache_info` (`{"mode",
            "estimate_bytes", "path"}`). `True`/`False` mean `memory`/`none`.
            A disk cache is a keyed artifact (`mmzoo.artifacts`): named by the data it was
            made from (the `identity` that `mmzoo.data.load` gives a dataset: the source, its
            files' fingerprint, the split) and the model's preprocessing (`Preprocessor.
            identity`: input sizes, vocabularies, labels, sample rate; the front ends'
            weights with `features`), written completely in a first pass (a progress bar)
            under a staging name and moved into place, and read again by any pipeline asking
            for exactly the same (a resumed run), never by another. A dataset without an
            identity (made by hand) gets a cache of its own, removed when the process exits.
        cache_dir: str or None. Folder of a disk cache (only mmzoo's own files in it are ever
            removed); None: a temporary folder removed when the process exits.
        augment: bool or None. Augment waveforms; None: when `training`.
        features: bool. For a model with fixed front ends (`mmzoo.contract.front_ends`:
            a frozen image backbone, an MFCC audio front end): `image` is the backbone's
            features and `audio` the MFCCs, computed once per example before the cache, for
            `feature_model(model)` to train on. Training then augments the MFCCs instead of the
            waveforms (`mmzoo.data.waveform.augment_mfcc`: time shift, gain, time and
            coefficient masks).
        extras: tuple of str. Example keys (scalar strings: `speaker`, `transcript`) carried
            through as a third element of each batch, `(inputs, targets, {key: [batch]})`, so
            that evaluation reads a split once.

    Examples:
    ```python
    model = mmzoo.build("vqa_cnn_lstm")
    train = mmzoo.data.pipeline(model, mmzoo.data.load("easy_vqa", split="train"), training=True)
    model.fit(train, epochs=1)
    ```
    """
    pre, task = Preprocessor(model), task_of(model)
    keys = input_keys(model, dataset.element_spec)
    task.check_examples(model, dataset.element_spec)
    ds = dataset.map(_preparer(pre, task, keys, dataset.element_spec, extras),
                     num_parallel_calls=tf.data.AUTOTUNE)
    encoded = [n for n in keys if n in TEXT_INPUTS and not task.per_epoch_text(n, keys[n])]
    if encoded or task.encodes_targets:  # once, before the cache: later epochs read ids
        ds = _per_batch(ds, _encoder(pre, task, encoded), 256,
                        num_parallel_calls=tf.data.AUTOTUNE)
    fronts = {}
    if features:
        ds, fronts = _front_end_features(ds, model, keys)

    def parts():  # what a disk cache is keyed by (worked out only for a disk cache)
        return {"data": getattr(dataset, "identity", None),
                "preprocessing": {**pre.identity(), "task": task.name, **task.identity(model)},
                "inputs": sorted(keys.items()), "encoded": encoded,
                "features": front_end_key(fronts) if fronts else None}

    ds, cache_info = _cache(ds, cache, cache_dir, media=features or "image" in keys
                            or "audio" in keys, parts=parts)
    ds = task.expand(ds, training)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    augment = training if augment is None else augment
    batched = task.batch(ds, pre, batch_size, training, augment, extras)
    if batched is None:
        ds = _augmented(ds.batch(batch_size), pre, fronts, augment and "audio" in keys)
        finish = _finisher(pre, task, keys, features, extras)
        batched = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    ds = batched.prefetch(tf.data.AUTOTUNE)
    ds.cache_info = cache_info
    return ds


def input_keys(model, element):
    """`{input name: example key}`: the example key each input of `model` is fed from
    (`SOURCE_KEYS`, in order of preference); an input the examples lack fails naming both."""
    keys = {}
    for name in contract.input_shapes(model):
        found = [k for k in SOURCE_KEYS[name] if k in element]
        if not found:
            raise InvalidValue(
                f"model {model.name!r} needs input {name!r} but the dataset's examples have only "
                f"{sorted(element)}; load the data for task {task_of(model).name!r}")
        keys[name] = found[0]
    return keys


def _preparer(pre, task, keys, element, extras):
    """The per-example step: images resized, waveforms resampled and fitted, the targets'
    raw parts (the task's `prepare`), the extras carried."""
    with_rate = "audio" in keys and "sample_rate" in element

    def prepare(example):
        out = {}
        for name, key in keys.items():
            value = example[key]
            if name == "image":
                value = pre.image(value)
            elif name == "audio":
                value = pre.audio(value, example["sample_rate"] if with_rate else None)
            out[key if key == "captions" else name] = value
        out.update(task.prepare(pre, example))
        for key in extras:
            out[f"extra_{key}"] = example[key]
        return out

    return prepare


def _encoder(pre, task, encoded):
    """The per-batch step before the cache: texts tokenized (those not tokenized per epoch) and
    the task's targets encoded (`Task.encode`), so later epochs read ids."""
    def encode(batch):
        out = dict(batch)
        for name in encoded:
            out[name] = pre.text(name, batch[name])
        return task.encode(pre, out) if task.encodes_targets else out

    return encode


def _augmented(ds, pre, fronts, augment):
    """Batches of waveforms augmented (`mmzoo.data.waveform.augment`: time shift, gain, noise),
    or of cached MFCCs augmented as MFCCs (`augment_mfcc`), when `augment`."""
    if not augment:
        return ds
    if "audio" in fronts and not isinstance(fronts["audio"], MFCC):
        return ds  # a frozen backbone's embeddings, cached: used as they are (as images')
    if "audio" in fronts:  # MFCCs of the waveforms as read, cached: augmented as MFCCs
        mfcc = fronts["audio"]
        return ds.map(lambda e: {**e, "audio": waveform.augment_mfcc(
            e["audio"], mfcc.sample_rate / mfcc.hop_length, mfcc.n_mels)},
            num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda e: {**e, "audio": waveform.augment(e["audio"], pre.sample_rate)},
                  num_parallel_calls=tf.data.AUTOTUNE)


def _finisher(pre, task, keys, features, extras):
    """The per-batch step after the cache: model inputs (images float32), texts tokenized per
    epoch, the task's targets, the extras as a third element."""
    per_epoch = [n for n in keys if n in TEXT_INPUTS and task.per_epoch_text(n, keys[n])]

    def finish(batch):
        inputs = pre.model_inputs({name: batch[name] for name in keys}, features=features)
        for name in per_epoch:
            inputs[name] = batch[name]          # strings: the task tokenizes them
        inputs, targets = task.targets(pre, batch, inputs)
        for name in per_epoch:
            if inputs[name].dtype == tf.string:
                inputs[name] = pre.text(name, inputs[name])
        if extras:
            return inputs, targets, {key: batch[f"extra_{key}"] for key in extras}
        return inputs, targets

    return finish


def _cache(ds, cache, cache_dir, media, parts):
    """`(ds cached as `cache` says, {"mode", "estimate_bytes", "path"})` (see `pipeline`); a
    disk cache is the keyed artifact of `parts()` (`mmzoo.artifacts.Artifact`, role
    `examples`) in `cache_dir`, written first when it is not there."""
    path, estimate = None, None
    if cache is True or cache is False or cache is None:
        cache = "memory" if cache else "none"
    elif not isinstance(cache, str) or cache not in CACHES:
        raise InvalidValue(f"cache must be one of {list(CACHES)}, got {cache!r} (a disk cache "
                           "goes in cache_dir=FOLDER)")
    if cache == "auto" and not media:
        cache = "none"
    elif cache == "auto":
        estimate = estimate_cache_bytes(ds)
        fits = min(MEMORY_CACHE_MAX, MEMORY_CACHE_SHARE * _physical_memory())
        cache = "memory" if estimate is not None and estimate <= fits else "disk"
    if cache == "disk":
        path = disk_cache(ds, cache_dir, parts())
    if cache == "memory":
        ds = ds.cache()
    elif cache == "disk":
        ds = ds.cache(path)
    return ds, {"mode": cache, "estimate_bytes": estimate, "path": path}


CACHE_PREFIX = "examples"  # the tf.data cache files' prefix inside its artifact folder


def disk_cache(ds, cache_dir, parts):
    """The file prefix of a complete `tf.data` disk cache of `ds`, the artifact keyed by
    `parts` in `cache_dir` (None: a temporary folder removed at exit): read when it is in
    place (made from exactly these data and preprocessing), else written first, in one pass
    with a progress bar, under a staging name, then moved into place. A dataset of unknown
    identity (`parts["data"]` None) gets a cache of its own, never reused, removed at exit."""
    if cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="mmzoo-cache-")
        atexit.register(shutil.rmtree, cache_dir, ignore_errors=True)
    unknown = parts.get("data") is None
    if unknown:  # nothing says what it holds: a cache of this pipeline alone
        parts = {**parts, "data": f"unidentified {uuid.uuid4()}"}
    art = Artifact(cache_dir, "examples", parts)
    if not art.ready():
        with art.build() as staging:
            count = int(ds.cardinality())
            bar = tqdm(total=count if count >= 0 else None, desc=f"caching {art.name}",
                       unit="example", leave=False, mininterval=0.5,
                       disable=0 <= count < 2000)
            with bar:
                for _ in ds.cache(os.path.join(staging, CACHE_PREFIX)):
                    bar.update()
    if unknown:
        atexit.register(art.remove)
    art.touch()
    return os.path.join(art.path, CACHE_PREFIX)


def _physical_memory():
    """This machine's memory in bytes (8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def estimate_cache_bytes(ds):
    """The bytes a cache of `ds` would hold: the mean size of its first 16 examples times its
    cardinality (None when the cardinality is unknown or infinite)."""
    count = int(ds.cardinality())
    if count < 0:
        return None
    sizes = [sum(_nbytes(v) for v in tf.nest.flatten(e))
             for e in ds.take(ESTIMATE_EXAMPLES).as_numpy_iterator()]
    return int(np.mean(sizes) * count) if sizes else 0


def _nbytes(value):
    value = np.asarray(value)
    if value.dtype == object:  # strings
        return sum(len(v) for v in value.reshape(-1))
    return value.nbytes


def cache_bytes(info):
    """Bytes on disk of the disk cache described by a `cache_info` (0 for other caches)."""
    if not info or info["mode"] != "disk":
        return 0
    folder = os.path.dirname(info["path"])
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if f.startswith(CACHE_PREFIX))


def _front_end_features(ds, model, keys):
    """Images -> the frozen backbone's features, waveforms -> their MFCCs (the model's fixed
    front ends, `mmzoo.contract.front_ends`), in batches of 64, before the cache."""
    fronts = {name: front for name, front in front_ends(model).items() if name in keys}
    if not fronts:
        raise InvalidValue(f"features=True needs a model with a fixed front end (a frozen "
                           f"image backbone or an MFCC audio front end); model {model.name!r} "
                           "has none (build it with a pretrained image_encoder)")

    def run(batch):
        out = dict(batch)
        for name, front in fronts.items():
            out[name] = front(tf.cast(batch[name], tf.float32), training=False)
        return out

    return _per_batch(ds, run, 64), fronts


def _per_batch(ds, fn, size, **map_options):
    """`fn` over batches of `size`, unbatched again, keeping the dataset's cardinality (unbatch
    loses it; Keras needs it to count steps)."""
    count = ds.cardinality()
    ds = ds.batch(size).map(fn, **map_options).unbatch()
    return ds.apply(tf.data.experimental.assert_cardinality(count)) if count >= 0 else ds
