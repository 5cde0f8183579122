"""mmzoo: a Keras 3 functional-API model zoo for multimodal (text, image, audio) models.

Examples:
```python
import mmzoo
mmzoo.list_models(task="captioning")
model = mmzoo.build("vqa_cnn_lstm")
```
"""

import importlib

from mmzoo import _startup
from mmzoo._version import __version__

__all__ = ["__version__", "build", "card", "contract", "data", "describe", "errors", "evaluate",
           "export", "features", "layers", "list_models", "metrics", "models", "plugins",
           "portable", "predict", "register", "registry", "run", "runtime", "tasks", "train"]

# name -> (module, attribute or None for the module itself)
_PUBLIC = {"build": ("mmzoo.registry", "build"), "describe": ("mmzoo.registry", "describe"),
           "list_models": ("mmzoo.registry", "list_models"),
           "register": ("mmzoo.registry", "register"), "evaluate": ("mmzoo.evaluate", "evaluate"),
           "export": ("mmzoo.export", "export"), "train": ("mmzoo.train", "train"),
           **{m: (f"mmzoo.{m}", None) for m in ("card", "contract", "data", "errors", "features",
                                                "layers", "metrics", "models", "plugins",
                                                "portable", "predict", "registry",
                                                "runtime", "tasks")}}
# Imported first, in this order: the tasks register themselves, then the models that name them.
_BUILT_IN = ("mmzoo.tasks", "mmzoo.models")


def load(plugins=()):
    """Import the whole library: TensorFlow, the custom Keras layers (so that
    `keras.saving.load_model` reads mmzoo's models), the tasks and the models, then the
    plugins (`mmzoo.plugins`: the `mmzoo.models` entry points, `MMZOO_IMPORT`, and the modules
    `plugins` names). `import mmzoo` does it at once; the `mmzoo` command does it only once its
    arguments are parsed, so that `--help`, `--version` and a mistyped argument answer without
    starting TensorFlow."""
    _startup.quiet_start()  # the command: TensorFlow's start-up lines set aside
    for module in _BUILT_IN:
        importlib.import_module(module)
    for name in _PUBLIC:
        globals()[name] = __getattr__(name)
    importlib.import_module("mmzoo.plugins").load(plugins)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


if _startup.command_line() is None:  # a library import: everything, as users expect
    load()
