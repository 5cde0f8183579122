"""Custom serializable Keras layers (registered under the package name `mmzoo`)."""

from mmzoo.layers.fusion import Similarity, WeightedAverage, contrastive_loss
from mmzoo.layers.mfcc import MFCC
from mmzoo.layers.pooling import MaskedAverage
from mmzoo.layers.vocab import LabelNames, Vocabulary, model_labels, model_vocabulary

__all__ = ["MFCC", "LabelNames", "MaskedAverage", "Similarity", "Vocabulary", "WeightedAverage",
           "contrastive_loss", "model_labels", "model_vocabulary"]
