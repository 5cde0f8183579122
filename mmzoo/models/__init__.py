"""The built-in models: importing this package registers them."""

from mmzoo.models import captioning, classification, features, retrieval, transcription, vqa

__all__ = ["captioning", "classification", "features", "retrieval", "transcription", "vqa"]
