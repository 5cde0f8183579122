"""Data: `load` reads real sources into raw example dicts, `pipeline` shapes them for a model."""

from mmzoo.data.adapt import adapt
from mmzoo.data.pipeline import pipeline
from mmzoo.data.sources import SPLITS, load

__all__ = ["SPLITS", "adapt", "load", "pipeline"]
