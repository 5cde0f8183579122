"""SpellingCNN (moonshine-ai/moonshine, MIT): a pretrained spoken-word encoder as a Keras graph.

A MobileNetV2-style CNN of about 1.0 M parameters trained on many voices (synthetic and real) to
recognise 51 spoken tokens (a-z, zero..nine, 15 command words) from 1 s of 16 kHz log-mel. Its
authors publish it as ONNX without its front end; here both are Keras: `SpellingLogMel` is the
front end from the published facts (`../shared/data/README.md`), `spelling_trunk` the network,
its weights copied from the ONNX file's initializers (batch norm is folded into the convolutions
there). The 640-wide pooled vector before the classifier is the embedding a head trains on.

`audio_spelling_cnn` (a classifier on its frozen embedding) is built on `spelling_backbone`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import keras
import librosa
import numpy as np
from keras import layers, ops

from mmzoo.errors import InvalidValue, MissingFile
from mmzoo.layers.mfcc import SPELLING, SpellingLogMel

SAMPLE_RATE, CLIP_SAMPLES = SPELLING["sample_rate"], SPELLING["sample_rate"]  # 1 s at 16 kHz
N_FFT, HOP, N_MELS = SPELLING["n_fft"], SPELLING["hop_length"], SPELLING["n_mels"]
FMIN, FMAX, FRAMES = SPELLING["fmin"], SPELLING["fmax"], SPELLING["frames"]
LOG_FLOOR, STD_FLOOR = SPELLING["log_floor"], SPELLING["std_floor"]
# (expansion, output channels, repeats, first stride) of each inverted-residual stage
STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 3, 2), (4, 96, 2, 1),
          (4, 160, 2, 2), (4, 240, 1, 1))
STEM, HEAD = 32, 640
ONNX_FILE = "spelling_cnn_mel.onnx"
META_FILE = "spelling_cnn_meta.json"


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
                              " and spelling_cnn_meta.json), audio_weights=PATH")
    _warn_if_other(os.path.join(folder, ONNX_FILE))
    return folder


def _warn_if_other(path):
    """Warn when an ONNX file is not the one mmzoo was checked against (its SHA-256): its
    authors re-export their models, with other classes."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SHA256[ONNX_FILE]:
        warnings.warn(f"{path} is not the SpellingCNN file mmzoo was checked against (moonshine"
                      f"-ai/moonshine commit db88bff, SHA-256 {SHA256[ONNX_FILE][:12]}...); "
                      "its graph and classes may differ", stacklevel=3)


def class_names(weights):
    """The 51 tokens of SpellingCNN's classifier, in logit order (its meta file)."""
    with open(os.path.join(resolved_weights(weights), META_FILE)) as f:
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


# where users' machines fetch the files (the authors' repository at the commit the shared copy
# was taken from), checked by their SHA-256; tests and benchmarks pass the local folder
RELEASE = "https://github.com/moonshine-ai/moonshine/raw/db88bff/micro/models/"
SHA256 = {ONNX_FILE: "a42f1c9e19e1b31b8499fa20e0e9e4d6c70b80206bd9ac093e42a24893cda249",
          META_FILE: "c6162455d46f6e9502fb32db03a3e18d1fa9cbb54bd8f461d1176dbfec6362ca"}
PUBLISHED = "spelling_cnn"   # `audio_weights="spelling_cnn"`: the published files


def resolved_weights(weights):
    """The local folder of the SpellingCNN files: `weights` itself, or, for `"spelling_cnn"`,
    the published files fetched once into Keras' cache (`keras.utils.get_file`, checked by
    their SHA-256) on a machine that reaches GitHub; a failed fetch names what to pass."""
    if weights != PUBLISHED:
        return weights_folder(weights)
    folder = None
    for name, digest in SHA256.items():
        try:
            path = keras.utils.get_file(name, RELEASE + name, file_hash=digest,
                                        cache_subdir="mmzoo_spelling_cnn")
        except Exception as e:
            raise MissingFile(
                f"audio_weights='spelling_cnn': cannot fetch {name} from {RELEASE} ({e}); "
                "download spelling_cnn_mel.onnx and spelling_cnn_meta.json from the "
                "moonshine-ai/moonshine repository at commit db88bff (micro/models/) and pass "
                "their folder: audio_weights=PATH (--set audio_weights=PATH)") from None
        folder = os.path.dirname(path)
    return folder


BACKBONE = "audio_backbone"   # the sub-model `mmzoo.contract.audio_front_end` finds


def spelling_backbone(weights=PUBLISHED, trainable=False, name=BACKBONE):
    """SpellingCNN as an audio backbone: waveforms `[batch, 16000]` at 16 kHz -> its 640-wide
    embedding, one sub-model named `audio_backbone`. `weights`: the files' folder, the
    published `"spelling_cnn"`, or None (random weights, for tests). `trainable=False` (the
    default) freezes it: a fixed front end whose embeddings `mmzoo train` computes once per
    clip and caches (`mmzoo.features`)."""
    wave = keras.Input((CLIP_SAMPLES,), name="waveform")
    trunk = spelling_trunk()
    if weights is not None:
        load_onnx_weights(trunk, resolved_weights(weights))
    embedding, _ = trunk(SpellingLogMel(name="spelling_log_mel")(wave))
    backbone = keras.Model(wave, embedding, name=name)
    backbone.trainable = bool(trainable)
    return backbone


def spelling_encoder(weights, name="spelling_encoder"):
    """Waveforms `[batch, 16000]` at 16 kHz -> `(embedding, logits)`: the front end and the
    trunk with the ONNX file's weights, one Keras functional model."""
    wave = keras.Input((CLIP_SAMPLES,), name="audio")
    trunk = load_onnx_weights(spelling_trunk(), resolved_weights(weights))
    embedding, logits = trunk(SpellingLogMel(name="spelling_log_mel")(wave))
    return keras.Model(wave, [embedding, logits], name=name)
