"""Graph pieces: plain functions from Keras tensors to Keras tensors, with prefixed layer names."""

from mmzoo.blocks.audio import mfcc_cnn_encoder, mfcc_lstm_encoder
from mmzoo.blocks.fusion import FUSION_METHODS, fuse, late_fusion
from mmzoo.blocks.heads import caption_decoder, classifier_head
from mmzoo.blocks.image import BACKBONES, cnn_encoder, pretrained_encoder, resnet_encoder
from mmzoo.blocks.text import lstm_encoder, transformer_encoder, word_vector_mlp_encoder

__all__ = ["BACKBONES", "FUSION_METHODS", "caption_decoder", "classifier_head", "cnn_encoder",
           "fuse", "late_fusion", "lstm_encoder", "mfcc_cnn_encoder", "mfcc_lstm_encoder",
           "pretrained_encoder", "resnet_encoder", "transformer_encoder",
           "word_vector_mlp_encoder"]
