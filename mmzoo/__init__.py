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

__version__ = "0.1.0"

__all__ = ["__version__", "build", "card", "contract", "data", "describe", "errors", "evaluate",
           "export", "layers", "list_models", "models", "portable", "predict", "register",
           "runtime", "train"]

# name -> (module, attribute or None for the module itself)
_PUBLIC = {"build": ("mmzoo.registry", "build"), "describe": ("mmzoo.registry", "describe"),
           "list_models": ("mmzoo.registry", "list_models"),
           "register": ("mmzoo.registry", "register"), "evaluate": ("mmzoo.evaluate", "evaluate"),
           "export": ("mmzoo.export", "export"), "train": ("mmzoo.train", "train"),
           **{m: (f"mmzoo.{m}", None) for m in ("card", "contract", "data", "errors", "layers",
                                                "models", "portable", "predict", "runtime")}}


def load():
    """Import the whole library: TensorFlow, the custom Keras layers (so that
    `keras.saving.load_model` reads mmzoo's models) and the registered models. `import mmzoo`
    does it at once; the `mmzoo` command does it only once its arguments are parsed, so that
    `--help`, `--version` and a mistyped argument answer without starting TensorFlow."""
    _startup.quiet_start()  # the command: TensorFlow's start-up lines set aside
    for name in _PUBLIC:
        globals()[name] = __getattr__(name)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


if _startup.command_line() is None:  # a library import: everything, as users expect
    load()
