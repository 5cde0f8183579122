"""Custom serializable Keras layers (registered under the package name `mmzoo`)."""

from mmzoo.layers.fusion import Similarity, WeightedAverage, contrastive_loss
from mmzoo.layers.mfcc import MFCC
from mmzoo.layers.pooling import MaskedAverage
from mmzoo.layers.vocab import (HubTokenizer, LabelNames, Vocabulary, model_labels,
                                model_vocabulary)
from mmzoo.layers.wrapped import Wrapped

__all__ = ["MFCC", "HubTokenizer", "LabelNames", "MaskedAverage", "Similarity", "Vocabulary",
           "WeightedAverage", "Wrapped", "contrastive_loss", "model_labels", "model_vocabulary"]
