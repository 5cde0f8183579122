"""Models (and tasks) of your own, known to every command: plugins.

A module that registers models (`@mmzoo.register`) is found, as pytest and Keras plugins are:

- through a Python entry point of the group `mmzoo.models` that a package declares
  (`[project.entry-points."mmzoo.models"] my_models = "my_package.models"` in its
  `pyproject.toml`): every `mmzoo` command and `import mmzoo` import it;
- through `--import MODULE` on any `mmzoo` command (repeatable), or the environment variable
  `MMZOO_IMPORT` (module names separated by commas), for a module on `PYTHONPATH` or in the
  current folder;
- through the run itself: `mmzoo train` records the module that registered the model it trains
  (`config.json`'s `module`), and `evaluate`, `export`, `predict` and `card` of that run import
  it before they read the model (`import_recorded`).

Examples:
```python
# my_models.py, in the folder you run mmzoo from
import keras, mmzoo

@mmzoo.register("my_cnn", task="classification", inputs=("image",),
                config=mmzoo.models.classification.ImageClassifierConfig)
def my_cnn(cfg):
    ...
```
```bash
mmzoo train my_cnn --import my_models --data images:photos --out runs/my_cnn
mmzoo evaluate runs/my_cnn          # imports my_models again, from the run's record
```
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import warnings

from mmzoo.errors import InvalidValue

GROUP = "mmzoo.models"
ENVIRONMENT = "MMZOO_IMPORT"
HOW = ("a model of your own is known once its module is imported: `--import MODULE`, "
       f"{ENVIRONMENT}=MODULE, or an entry point of the group '{GROUP}'")

_loaded = set()


def import_module(name, why="--import"):
    """Import the module `name` (from `PYTHONPATH`, the installed packages or the current
    folder); a module that cannot be found or fails on import fails in one line naming it."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise InvalidValue(f"{why} {name!r}: not a module name (give it as you would import it, "
                           "e.g. my_models or my_package.models)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # a module beside the user, as `python -m` finds it
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name or (e.name and name.startswith(e.name + ".")):
            raise InvalidValue(f"{why} {name!r}: no module named {e.name!r} on PYTHONPATH or in "
                               f"{os.getcwd()}; put its folder on PYTHONPATH, or install its "
                               "package") from None
        raise
    _loaded.add(name)
    return module


def import_modules(names, why="--import"):
    """Import each module of `names` (`import_module`)."""
    for name in names or ():
        import_module(name, why)


def from_environment():
    """The module names of `MMZOO_IMPORT` (separated by commas)."""
    return [n.strip() for n in os.environ.get(ENVIRONMENT, "").split(",") if n.strip()]


def entry_points():
    """The entry points of the group `mmzoo.models` of the installed packages."""
    return list(importlib.metadata.entry_points(group=GROUP))


def load_entry_points():
    """Import every module the `mmzoo.models` entry points name (once). One that fails to
    import is named in a warning and left out: another package's broken plugin must not stop
    mmzoo."""
    for point in entry_points():
        if point.value in _loaded:
            continue
        try:
            point.load()
        except Exception as e:  # a plugin's own failure, whatever it is
            warnings.warn(f"mmzoo plugin {point.name!r} ({point.value}, entry point of "
                          f"{point.dist.name if point.dist else 'an installed package'}) failed "
                          f"to import and is left out: {type(e).__name__}: {e}", stacklevel=2)
            continue
        _loaded.add(point.value)


def load(names=()):
    """The plugins of a command: the entry points, `MMZOO_IMPORT` and `names` (`--import`)."""
    load_entry_points()
    import_modules(from_environment(), ENVIRONMENT)
    import_modules(names)


def import_recorded(module, model=None):
    """Import the module a run recorded as the one that registered its model (`config.json`'s
    `module`); mmzoo's own models need nothing. A model registered by a script or a notebook
    (`__main__`) cannot be imported by another process: that fails saying what to do."""
    if module == "__main__":
        raise InvalidValue(f"the run's model {model or ''!s} was registered by a script or a "
                           "notebook (`__main__`), which another process cannot import; move "
                           "its registration into a module and give --import MODULE (and "
                           "train it again, or keep importing that module)")
    if module and not module.startswith("mmzoo.") and module not in sys.modules:
        import_module(module, why="the run's model module")


__all__ = ["ENVIRONMENT", "GROUP", "HOW", "entry_points", "from_environment", "import_module",
           "import_modules", "import_recorded", "load", "load_entry_points"]
