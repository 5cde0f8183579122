"""The README and its guides (`docs/`) cannot drift: their model and task tables come from the
registry and their figures from the JSON files in bench/results, each of which records the
commit and date it was measured at; their snippets run and their commands parse."""

import glob
import json
import os
import re
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import report  # noqa: E402


def documents():
    """The README and the guides, in reading order: their text."""
    return list(report.documents().values())


def test_every_generated_part_of_the_readme_and_the_guides_is_current():
    names = [m["name"] for text in documents() for m in report.BLOCK.finditer(text)]
    assert sorted(names) == sorted(report.PARTS), names   # each part, once, in one document
    for path, text in report.documents().items():
        _, stale = report.render(text)
        assert stale == [], f"{path}: parts {stale} are stale: run python bench/report.py --write"


def test_every_guide_is_linked_from_the_readme_and_exists():
    with open(report.README) as f:
        text = f.read()
    for name in report.GUIDES:
        assert f"(docs/{name}.md)" in text, name
    found = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    assert found == sorted(report.GUIDES)


def test_the_model_table_is_the_registry():
    """Parameters and inputs of the built default models (caption_lstm's count once drifted)."""
    import mmzoo

    table = report.models()
    model = mmzoo.build("caption_lstm")
    row = next(line for line in table.splitlines() if line.startswith("| `caption_lstm`"))
    assert f"| {model.count_params():,} |" in row and "`image` (64, 64, 3), `text` (8,)" in row
    assert len(table.splitlines()) == 2 + len(mmzoo.list_models())


def test_every_bench_result_records_its_commit_and_date():
    paths = sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.json")))
    assert paths
    for path in paths:
        with open(path) as f:
            measured = json.load(f).get("measured", {})
        name = os.path.basename(path)
        assert re.fullmatch(r"[0-9a-f]{40}", measured.get("commit", "")), name
        assert measured.get("dirty") is False, f"{name} was measured on uncommitted code"
        assert re.match(r"\d{4}-\d\d-\d\dT", measured.get("date", "")), name


def test_every_bench_result_is_in_the_readme_or_a_guide():
    text = "\n".join(documents())
    rendered = {name: fn() for name, fn in report.PARTS.items()}
    for path in glob.glob(os.path.join(ROOT, "bench", "results", "*.json")):
        name = os.path.basename(path)[:-5]
        if name.startswith("quality_"):
            assert f"| `{name[len('quality_'):]}` |" in rendered["quality"], name
        elif name.startswith("portable_"):
            assert f"| `{name[len('portable_'):]}` |" in rendered["portable"], name
        else:
            assert f"python bench/{name}.py" in text, name


def test_every_python_name_the_readme_gives_is_there():
    """`mmzoo.a.b` in the README's code resolves from `import mmzoo` as written (it said
    `mmzoo.evaluate.bleu_scores`, but `mmzoo.evaluate` is the function), and every
    `from mmzoo.x import a, b` it shows imports."""
    import importlib

    import mmzoo

    text = "\n".join(documents())
    dotted = sorted(set(re.findall(r"`[^`]*?\b(mmzoo(?:\.[A-Za-z_]\w*)+)", text)))
    missing = []
    for name in dotted:
        obj = mmzoo
        for part in name.split(".")[1:]:
            if not hasattr(obj, part):
                missing.append(name)
                break
            obj = getattr(obj, part)
    assert len(dotted) > 20 and missing == [], missing
    imports = re.findall(r"from (mmzoo[\w.]*) import ([\w, ]+)", text)
    assert imports
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(loaded, name.strip()), f"from {module} import {name.strip()}"


def _blocks(language):
    """The fenced code blocks of `language` of the README, then of each guide, in order."""
    return [block for text in documents()
            for block in re.findall(rf"```{language}\n(.*?)```", text, re.S)]


def test_every_python_snippet_of_the_readme_and_the_guides_runs_as_written(data_dir, tmp_path):
    """As a reader runs them: the README's, then each guide's in reading order, one after
    another in one Python, from a folder beside `../shared/data` (what the snippets name); they
    write `out/` and `runs/` there."""
    import subprocess

    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    os.symlink(os.path.abspath(data_dir), tmp_path / "shared" / "data")
    blocks = _blocks("python")
    assert len(blocks) >= 4
    out = subprocess.run([sys.executable, "-c", "\n\n".join(blocks)], cwd=work,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (work / "out" / "vqa_cnn_lstm" / "saved_model.pb").is_file()
    assert (work / "runs" / "speech_ctc" / "model.keras").is_file()


def test_every_mmzoo_command_of_the_readme_and_the_guides_parses():
    import shlex

    from mmzoo.cli import _parser

    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if words[:1] == ["mmzoo"] and words[1:2] != ["--help"]:
                    commands.append(words[1:])
    assert len(commands) >= 4
    for words in commands:
        try:
            _parser().parse_args(words)
        except SystemExit:
            raise AssertionError(f"README: `mmzoo {' '.join(words)}` does not parse") from None


def test_every_notebook_says_how_long_it_takes():
    """Its first cell ends with the time bench/notebooks.py measured at its default settings."""
    assert report.read_result("notebooks"), "run python bench/notebooks.py"
    assert report.notebook_first_cells() == [], "run python bench/report.py --write"
    import glob

    measured = report.read_result("notebooks")["notebooks"]
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "notebooks",
                                                                        "*.ipynb")))
    assert sorted(measured) == names
