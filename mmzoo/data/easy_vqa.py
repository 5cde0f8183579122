"""The easy-VQA data set (the `easy-vqa` PyPI package, or a folder the easy-VQA generator wrote).

Layout of a folder, as the easy-VQA generator writes it: `{split}/images/{id}.png`,
`{split}/questions.json` (a list of `[question, answer, image_id]`) for the splits `train` and
`test`, and `answers.txt` (one answer a line). A folder holding `images/` and `questions.json`
directly (a freshly generated evaluation set) is read as the `test` split.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import tensorflow as tf

from mmzoo.layers.vocab import END, START
from mmzoo.data.base import Source, decode_image, register_source
from mmzoo.checks import Problems, image_problem
from mmzoo.errors import DataWarning, InvalidValue, MissingFile

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")

# The 13 answers in the package's answers.txt order (checked by tests against the package).
ANSWERS = ("circle", "green", "red", "gray", "yes", "teal", "black", "rectangle", "yellow",
           "triangle", "brown", "blue", "no")
# Every word of the training questions, most frequent first (checked by tests against the package).
QUESTION_VOCABULARY = (
    "the", "shape", "is", "what", "image", "a", "there", "color", "not", "does", "contain",
    "present", "in", "of", "no", "rectangle", "circle", "triangle", "brown", "yellow", "gray",
    "teal", "red", "blue", "green", "black")
# Captions read "there is a {color} {shape}": five words, so that BLEU-4 has 4-grams to count.
CAPTION_TEMPLATE = "there is a {color} {shape}"
CAPTION_WORDS = ("there", "is", "a") + COLORS + SHAPES
CAPTION_VOCABULARY = (START, END) + CAPTION_WORDS

_WORD = re.compile(r"[a-z]+")


def package_dir():
    """The data folder that ships inside the `easy-vqa` package."""
    try:
        import easy_vqa
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "the default data needs the easy-vqa package: pip install easy-vqa") from e
    return os.path.join(os.path.dirname(easy_vqa.__file__), "data")


def split_folder(root, split):
    """The folder holding `split` of an easy-VQA folder (`root/split`, or `root` itself when it
    holds `questions.json` directly), or None."""
    folder = os.path.join(root, split)
    if os.path.isfile(os.path.join(folder, "questions.json")):
        return folder
    return None


def read_split(folder, problems, answers=None):
    """`(questions, answers, image_paths, n_entries)` of one easy-VQA split folder: the good
    questions, one entry each, and how many entries the file has.

    Malformed entries, answers outside `answers` (when given) and bad image files are added to
    `problems` (`mmzoo.checks.Problems`) and left out.
    """
    qfile = os.path.join(folder, "questions.json")
    with open(qfile) as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as e:
            raise InvalidValue(f"{qfile}: not valid JSON ({e})") from e
    if not isinstance(rows, list):
        raise InvalidValue(f"{qfile}: expected a list of [question, answer, image_id] entries")
    questions, labels, paths, bad_images = [], [], [], {}
    for n, row in enumerate(rows):
        where = f"{qfile} entry {n}"
        if not (isinstance(row, (list, tuple)) and len(row) == 3
                and isinstance(row[2], int) and not isinstance(row[2], bool)):
            problems.add(where, f"{row!r} is not [question, answer, image_id]")
            continue
        q, a, i = row
        if not str(q).strip() or not str(a).strip():
            problems.add(where, f"empty question or answer in {row!r}")
            continue
        if answers is not None and str(a) not in answers:
            problems.add(where, f"answer {a!r} is not in answers.txt ({len(answers)} answers)")
            continue
        path = os.path.join(folder, "images", f"{i}.png")
        if path not in bad_images:
            bad_images[path] = image_problem(path)
            if bad_images[path]:
                problems.add(path, bad_images[path])
        if bad_images[path]:
            continue
        questions.append(str(q))
        labels.append(str(a))
        paths.append(path)
    return questions, labels, paths, len(rows)


def read_answers(root):
    """The answer list of an easy-VQA folder (`answers.txt`), or None when it has none."""
    path = os.path.join(root, "answers.txt")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return tuple(line.strip() for line in f if line.strip())


def image_id(path):
    """The integer id of an easy-VQA image path (`.../images/{id}.png`)."""
    return int(os.path.splitext(os.path.basename(path))[0])


def _mentions(question, vocabulary):
    words = _WORD.findall(question.lower())
    return [w for w in words if w in vocabulary]


def image_facts(question, answer):
    """What one answered question says about its image: `(present, absent)` sets of words.

    `what color is the circle?` / `red` gives `({"circle", "red"}, set())`;
    `is there not a blue shape?` / `no` gives `({"blue"}, set())`;
    `is there a triangle?` / `no` gives `(set(), {"triangle"})`.
    """
    q, a = question.lower(), answer.lower()
    mentioned = set(_mentions(q, SHAPES + COLORS))
    if a in SHAPES or a in COLORS:
        return mentioned | {a}, set()
    if a in ("yes", "no"):
        negated = bool(re.search(r"\b(not|no)\b", q))
        if (a == "yes") != negated:
            return mentioned, set()
        return set(), mentioned
    return set(), set()


def _one(present, absent, choices):
    found = [w for w in choices if w in present]
    if len(found) == 1:
        return found[0]
    left = [w for w in choices if w not in absent]
    return left[0] if not found and len(left) == 1 else None


def captions_by_image(questions, answers, image_ids):
    """A caption per image, `"there is a {color} {shape}"`, from its answered questions.

    A shape or colour is known when a question names it as present, or when "no" answers rule
    out all the others. Returns a dict image id -> caption, and a dict image id -> reason for the
    images whose questions do not tell both (never silently dropped: the caller reports
    them).
    """
    present, absent = {}, {}
    for q, a, i in zip(questions, answers, image_ids):
        yes, no = image_facts(q, a)
        present.setdefault(i, set()).update(yes)
        absent.setdefault(i, set()).update(no)
    captions, unknown = {}, {}
    for i in sorted(present):
        shape = _one(present[i], absent[i], SHAPES)
        color = _one(present[i], absent[i], COLORS)
        if shape and color:
            captions[i] = CAPTION_TEMPLATE.format(color=color, shape=shape)
        else:
            missing = [w for w, v in (("shape", shape), ("color", color)) if not v]
            unknown[i] = f"its questions do not tell its {' or '.join(missing)}"
    return captions, unknown


VALIDATION_EVERY = 10  # validation = the training images whose id % 10 == 9


def questions_with_images(rows):
    """Question rows (`{"question", "label", "image": path}` lists, in order) -> a dataset of
    them with each image decoded ONCE for all its questions: the image files of each run of
    rows with the same image are decoded in parallel, then that run's questions share the
    decoded tensor (easy-VQA has about ten questions per image, listed image by image)."""
    paths = rows["image"]
    starts = [i for i in range(len(paths)) if i == 0 or paths[i] != paths[i - 1]]
    ends = [*starts[1:], len(paths)]
    columns = {k: tf.constant(v) for k, v in rows.items() if k != "image"}
    runs = tf.data.Dataset.from_tensor_slices(
        {"path": [paths[i] for i in starts], "start": starts, "end": ends})
    runs = runs.map(lambda r: {**r, "image": decode_image(r["path"])},
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def questions(run):
        def question(i):
            return {**{k: tf.gather(v, i) for k, v in columns.items()}, "image": run["image"]}

        index = tf.data.Dataset.range(tf.cast(run["start"], tf.int64),
                                      tf.cast(run["end"], tf.int64))
        return index.map(question)

    ds = runs.flat_map(questions)
    return ds.apply(tf.data.experimental.assert_cardinality(len(paths)))


@register_source
class EasyVQA(Source):
    """`easy_vqa` (the data in the `easy-vqa` package) or `easy_vqa:PATH` (a generated folder).

    Splits: `test` is the official test set; `validation` is the official training images
    whose id ends in 9 (10%, with all their questions); `train` is the other training images.

    Tasks: `vqa` and `classification` give `{"image", "question", "label"}` per question;
    `captioning` and `retrieval` give `{"image", "text"}` per image, the text being a caption
    built from the image's answered questions ("there is a blue circle").
    """

    kind = "easy_vqa"
    tasks = ("vqa", "classification", "captioning", "retrieval")
    modalities = ("image", "text")
    description = "easy_vqa[:PATH]: easy-VQA images and questions (the default data)"

    def __init__(self, path, **kwargs):
        super().__init__(path or package_dir(), **kwargs)
        root = self.path
        if not os.path.isdir(root):
            raise MissingFile(f"{self.name}: no folder at {root!r}")
        answers = read_answers(root)
        problems = Problems(self.name, self.on_error)
        folders = {s: split_folder(root, s) for s in ("train", "test")}
        if not any(folders.values()) and os.path.isfile(os.path.join(root, "questions.json")):
            folders = {"test": root}
        if not any(folders.values()):
            raise MissingFile(
                f"{self.name}: {root!r} has neither train/questions.json nor test/questions.json "
                "nor questions.json; expected the layout the easy-VQA generator writes: "
                "{train,test}/images/{id}.png, {train,test}/questions.json and answers.txt")
        self.folders = [f for f in folders.values() if f is not None]
        self.columns = {"question": [], "label": [], "image": []}
        self.tags = []
        entries = 0
        for part, folder in folders.items():
            if folder is None:
                continue
            q, a, paths, n = read_split(folder, problems, answers)
            entries += n
            for qq, aa, pp in zip(q, a, paths):
                tag = part
                if part == "train" and image_id(pp) % VALIDATION_EVERY == VALIDATION_EVERY - 1:
                    tag = "validation"
                self.columns["question"].append(qq)
                self.columns["label"].append(aa)
                self.columns["image"].append(pp)
                self.tags.append(tag)
        problems.report(f"{entries} questions and their images")
        if not self.tags:
            raise InvalidValue(f"{self.name}: {root!r} holds no questions")

    def watched(self):
        files = [os.path.join(self.path, "answers.txt")]
        files += [os.path.join(f, "questions.json") for f in self.folders]
        return files, [os.path.join(f, "images") for f in self.folders]

    def dataset(self, split=None, task=None, *, decode=True):
        rows, task = self.rows(split, task)
        if task in ("vqa", "classification"):
            if decode:
                return questions_with_images(rows)
            ds = tf.data.Dataset.from_tensor_slices(rows)
        else:
            captions, unknown = captions_by_image(rows["question"], rows["label"], rows["image"])
            if unknown:
                warnings.warn(DataWarning(
                    f"easy-VQA {split or 'all'}: {len(unknown)} of {len(unknown) + len(captions)} "
                    f"images have no caption because their questions do not tell both shape and "
                    f"colour; they are left out of {task}",
                    [f"{p}: {why}" for p, why in unknown.items()]), stacklevel=4)
            order = sorted(captions, key=lambda p: (os.path.dirname(p), image_id(p)))
            ds = tf.data.Dataset.from_tensor_slices({
                "image": order, "text": [captions[p] for p in order]})
        if not decode:
            return ds
        return ds.map(lambda e: {**e, "image": decode_image(e["image"])},
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
