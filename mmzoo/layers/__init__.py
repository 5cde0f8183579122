"""Custom serializable Keras layers (registered under the package name `mmzoo`)."""

from mmzoo.layers.fusion import Similarity, WeightedAverage, contrastive_loss
from mmzoo.layers.mfcc import MFCC, LogMel, SpellingLogMel
from mmzoo.layers.pooling import MaskedAverage
from mmzoo.layers.speech import (
                                 CTCTokens,
                                 FrameLengths,
                                 FrameMask,
                                 MaskFrames,
                                 SpecAugment,
                                 UtteranceLengths,
                                 UtteranceNormalization,
)
from mmzoo.layers.vocab import HubTokenizer, LabelNames, Vocabulary, model_labels, model_vocabulary
from mmzoo.layers.wrapped import Wrapped

__all__ = ["CTCTokens", "FrameLengths", "FrameMask", "HubTokenizer", "LabelNames", "LogMel", "MFCC",
           "MaskFrames", "MaskedAverage", "Similarity", "SpecAugment", "SpellingLogMel",
           "UtteranceLengths",
           "UtteranceNormalization", "Vocabulary", "WeightedAverage", "Wrapped",
           "contrastive_loss", "model_labels", "model_vocabulary"]
