"""The package's shape, read from its source (no import, no TensorFlow): the task branches of
its drivers, its import loops (imports inside functions counted), its longest functions and its
line counts per room (`mmzoo/<folder>` or top-level module).

    python bench/architecture.py                  # the report, as text
    python bench/architecture.py --json           # the same as one JSON object
    python bench/architecture.py --root ../old    # another checkout's, to compare

`tests/test_architecture.py` holds the package to it: no task name compared outside
`mmzoo/tasks/`, the registry's declarations and the data sources; no import loop; imports inside
functions only for the heavy optional dependencies named in `DEFERRED`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_NAMES = ("classification", "vqa", "captioning", "retrieval", "transcription")
# Where a task name may be compared: the tasks themselves, the registry (which declares them)
# and the data sources (which know which examples each task reads).
TASK_ROOMS = ("mmzoo/tasks/", "mmzoo/registry.py", "mmzoo/data/")
NOT_SOURCES = ("mmzoo/data/pipeline.py", "mmzoo/data/adapt.py", "mmzoo/data/preprocessor.py",
               "mmzoo/data/__init__.py")
# Modules an import inside a function may name: heavy or optional dependencies, imported only
# where they are used (so `import mmzoo` and `mmzoo --help` stay quick, and a portable runtime
# imports no TensorFlow).
DEFERRED = ("tensorflow", "keras", "keras_hub", "librosa", "soundfile", "sklearn", "scipy",
            "nltk", "pycocoevalcap", "pyarrow", "tensorflow_datasets", "tf2onnx", "onnx",
            "onnxruntime", "ai_edge_litert", "easy_vqa", "PIL", "regex", "fcntl", "tf_keras",
            "safetensors")


def modules(root=None):
    """`{module name: path}` of every module of the package (in the checkout at `root`)."""
    global ROOT
    ROOT = root or ROOT
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "mmzoo")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _resolve(module, node, known):
    """The package modules an import statement names, each with whether it sits inside a
    function."""
    targets = []
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            is_package = os.path.basename(known[module]) == "__init__.py"
            parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
            base = ".".join(parts + ([base] if base else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            targets.append(full if full in known else base)
    return [t for t in targets if t in known]


def _packages(name, importer, known):
    """The subpackages Python runs the `__init__` of when it imports `name` (not the top
    package, the facade that imports everything lazily, nor a package `importer` is inside:
    it is already running)."""
    parts = name.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
            if p in known and not importer.startswith(p + ".")]


def imports(known=None):
    """`{module: [(imported module, line, inside a function?)]}` for the package's own
    modules, and the imports of other packages made inside functions."""
    known = known or modules()
    edges, inner = {}, {}
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        found, outside = [], []
        for node, in_function in _walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            names = _resolve(module, node, known)
            names += [p for n in names for p in _packages(n, module, known) if p not in names]
            if names:
                found += [(n, node.lineno, in_function) for n in names]
            elif in_function:
                top = (node.module if isinstance(node, ast.ImportFrom) and not node.level
                       else node.names[0].name).split(".")[0]
                outside.append((top, node.lineno))
        edges[module], inner[module] = found, outside
    return edges, inner


def _walk(tree):
    """`(node, inside a function?)` for every node of `tree`."""
    stack = [(tree, False)]
    while stack:
        node, inside = stack.pop()
        yield node, inside
        child_inside = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.Lambda))
        stack += [(c, child_inside) for c in ast.iter_child_nodes(node)]


def loops(edges):
    """The strongly connected components of more than one module (Tarjan), largest first."""
    graph = {m: sorted({t for t, _, _ in targets if t != m}) for m, targets in edges.items()}
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def _compared_names(node):
    """The task names a comparison or membership test names literally."""
    names = []
    for part in [node.left, *node.comparators]:
        for sub in ast.walk(part):
            if isinstance(sub, ast.Constant) and sub.value in TASK_NAMES:
                names.append(sub.value)
    return names


def task_branches(known=None):
    """`[(path, line, names)]`: every comparison naming a task literally (`task == "vqa"`,
    `task in ("classification", "vqa")`), and every dict keyed by task names (a switch by
    table)."""
    known = known or modules()
    out = []
    for module, path in sorted(known.items()):
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                names = _compared_names(node)
            elif isinstance(node, ast.Dict):
                names = [k.value for k in node.keys
                         if isinstance(k, ast.Constant) and k.value in TASK_NAMES]
                names = names if len(names) > 1 else []
            else:
                continue
            if names:
                out.append((rel, node.lineno, sorted(set(names))))
    return out


def functions(known=None):
    """`[(lines, "path:name")]` of every function, longest first: its lines of code, from its
    `def` to its end, without its docstring."""
    known = known or modules()
    out = []
    for module, path in known.items():
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = node.body[0] if node.body else None
                if isinstance(doc, ast.Expr) and isinstance(getattr(doc, "value", None),
                                                            ast.Constant) \
                        and isinstance(doc.value.value, str):
                    lines -= doc.end_lineno - doc.lineno + 1
                out.append((lines, f"{rel}:{node.name}"))
    return sorted(out, reverse=True)


def rooms(known=None):
    """`{room: lines}`: each folder of the package, and each top-level module."""
    known = known or modules()
    out = {}
    for module, path in known.items():
        parts = module.split(".")
        room = parts[1] + "/" if len(parts) > 2 or path.endswith("__init__.py") and len(parts) > 1 \
            else (parts[1] + ".py" if len(parts) > 1 else "__init__.py")
        with open(path) as f:
            out[room] = out.get(room, 0) + sum(1 for _ in f)
    return dict(sorted(out.items()))


def report(root=None):
    known = modules(root)
    edges, outside = imports(known)
    branches = task_branches(known)
    drivers = [b for b in branches
               if not b[0].startswith(TASK_ROOMS) or b[0].startswith(NOT_SOURCES)]
    inner = [(m, t, line) for m, targets in edges.items() for t, line, i in targets if i]
    inner_other = [(m, top, line) for m, found in outside.items() for top, line in found]
    return {
        "task_branches": len(branches),
        "task_branches_outside_tasks": len(drivers),
        "task_branches_by_file": _count(b[0] for b in drivers),
        "import_loops": [len(c) for c in loops(edges)],
        "import_loop_modules": loops(edges),
        "imports_inside_functions": {"package": len(inner), "other": len(inner_other),
                                     "other_not_deferred": sorted(
                                         f"{m}:{line} {top}" for m, top, line in inner_other
                                         if top not in DEFERRED)},
        "longest_functions": [f"{n} {name}" for n, name in functions(known)[:10]],
        "lines_by_room": rooms(known),
        "lines": sum(rooms(known).values()),
    }


def _count(items):
    out = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--root", default=None,
                        help="the checkout to read (default: this one), e.g. a worktree of an "
                             "older commit, to compare")
    args = parser.parse_args(argv)
    found = report(args.root and os.path.abspath(args.root))
    if args.json:
        print(json.dumps(found, indent=1))
        return
    print(f"task branches: {found['task_branches']} "
          f"({found['task_branches_outside_tasks']} outside tasks/, registry, data sources)")
    for path, n in found["task_branches_by_file"].items():
        print(f"  {n:3d} {path}")
    print(f"import loops: {found['import_loops']}")
    for loop in found["import_loop_modules"]:
        print("  " + ", ".join(loop))
    inner = found["imports_inside_functions"]
    print(f"imports inside functions: {inner['package']} of mmzoo modules, {inner['other']} of "
          f"other packages ({len(inner['other_not_deferred'])} not heavy)")
    print("longest functions:")
    for line in found["longest_functions"]:
        print(f"  {line}")
    print(f"lines by room ({found['lines']} in all):")
    for room, n in found["lines_by_room"].items():
        print(f"  {n:6d} {room}")


if __name__ == "__main__":
    main()
