import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Indexes of read-only data folders (mmzoo.data.index) go to a cache of the test session's own.
os.environ.setdefault("MMZOO_CACHE_DIR", tempfile.mkdtemp(prefix="mmzoo-test-cache-"))

import keras  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("MMZOO_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def data_dir():
    if not os.path.isdir(DATA_DIR):
        pytest.skip(f"shared data not found at {DATA_DIR}; set MMZOO_DATA_DIR")
    return DATA_DIR


def tree(path):
    """Every file under `path` with its bytes: what must not change."""
    out = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def run_mmzoo(*args):
    """The `mmzoo` command run in this process (its `main`: the same code, without a new
    TensorFlow start-up), as a `subprocess.CompletedProcess` with what it printed."""
    import contextlib
    import io
    import subprocess

    from mmzoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["mmzoo", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


def news_rows(data_dir, folder, rows):
    """A CSV of the first `rows` AG News rows (and the header) in `folder`: its path."""
    import csv

    path = folder / "news.csv"
    with open(os.path.join(data_dir, "ag_news", "news.csv"), newline="") as f:
        kept = list(csv.reader(f))[:rows + 1]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    return path


@pytest.fixture(scope="session")
def tiny_shapes(tiny_easy_vqa, tmp_path_factory):
    """The tiny easy-VQA folder's images in one folder per shape (`images:DIR`), each image's
    shape told by its questions."""
    from mmzoo.data import easy_vqa

    root = tmp_path_factory.mktemp("shapes")
    for split in ("train", "test"):
        with open(os.path.join(tiny_easy_vqa, split, "questions.json")) as f:
            captions, _ = easy_vqa.captions_by_image(*zip(*json.load(f)))
        for image, caption in captions.items():
            folder = root / split / caption.split()[-1]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(tiny_easy_vqa, split, "images", f"{image}.png"), folder)
    return str(root)


@pytest.fixture(scope="session")
def tiny_easy_vqa(tmp_path_factory):
    """A small folder in the easy-VQA generator's layout, made from the package's real files."""
    from mmzoo.data import easy_vqa

    root = tmp_path_factory.mktemp("easy_vqa_tiny")
    src = easy_vqa.package_dir()
    for split, n_images in (("train", 60), ("test", 20)):
        with open(os.path.join(src, split, "questions.json")) as f:
            rows = [r for r in json.load(f) if r[2] < n_images]
        os.makedirs(root / split / "images")
        with open(root / split / "questions.json", "w") as f:
            json.dump(rows, f)
        for i in range(n_images):
            shutil.copy(os.path.join(src, split, "images", f"{i}.png"),
                        root / split / "images" / f"{i}.png")
    shutil.copy(os.path.join(src, "answers.txt"), root / "answers.txt")
    return str(root)
