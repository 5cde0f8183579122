"""Spoken and written digits with a question: a real tri-modal (text, image, audio) task.

A documented pairing of two real data sets: each FSDD recording (a spoken digit) is paired with
a handwritten digit from scikit-learn's bundled UCI digits (8x8 grey images) and one of three
question types, so that each answer needs a different modality:

- "what digit is spoken?" -> the recording's digit (audio);
- "what digit is written?" -> the image's digit (image);
- "is the spoken digit the written one?" -> `yes` / `no` (both; half of these pairs match).

Question type, image digit and image are drawn with a fixed seed per split, so the pairing is
deterministic. Splits: FSDD's official one for the audio (index 0-4 is test); the images'
test pool is every 5th image of the UCI set, the training pool the rest, so no recording and
no image is shared between train and test.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mmzoo.data.base import Source, register_source
from mmzoo.data.fsdd import FSDD, audio_dataset, with_rate

QUESTIONS = (
    ("what digit is spoken?", "which number does the speaker say?"),
    ("what digit is written?", "which number is in the picture?"),
    ("is the spoken digit the written one?", "does the speaker say the number in the picture?"),
)
LABELS = tuple(str(d) for d in range(10)) + ("no", "yes")
IMAGE_TEST_EVERY = 5


def digit_images():
    """`(images uint8 [n, 8, 8, 3], digits int [n])` of scikit-learn's bundled UCI digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), bunch.target.astype(int)


@register_source
class DigitQA(Source):
    """`digit_qa:FSDD_PATH`: `{"question", "image", "audio", "sample_rate", "label"}` (see the
    module doc)."""

    kind = "digit_qa"
    tasks = ("classification", "vqa")
    modalities = ("audio", "image", "text")
    options = {"sample_rate": 8000, "seed": 0}
    description = "digit_qa:FSDD_PATH: spoken + written digits with a question (tri-modal)"

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        fsdd_options = {"sample_rate": self.opts["sample_rate"]}
        self.fsdd = FSDD(path, name=self.name, on_error=self.on_error, **fsdd_options)
        self.images, self.image_digits = digit_images()

    def watched(self):
        return self.fsdd.watched()

    def audio_rates(self):
        return self.fsdd.audio_rates()

    def split_names(self):
        return self.fsdd.split_names()

    def audio_seconds(self, split="train"):
        return self.fsdd.audio_seconds(split)

    def pairs(self, split):
        """`(audio paths, questions, image indices, labels)` of `split` (None: both)."""
        out = ([], [], [], [])
        for part in (("train", "test") if split is None else (split,)):
            rows = self.fsdd.select(self.fsdd.columns, self.fsdd.tags, part)
            rng = np.random.default_rng([self.opts["seed"], part == "test"])
            index = np.arange(len(self.image_digits))
            pool = index[(index % IMAGE_TEST_EVERY == 0) == (part == "test")]
            by_digit = {d: pool[self.image_digits[pool] == d] for d in range(10)}
            for path, spoken in zip(rows["audio"], rows["label"]):
                kind = int(rng.integers(3))
                if kind != 2:
                    written = int(rng.integers(10))
                elif rng.random() < 0.5:
                    written = spoken
                else:
                    written = (spoken + 1 + int(rng.integers(9))) % 10
                image = int(rng.choice(by_digit[written]))
                label = (str(spoken), str(written),
                         "yes" if spoken == written else "no")[kind]
                out[0].append(path)
                out[1].append(QUESTIONS[kind][int(rng.integers(2))])
                out[2].append(image)
                out[3].append(label)
        return out

    def dataset(self, split=None, task=None, *, decode=True):
        self.check_split(split)
        self.check_task(task)
        paths, questions, images, labels = self.pairs(split)
        audio = (audio_dataset(paths, self.opts["sample_rate"]) if decode
                 else tf.data.Dataset.from_tensor_slices(paths))
        rest = tf.data.Dataset.from_tensor_slices(
            {"question": questions, "image": self.images[images], "label": labels})
        return with_rate(tf.data.Dataset.zip(audio, rest).map(
            lambda wave, r: {"audio": wave, **r}), self.opts["sample_rate"])
