"""The tasks: one object per task (`mmzoo.tasks.base.Task`), registered by name.

Importing this package registers the built-in ones: `classification` and `vqa`
(`mmzoo.tasks.classification`), `captioning`, `retrieval`, `transcription`. The drivers find a
model's with `mmzoo.registry.task_of(model)`.

Examples:
```python
mmzoo.registry.task_of(model).decoders        # ('greedy', 'beam') for a captioner
mmzoo.tasks.captioning.generate(model, images, "beam")
```
"""

from mmzoo.tasks import base, captioning, classification, retrieval, transcription

__all__ = ["base", "captioning", "classification", "retrieval", "transcription"]
