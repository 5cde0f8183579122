"""Any TFDS dataset already prepared on disk (never downloaded)."""

from __future__ import annotations

import os

import tensorflow as tf

from mmzoo.data.base import Source, register_source
from mmzoo.data.preprocessor import decode_image
from mmzoo.errors import InvalidValue, MissingFile

# mmzoo example key -> TFDS feature names tried, in order, when no option names one.
DEFAULT_KEYS = {
    "image": ("image",),
    "audio": ("audio", "speech"),
    "text": ("text", "sentence", "review", "content", "document", "description", "caption"),
    "question": ("question",),
    "captions": ("captions",),
    "label": ("label", "answer", "labels"),
    "transcript": ("transcript",),
    "speaker": ("speaker",),
    "sample_rate": ("sample_rate",),
}


def default_data_dir():
    """Where TFDS keeps prepared data: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`."""
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"),
                                                        "tensorflow_datasets"))


@register_source
class TFDS(Source):
    """`tfds:NAME` (`NAME[/CONFIG][:VERSION]`): a TFDS dataset prepared under `data_dir`; or
    `tfds:DIR`: the folder of one prepared dataset (one holding `dataset_info.json`, as
    `mmzoo data SOURCE --prepare DIR` writes), read with `tfds.builder_from_directory`.

    Nothing is downloaded: a dataset that is not prepared fails saying where it looked and how
    to prepare it. Features are renamed to mmzoo's example keys (`image`, `audio`, `text`,
    `question`, `captions`, `label`): a feature with the same name, or the first of a few
    common names (`sentence`, `review`, ... for text), or the one an option names
    (`tfds:imdb_reviews?text=text&label=label`). Class labels become their names (strings), as
    the dataset's `ClassLabel` feature spells them; grayscale images become RGB; integer audio
    is scaled to [-1, 1] and stays at the dataset's own sample rate, given in each example's
    `sample_rate` when the `Audio` feature declares one. Images are decoded as the exported
    models decode image bytes (`mmzoo.data.preprocessor.decode_image`), not by TFDS, so
    training and serving read a file the same way.

    Splits: `train`, `validation` and `test` where the dataset has them; any TFDS split
    string (`train[:90%]`) also works. TFDS checked its files when it prepared them.

    Options:
        data_dir: str. Where the prepared data lives (default `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        image, audio, text, question, captions, label: str. The TFDS feature for that key.
    """

    kind = "tfds"
    tasks = ("classification", "vqa", "captioning", "retrieval", "transcription")
    options = {"data_dir": None, **{k: None for k in DEFAULT_KEYS}}
    description = "tfds:NAME: a TFDS dataset prepared on disk (data_dir=...)"

    def __init__(self, path, **kwargs):
        import tensorflow_datasets as tfds

        super().__init__(path, **kwargs)
        if not path:
            raise InvalidValue(f"{self.name}: name the dataset, e.g. tfds:mnist")
        data_dir = self.opts["data_dir"] or default_data_dir()
        if os.path.isfile(os.path.join(path, "dataset_info.json")):
            self.builder = tfds.builder_from_directory(path)
            self._map_keys(path)
            return
        how = (f"mmzoo never downloads. Prepare it on a machine with internet access "
               f"(`tfds build {path.split(':')[0]} --data_dir DIR`, or in Python "
               f"`tfds.builder({path!r}, data_dir=DIR).download_and_prepare()`), copy DIR "
               "here, and pass data_dir=DIR (tfds:NAME?data_dir=DIR) or set TFDS_DATA_DIR.")
        try:
            builder = tfds.builder(path, data_dir=data_dir)
            prepared = builder.is_prepared() if hasattr(builder, "is_prepared") else bool(
                builder.info.splits)
        except Exception as e:  # unknown name and nothing prepared under data_dir
            raise MissingFile(
                f"{self.name}: TFDS dataset {path!r} is not prepared under {data_dir!r} "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). {how}") from e
        if not prepared:
            raise MissingFile(
                f"{self.name}: TFDS dataset {path!r} is not prepared: looked in "
                f"{builder.data_dir!r}. {how}")
        self.builder = builder
        self._map_keys(path)

    def _map_keys(self, path):
        features = self.builder.info.features
        self.keys = {}
        for key, names in DEFAULT_KEYS.items():
            chosen = self.opts[key]
            if chosen is not None and chosen not in features:
                raise InvalidValue(f"{self.name}: option {key}={chosen!r} names no feature; the "
                                   f"dataset has {sorted(features)}")
            found = chosen or next((n for n in names if n in features), None)
            if found:
                self.keys[key] = found
        if not self.keys:
            raise InvalidValue(f"{self.name}: none of its features {sorted(features)} map to "
                               f"mmzoo keys {sorted(DEFAULT_KEYS)}; name them with options, e.g. "
                               f"tfds:{path}?text=FEATURE&label=FEATURE")

    def watched(self):
        return (), (self.builder.data_dir,)

    def split_names(self):
        return tuple(s for s in ("train", "validation", "test") if s in self.builder.info.splits)

    def check_split(self, split):
        if split is None or split in self.split_names() or "[" in split or "+" in split:
            return
        super().check_split(split)

    def dataset(self, split=None, task=None, *, decode=True):
        self.check_split(split)
        self.check_task(task)
        if split is None:
            split = "+".join(self.builder.info.splits)
        import tensorflow_datasets as tfds

        features = self.builder.info.features
        # images stay encoded here; decoded below as the exported models decode them
        decoders = {name: tfds.decode.SkipDecoding() for key, name in self.keys.items()
                    if key == "image" and isinstance(features[name], tfds.features.Image)}
        read = getattr(self, "worker", None)
        if read is not None and split in self.builder.info.splits:
            ds = self._worker_share(split, decoders, *read)
        else:
            ds = self.builder.as_dataset(split=split, shuffle_files=False,
                                         decoders=decoders or None)
        converters = {key: self._converter(key, features[name], decoders)
                      for key, name in self.keys.items()
                      if decode or key not in ("image", "audio")}
        converters.update({key: (lambda x: x) for key in self.keys if key not in converters})

        rate = getattr(features[self.keys["audio"]], "sample_rate", None) \
            if "audio" in self.keys else None

        def convert(example):
            out = {key: converters[key](example[name]) for key, name in self.keys.items()}
            if rate and "sample_rate" not in out:  # the rate the pipeline resamples from
                out["sample_rate"] = tf.constant(int(rate), tf.int32)
            return out

        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def read_by_worker(self, workers, index):
        """Read each split sharded by file from now on: worker `index` of `workers` reads only
        its shards (`tfds.ReadConfig(input_context=...)`: shards index, index + workers, ...)
        and every worker the same number of examples, the fewest any worker has, so all take
        the same steps (a multi-worker run's collectives need it); the few examples past that
        count at the end of the larger shares are left out. Fails when a split to read has
        fewer shards than workers."""
        self.worker = (int(workers), int(index))

    def shards(self, split):
        """The shards of `split` of the prepared data."""
        return self.builder.info.splits[split].num_shards

    def _worker_share(self, split, decoders, workers, index):
        import tensorflow_datasets as tfds

        info = self.builder.info.splits[split]
        lengths = list(info.shard_lengths)
        if len(lengths) < workers:
            raise InvalidValue(f"{self.name}: split {split!r} has {len(lengths)} shard(s) for "
                               f"{workers} workers; prepare it again with --shards {workers} "
                               "or more")
        fewest = min(sum(lengths[w::workers]) for w in range(workers))
        context = tf.distribute.InputContext(num_input_pipelines=workers,
                                             input_pipeline_id=index)
        ds = self.builder.as_dataset(split=split, shuffle_files=False,
                                     decoders=decoders or None,
                                     read_config=tfds.ReadConfig(input_context=context))
        return ds.take(fewest)

    def _converter(self, key, feature, decoders):
        import tensorflow_datasets as tfds


        if isinstance(feature, tfds.features.ClassLabel):
            names = tf.constant(feature.names)
            return lambda x: tf.gather(names, x)
        if key == "image" and self.keys["image"] in decoders:
            return decode_image
        if key == "image":
            def image(x):
                x = tf.cast(x, tf.uint8)
                if x.shape[-1] == 1:
                    x = tf.image.grayscale_to_rgb(x)
                return x
            return image
        if key == "audio":
            def audio(x):
                if x.dtype.is_integer:
                    scale = float(2 ** (x.dtype.size * 8 - 1))
                    return tf.cast(x, tf.float32) / scale
                return tf.cast(x, tf.float32)
            return audio
        return lambda x: x
