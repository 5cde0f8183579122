"""The built-in models: importing this package registers them (`mmzoo.load()` imports it after
`mmzoo.tasks`, whose tasks the registrations name)."""

from mmzoo.models import captioning, classification, retrieval, transcription, vqa

__all__ = ["captioning", "classification", "retrieval", "transcription", "vqa"]
