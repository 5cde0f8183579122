"""The package's shape, read from its source (`bench/architecture.py`): what is specific to a task
lives in `mmzoo/tasks/`, no module imports itself back, and the modules that must start without
TensorFlow import none."""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import architecture  # noqa: E402

# Modules that must import without TensorFlow: the command before it parses its arguments, and
# `mmzoo predict` of an ONNX or LiteRT export. They alone may import mmzoo's TensorFlow-bound
# modules inside a function, to defer them.
LIGHT = ("mmzoo", "mmzoo._startup", "mmzoo._version", "mmzoo.cli", "mmzoo.errors",
         "mmzoo.plugins", "mmzoo.run", "mmzoo.predict", "mmzoo.runtime", "mmzoo.checks",
         "mmzoo.__main__")
# What a light module may import at its top: the standard library, numpy, and light modules
LIGHT_THIRD_PARTY = ("numpy",)


def test_no_task_name_is_compared_outside_the_tasks():
    """`task == "captioning"`, `task in ("classification", "vqa")` or a dict keyed by task names
    only in `mmzoo/tasks/`, the registry and the data sources (which know which examples each
    task reads); the drivers ask the model's Task."""
    found = [b for b in architecture.task_branches()
             if not b[0].startswith(architecture.TASK_ROOMS)
             or b[0].startswith(architecture.NOT_SOURCES)]
    assert found == [], found


def test_no_import_loop():
    """No module imports itself back, through any chain, counting the imports inside functions
    and the package `__init__`s an import runs."""
    edges, _ = architecture.imports()
    assert architecture.loops(edges) == []


def test_imports_inside_functions_only_defer_heavy_dependencies():
    edges, outside = architecture.imports()
    mine = sorted(f"{m} -> {t} (line {line})" for m, targets in edges.items()
                  for t, line, inside in targets if inside and m not in LIGHT)
    assert mine == [], "import these at the top of the module: " + "; ".join(mine)
    others = sorted(f"{m}:{line} {top}" for m, found in outside.items() for top, line in found
                    if top not in architecture.DEFERRED)
    assert others == [], others


def test_the_light_modules_import_no_tensorflow_at_their_top():
    known = architecture.modules()
    stdlib = sys.stdlib_module_names
    for module in LIGHT:
        with open(known[module]) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (top in stdlib or top in LIGHT_THIRD_PARTY or name in LIGHT
                        or name.rsplit(".", 1)[0] in LIGHT), f"{module} imports {name}"


def test_functions_stay_short():
    """A function of more than 90 lines is split where the split names a step."""
    long = [f"{n} {name}" for n, name in architecture.functions() if n > 90]
    assert long == [], long
