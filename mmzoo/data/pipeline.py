"""`pipeline`: raw example dicts -> batched `(inputs, targets)` shaped for one model."""

from __future__ import annotations

import keras
import tensorflow as tf

from mmzoo.data import waveform
from mmzoo.data.easy_vqa import END, START
from mmzoo.data.text import vectorizer
from mmzoo.layers.mfcc import model_sample_rate
from mmzoo.layers.vocab import model_labels, model_vocabulary

# Example keys each model input may be fed from, in order of preference (`captions`: several
# captions per image, one of which is used per example).
SOURCE_KEYS = {"image": ("image",), "audio": ("audio",), "text": ("text", "question", "captions"),
               "question": ("question", "text")}


def pipeline(model, dataset, batch_size=32, training=False, *, shuffle_buffer=10_000, seed=None,
             cache=True, augment=None):
    """Shape a dataset of raw example dicts into batched `(inputs, targets)` for `model`.

    Per example (parallel `map`): images resized to the model's size (grey -> RGB), waveforms
    centred and padded or cropped to its length, integer labels turned into their strings;
    per batch of 256: questions and texts tokenized with the vocabulary the model carries, labels
    turned into class ids; then `cache`; then, when training, one caption drawn per image and epoch
    (evaluating: captioning uses every caption, retrieval the first), `shuffle`; then `batch`;
    waveform augmentation per batch (`mmzoo.data.waveform.augment`: time shift, gain, noise); per
    batch: captions tokenized and shifted for teacher forcing, images cast to float32; then
    `prefetch`.

    Args:
        model: keras.Model. A model built by `mmzoo.build` (it carries its vocabularies).
        dataset: tf.data.Dataset. Raw example dicts from `mmzoo.data.load`.
        batch_size: int. Examples per batch.
        training: bool. Shuffle (each epoch anew) and augment when True.
        shuffle_buffer: int. Size of the shuffle buffer.
        seed: int or None. Shuffle seed.
        cache: bool. Cache the decoded examples in memory after the first pass.
        augment: bool or None. Augment waveforms; None: when `training`.

    Examples:
    ```python
    model = mmzoo.build("vqa_cnn_lstm")
    train = mmzoo.data.pipeline(model, mmzoo.data.load("easy_vqa", split="train"), training=True)
    model.fit(train, epochs=1)
    ```
    """
    from mmzoo.registry import get_spec

    spec = get_spec(model.name)
    keys = {}
    for name in spec.inputs:
        found = [k for k in SOURCE_KEYS[name] if k in dataset.element_spec]
        if not found:
            raise ValueError(
                f"model {model.name!r} needs input {name!r} but the dataset's examples have only "
                f"{sorted(dataset.element_spec)}; load the data for task {spec.task!r}")
        keys[name] = found[0]
    shapes = {t.name: tuple(t.shape[1:]) for t in model.inputs}
    labels = model_labels(model) if spec.task in ("classification", "vqa") else None
    if spec.task in ("classification", "vqa"):
        if "label" not in dataset.element_spec:
            raise ValueError(f"model {model.name!r} ({spec.task}) needs a 'label' in each "
                             f"example; the dataset has {sorted(dataset.element_spec)}")
        if labels is None:
            raise ValueError(f"model {model.name!r} carries no class names (LabelNames layer)")

    def prepare(example):
        out = {}
        for name, key in keys.items():
            value = example[key]
            if name == "image":
                value = fit_image(value, shapes["image"][:2])
            elif name == "audio":
                value = waveform.fit_length(value, shapes["audio"][0])
            out[key if key == "captions" else name] = value
        if labels is not None:
            label = example["label"]
            out["label"] = label if label.dtype == tf.string else tf.strings.as_string(label)
        return out

    ds = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    encode = _encode_fn(model, spec, keys, shapes, labels)
    if encode is not None:  # once, before the cache: later epochs read ids, not strings
        ds = ds.batch(256).map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        count = dataset.cardinality()
        if count >= 0:  # unbatch loses it; Keras needs it to count steps
            ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    if cache:
        ds = ds.cache()
    if keys.get("text") == "captions":
        ds = _one_caption_per_example(ds, training, spec.task)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if "audio" in keys and (training if augment is None else augment):
        rate = _sample_rate(model)
        ds = ds.map(lambda e: {**e, "audio": waveform.augment(e["audio"], rate)},
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_batch_fn(model, spec, keys, shapes), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def fit_image(image, size):
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    image = tf.image.resize(image, size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _one_caption_per_example(ds, training, task):
    """`captions` -> `text`: a random caption per epoch when training; else every caption
    (captioning: references for the loss) or the first (retrieval: one pair per image)."""
    def text(e, caption):
        return {**{k: v for k, v in e.items() if k != "captions"}, "text": caption}

    if training:
        def pick(e):
            i = tf.random.uniform([], 0, tf.shape(e["captions"])[0], dtype=tf.int32)
            return text(e, e["captions"][i])
        return ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    if task == "captioning":
        return ds.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(e["captions"]).map(
            lambda c: text(e, c)))
    return ds.map(lambda e: text(e, e["captions"][0]))


def _sample_rate(model):
    rate = model_sample_rate(model)
    if rate is None:
        raise ValueError(f"model {model.name!r} has an audio input but not one MFCC sample "
                         "rate; cannot tell the rate to augment at")
    return rate


def _vocabulary(model, name):
    """The tokens of the Vocabulary layer `model` carries for input `name`; fails without one."""
    tokens = model_vocabulary(model, name)
    if tokens is None:
        raise ValueError(f"model {model.name!r} carries no vocabulary for input {name!r} "
                         f"(a Vocabulary layer named '{name}_vocabulary')")
    return tokens


def _per_epoch_text(spec, keys, name):
    """Whether input `name` is tokenized per batch after the cache: captions (drawn anew each
    epoch, or shifted for teacher forcing)."""
    return name in keys and (spec.task == "captioning" or keys[name] == "captions")


def _encode_fn(model, spec, keys, shapes, labels):
    """Per batch, before the cache: questions and texts (not captions) to token ids with the
    vocabulary the model carries, labels to class ids. None when there is nothing to encode."""
    tokenizers = {}
    for name in keys:
        if name in ("text", "question") and not _per_epoch_text(spec, keys, name):
            tokenizers[name] = vectorizer(_vocabulary(model, name),
                                          sequence_length=shapes[name][0])
    if not tokenizers and labels is None:
        return None
    label_lookup = (keras.layers.StringLookup(vocabulary=labels, num_oov_indices=1)
                    if labels is not None else None)
    label_error = (f"labels not among the classes of model {model.name!r}: {labels}; build it with "
                   "labels adapted on this data (mmzoo.data.adapt). Unknown labels:")

    def fn(batch):
        out = dict(batch)
        for name, tokenizer in tokenizers.items():
            out[name] = tf.cast(tokenizer(batch[name]), tf.int32)
        if label_lookup is not None:
            ids = tf.cast(label_lookup(batch["label"]), tf.int32) - 1  # unknown -> -1
            unknown = tf.boolean_mask(batch["label"], ids < 0)
            check = tf.debugging.Assert(tf.size(unknown) == 0, [label_error, unknown],
                                        summarize=8)
            with tf.control_dependencies([check]):
                out["label"] = tf.identity(ids)
        return out

    return fn


def _batch_fn(model, spec, keys, shapes):
    """Per batch, after the cache: captions (drawn anew each epoch) to ids, shifted for
    teacher forcing when captioning; images to float32; the targets."""
    tokenizers = {}
    if _per_epoch_text(spec, keys, "text"):
        tokens = _vocabulary(model, "text")
        tokenizers["text"] = (vectorizer(tokens, ragged=True) if spec.task == "captioning" else
                              vectorizer(tokens, sequence_length=shapes["text"][0]), tokens)

    def fn(batch):
        inputs = {name: batch[name] for name in keys}
        targets = batch.get("label")
        for name, (tokenizer, tokens) in tokenizers.items():
            ids = tokenizer(batch[name])
            if spec.task == "captioning":
                inputs[name], targets = _teacher_forcing(ids, tokens, shapes[name][0])
            else:
                inputs[name] = tf.cast(ids, tf.int32)
        if "image" in inputs:
            inputs["image"] = tf.cast(inputs["image"], tf.float32)
        if spec.task == "retrieval":
            targets = tf.zeros(tf.shape(inputs["image"])[:1], tf.int32)  # unused: in-batch pairs
        return inputs, targets

    return fn


def _teacher_forcing(ragged_ids, tokens, length):
    """Decoder input `[start] w1..wn` and target `w1..wn [end]`, each padded or cut to `length`.

    The input holds no `[end]`, so its padding mask covers exactly the target tokens.
    """
    start_id, end_id = tokens.index(START) + 2, tokens.index(END) + 2
    n = ragged_ids.nrows()
    start = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(start_id, ragged_ids.dtype)))
    end = tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(end_id, ragged_ids.dtype)))
    full = tf.concat([start, ragged_ids, end], axis=1)
    full = tf.cast(full.to_tensor(default_value=0, shape=[None, length + 1]), tf.int32)
    decoder_input = tf.where(full[:, :-1] == end_id, 0, full[:, :-1])
    return decoder_input, full[:, 1:]
