"""SpellingCNN (moonshine-ai/moonshine, MIT): a pretrained spoken-word encoder as a Keras graph.

A MobileNetV2-style CNN of about 1.0 M parameters trained on many voices (synthetic and real) to
recognise 51 spoken tokens (a-z, zero..nine, 15 command words) from 1 s of 16 kHz log-mel. Its
authors publish it as ONNX without its front end; here both are Keras: `SpellingLogMel` is the
front end from the published facts (`../shared/data/README.md`), `spelling_trunk` the network,
its weights copied from the ONNX file's initializers (batch norm is folded into the convolutions
there). The 640-wide pooled vector before the classifier is the embedding a head trains on.

Work in progress (issue 32): the trunk and its front end, checked against the ONNX file and the
published definition; no registered model uses them yet.
"""

from __future__ import annotations

import json
import os

import keras
import librosa
import numpy as np
from keras import layers, ops

from mmzoo.errors import InvalidValue, MissingFile
from mmzoo.layers.mfcc import LogMel

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000            # 1 s
N_FFT, HOP, N_MELS, FMIN, FMAX = 512, 125, 64, 20.0, 8000.0
FRAMES = 128                    # time cut (or zero-padded on the right) to this many frames
LOG_FLOOR = 1e-6                # ln(mel + 1e-6)
STD_FLOOR = 1e-3                # per-clip standardisation: the deviation floored at this
# (expansion, output channels, repeats, first stride) of each inverted-residual stage
STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 3, 2), (4, 96, 2, 1),
          (4, 160, 2, 2), (4, 240, 1, 1))
STEM, HEAD = 32, 640
ONNX_FILE = "spelling_cnn_mel.onnx"
META_FILE = "spelling_cnn_meta.json"


@keras.saving.register_keras_serializable("mmzoo")
class SpellingLogMel(LogMel):
    """SpellingCNN's front end: float32 waveforms `[batch, 16000]` at 16 kHz -> standardised
    log-mel `[batch, 64, 128, 1]` (mel bands, frames, a channel).

    From the published facts: power mel spectrogram with `n_fft` 512 (periodic Hann window of
    512), hop 125, centred frames with reflect padding, 64 Slaney mel bands from 20 Hz to
    8 kHz with Slaney area normalisation; `ln(mel + 1e-6)`; the first 128 frames (a shorter
    clip's frames zero-padded on the right); then each clip standardised over all its 64 x 128
    values (mean, unbiased standard deviation floored at 1e-3).
    """

    def __init__(self, **kwargs):
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db"):
            kwargs.pop(key, None)
        super().__init__(SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmin=FMIN,
                         fmax=FMAX, top_db=None, **kwargs)

    def call(self, waveform):
        waveform = ops.cast(waveform, "float32")
        pad = self.n_fft // 2
        padded = ops.pad(waveform, [[0, 0], [pad, pad]], mode="reflect")
        real, imag = (self._factored(padded) if self.dft == "factored"
                      else self._convolved(padded))
        mel = ops.matmul(real * real + imag * imag, ops.convert_to_tensor(self._mel_t))
        x = ops.log(mel + LOG_FLOOR)                                   # [batch, frames, mels]
        x = ops.pad(x, [[0, 0], [0, FRAMES], [0, 0]])[:, :FRAMES]     # cut or pad to 128
        count = float(FRAMES * self.n_mels)
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.sum(ops.square(x - mean), axis=(1, 2), keepdims=True) / (count - 1.0)
        x = (x - mean) / ops.maximum(ops.sqrt(var), STD_FLOOR)
        return ops.expand_dims(ops.transpose(x, (0, 2, 1)), -1)       # [batch, mels, frames, 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], N_MELS, FRAMES, 1)

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        return config


def published_log_mel(wave):
    """The front end as its authors define it, in numpy and librosa (float64): the reference
    `SpellingLogMel` is checked against. `wave`: one waveform at 16 kHz."""
    mel = librosa.feature.melspectrogram(
        y=np.asarray(wave, np.float64), sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
        n_mels=N_MELS, fmin=FMIN, fmax=FMAX, center=True, pad_mode="reflect", power=2.0,
        htk=False, norm="slaney")
    x = np.log(mel + LOG_FLOOR)[:, :FRAMES]
    x = np.pad(x, [(0, 0), (0, FRAMES - x.shape[1])])
    return (x - x.mean()) / max(x.std(ddof=1), STD_FLOOR)


def weights_folder(weights):
    """The folder of the SpellingCNN files (`spelling_cnn_mel.onnx`, its meta) that `weights`
    names: the folder, or the ONNX file in it; a missing or wrong file fails naming what to
    pass."""
    if not isinstance(weights, (str, os.PathLike)):
        raise InvalidValue(f"SpellingCNN weights={weights!r}: give the folder holding "
                           f"{ONNX_FILE} and {META_FILE} (e.g. ../shared/data/weights/"
                           "spelling_cnn)")
    folder = os.fspath(weights)
    if folder.endswith(".onnx"):
        folder = os.path.dirname(folder) or "."
    for name in (ONNX_FILE, META_FILE):
        if not os.path.isfile(os.path.join(folder, name)):
            raise MissingFile(f"SpellingCNN weights: no {name} in {folder!r}; give the folder "
                              "holding the moonshine-ai SpellingCNN files (spelling_cnn_mel.onnx"
                              " and spelling_cnn_meta.json)")
    return folder


def class_names(weights):
    """The 51 tokens of SpellingCNN's classifier, in logit order (its meta file)."""
    with open(os.path.join(weights_folder(weights), META_FILE)) as f:
        return tuple(json.load(f)["classes"])


def _relu6(x, name):
    return layers.ReLU(6.0, name=name)(x)


def _conv(x, filters, kernel, stride, name, depthwise=False):
    """A convolution as the ONNX file holds it: explicit symmetric padding (`pads` 1 for 3x3),
    a bias (batch norm folded in)."""
    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    if depthwise:
        return layers.DepthwiseConv2D(kernel, strides=stride, padding="valid", name=name)(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", name=name)(x)


def spelling_trunk(name="spelling_trunk"):
    """SpellingCNN's network without weights: standardised log-mel `[batch, 64, 128, 1]` ->
    `(embedding [batch, 640], logits [batch, 51])`, a Keras functional model."""
    mel = keras.Input((N_MELS, FRAMES, 1), name="log_mel")
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad_to_odd")(mel)   # 65 x 129
    x = _relu6(_conv(x, STEM, 3, 2, "stem_conv"), "stem_relu")
    channels, block = STEM, 0
    for expansion, out, repeats, first in STAGES:
        for r in range(repeats):
            stride, inputs, name = (first if r == 0 else 1), x, f"block{block}"
            hidden = channels * expansion
            if expansion != 1:
                x = _relu6(_conv(x, hidden, 1, 1, f"{name}_expand"), f"{name}_expand_relu")
            x = _relu6(_conv(x, hidden, 3, stride, f"{name}_depthwise", depthwise=True),
                       f"{name}_depthwise_relu")
            x = _conv(x, out, 1, 1, f"{name}_project")
            if stride == 1 and channels == out:
                x = layers.Add(name=f"{name}_add")([inputs, x])
            channels, block = out, block + 1
    x = _relu6(_conv(x, HEAD, 1, 1, "head_conv"), "head_relu")
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    logits = layers.Dense(51, name="logits")(embedding)
    return keras.Model(mel, [embedding, logits], name=name)


def load_onnx_weights(model, weights):
    """Copy the ONNX file's weights into `spelling_trunk`'s layers, in graph order (each
    convolution's kernel transposed from `[out, in, h, w]`; the classifier's from `[51,
    640]`). A file of another shape fails naming it."""
    import onnx
    from onnx import numpy_helper

    path = os.path.join(weights_folder(weights), ONNX_FILE)
    graph = onnx.load(path).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    targets = [layer for layer in model.layers
               if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D))]
    if len(convs) != len(targets) or len(gemms) != 1:
        raise InvalidValue(f"{path}: {len(convs)} convolutions and {len(gemms)} linear layers, "
                           f"where SpellingCNN has {len(targets)} and 1; is it the moonshine-ai "
                           "spelling_cnn_mel.onnx?")
    for node, layer in zip(convs, targets):
        kernel, bias = values[node.input[1]], values[node.input[2]]
        if isinstance(layer, layers.DepthwiseConv2D):
            kernel = kernel.transpose(2, 3, 0, 1)                  # [h, w, channels, 1]
        else:
            kernel = kernel.transpose(2, 3, 1, 0)                  # [h, w, in, out]
        if tuple(kernel.shape) != tuple(layer.kernel.shape):
            raise InvalidValue(f"{path}: {node.name} holds {kernel.shape}, where "
                               f"{layer.name} takes {tuple(layer.kernel.shape)}")
        layer.set_weights([kernel, bias])
    gemm = gemms[0]
    model.get_layer("logits").set_weights([values[gemm.input[1]].T, values[gemm.input[2]]])
    return model


def spelling_encoder(weights, name="spelling_encoder"):
    """Waveforms `[batch, 16000]` at 16 kHz -> `(embedding, logits)`: the front end and the
    trunk with the ONNX file's weights, one Keras functional model."""
    wave = keras.Input((CLIP_SAMPLES,), name="audio")
    trunk = load_onnx_weights(spelling_trunk(), weights)
    embedding, logits = trunk(SpellingLogMel(name="spelling_log_mel")(wave))
    return keras.Model(wave, [embedding, logits], name=name)
