"""The easy-VQA data set (the `easy-vqa` PyPI package, or a folder the easy-VQA generator wrote).

Layout of a folder: `{split}/images/{id}.png`, `{split}/questions.json` (a list of
`[question, answer, image_id]`), and `answers.txt` (one answer a line), with splits `train` and
`test`; a folder holding `images/` and `questions.json` directly is read as one split.
"""

from __future__ import annotations

import json
import os
import re

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
START, END = "[start]", "[end]"
CAPTION_VOCABULARY = (START, END, "a") + COLORS + SHAPES

_WORD = re.compile(r"[a-z]+")


def package_dir():
    """The data folder that ships inside the `easy-vqa` package."""
    try:
        import easy_vqa
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError(
            "the default data needs the easy-vqa package: pip install easy-vqa") from e
    return os.path.join(os.path.dirname(easy_vqa.__file__), "data")


def read_split(root, split):
    """`(questions, answers, image_ids, image_paths_by_id)` of one split of an easy-VQA folder."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder) and os.path.isfile(os.path.join(root, "questions.json")):
        folder = root
    qfile = os.path.join(folder, "questions.json")
    if not os.path.isfile(qfile):
        raise FileNotFoundError(
            f"easy-VQA folder {root!r} has no {split}/questions.json; expected the layout the "
            "easy-VQA generator writes: {split}/images/{id}.png and {split}/questions.json")
    with open(qfile) as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{qfile}: not valid JSON ({e})") from e
    questions, answers, ids = [], [], []
    for n, row in enumerate(rows):
        if not (isinstance(row, (list, tuple)) and len(row) == 3):
            raise ValueError(
                f"{qfile}: entry {n} is {row!r}, expected [question, answer, image_id]")
        q, a, i = row
        if not str(q).strip() or not str(a).strip():
            raise ValueError(f"{qfile}: entry {n} has an empty question or answer: {row!r}")
        questions.append(str(q))
        answers.append(str(a))
        ids.append(int(i))
    image_dir = os.path.join(folder, "images")
    paths = {i: os.path.join(image_dir, f"{i}.png") for i in sorted(set(ids))}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"easy-VQA folder {root!r}: {len(missing)} image(s) named by {qfile} are missing, "
            f"e.g. {missing[:3]}")
    return questions, answers, ids, paths


def read_answers(root):
    """The answer list of an easy-VQA folder (`answers.txt`), or None when it has none."""
    path = os.path.join(root, "answers.txt")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return tuple(line.strip() for line in f if line.strip())


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
    """A caption per image, `"a {color} {shape}"`, from its answered questions.

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
            captions[i] = f"a {color} {shape}"
        else:
            missing = [w for w, v in (("shape", shape), ("color", color)) if not v]
            unknown[i] = f"its questions do not tell its {' or '.join(missing)}"
    return captions, unknown
