"""Data: `load` reads real sources into raw example dicts, `pipeline` shapes them for a model."""

from mmzoo.data.adapt import adapt
from mmzoo.checks import BadDataError
from mmzoo.data.pipeline import pipeline
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.data.prepare import prepare
from mmzoo.data.sources import SPLITS, fit_splits, load, open_source

__all__ = ["SPLITS", "BadDataError", "Preprocessor", "adapt", "fit_splits", "load", "open_source",
           "pipeline", "prepare"]
