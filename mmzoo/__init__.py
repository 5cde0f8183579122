"""mmzoo: a Keras 3 functional-API model zoo for multimodal (text, image, audio) models.

Examples:
```python
import mmzoo
mmzoo.list_models(task="captioning")
model = mmzoo.build("vqa_cnn_lstm")
```
"""

from mmzoo import (  # models: registers the zoo
           _startup,  # noqa: F401  (first: the `mmzoo` command starts quietly)
           contract,
           data,
           errors,
           layers,
           models,
)
from mmzoo.evaluate import evaluate
from mmzoo.export import export
from mmzoo.registry import build, describe, list_models, register
from mmzoo.train import train

__version__ = "0.1.0"

__all__ = ["__version__", "build", "contract", "data", "describe", "errors", "evaluate", "export",
           "layers", "list_models", "models", "register", "train"]
