"""Any TFDS dataset already prepared on disk (never downloaded)."""

from __future__ import annotations

import os

import tensorflow as tf

from mmzoo.data.base import Source, register_source
from mmzoo.errors import InvalidValue, MissingFile

# mmzoo example key -> TFDS feature names tried, in order, when no option names one.
DEFAULT_KEYS = {
    "image": ("image",),
    "audio": ("audio", "speech"),
    "text": ("text", "sentence", "review", "content", "document", "description", "caption"),
    "question": ("question",),
    "captions": ("captions",),
    "label": ("label", "answer", "labels"),
}


def default_data_dir():
    """Where TFDS keeps prepared data: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`."""
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"),
                                                        "tensorflow_datasets"))


@register_source
class TFDS(Source):
    """`tfds:NAME` (`NAME[/CONFIG][:VERSION]`): a TFDS dataset prepared under `data_dir`.

    Nothing is downloaded: a dataset that is not prepared fails saying where it looked and how
    to prepare it. Features are renamed to mmzoo's example keys (`image`, `audio`, `text`,
    `question`, `captions`, `label`): a feature with the same name, or the first of a few
    common names (`sentence`, `review`, ... for text), or the one an option names
    (`tfds:imdb_reviews?text=text&label=label`). Class labels become their names (strings), as
    the dataset's `ClassLabel` feature spells them; grayscale images become RGB; integer audio
    is scaled to [-1, 1] and stays at the dataset's own sample rate, given in each example's
    `sample_rate` when the `Audio` feature declares one.

    Splits: `train`, `validation` and `test` where the dataset has them; any TFDS split
    string (`train[:90%]`) also works. TFDS checked its files when it prepared them.

    Options:
        data_dir: str. Where the prepared data lives (default `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        image, audio, text, question, captions, label: str. The TFDS feature for that key.
    """

    kind = "tfds"
    tasks = ("classification", "vqa", "captioning", "retrieval")
    options = {"data_dir": None, **{k: None for k in DEFAULT_KEYS}}
    description = "tfds:NAME: a TFDS dataset prepared on disk (data_dir=...)"

    def __init__(self, path, **kwargs):
        import tensorflow_datasets as tfds

        super().__init__(path, **kwargs)
        if not path:
            raise InvalidValue(f"{self.name}: name the dataset, e.g. tfds:mnist")
        data_dir = self.opts["data_dir"] or default_data_dir()
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
        features = builder.info.features
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
        features = self.builder.info.features
        decoders = None
        if not decode:  # leave images encoded: only text and labels are wanted
            import tensorflow_datasets as tfds
            decoders = {name: tfds.decode.SkipDecoding() for key, name in self.keys.items()
                        if key == "image" and isinstance(features[name], tfds.features.Image)}
        ds = self.builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        converters = {key: self._converter(key, features[name])
                      for key, name in self.keys.items() if decode or key != "image"}
        converters.update({key: (lambda x: x) for key in self.keys if key not in converters})

        rate = getattr(features[self.keys["audio"]], "sample_rate", None) \
            if "audio" in self.keys else None

        def convert(example):
            out = {key: converters[key](example[name]) for key, name in self.keys.items()}
            if rate:  # the rate the pipeline resamples from when the model's differs
                out["sample_rate"] = tf.constant(int(rate), tf.int32)
            return out

        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _converter(self, key, feature):
        import tensorflow_datasets as tfds

        if isinstance(feature, tfds.features.ClassLabel):
            names = tf.constant(feature.names)
            return lambda x: tf.gather(names, x)
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
