"""Fusion of per-modality features: feature-level (`fuse`) and decision-level (`late_fusion`)."""

from __future__ import annotations

from keras import layers

from mmzoo.errors import InvalidValue
from mmzoo.layers.fusion import WeightedAverage

FUSION_METHODS = ("concat", "sum", "product", "attention", "gated")


def fuse(features, method="concat", *, dim=128, num_heads=2, prefix="fusion"):
    """Fuse a dict of per-modality feature vectors into one vector.

    - `concat`: concatenation of the features as they are.
    - `sum` / `product`: each feature projected to `dim` (tanh), then added / multiplied.
    - `attention`: the projected features as a sequence of modality tokens, one Transformer-style
      self-attention block (multi-head attention, residual, layer norm), then averaged.
    - `gated`: a gated multimodal unit (Arevalo et al. 2017): a sigmoid gate per modality computed
      from all features weighs each projected feature.

    Args:
        features: dict of str to Keras tensor. `[batch, d_i]` feature vectors by modality.
        method: str. One of `concat`, `sum`, `product`, `attention`, `gated`.
        dim: int. Projection width for every method but `concat`.
        num_heads: int. Attention heads for `attention`.
        prefix: str. Prefix of the layer names.

    Examples:
    ```python
    x = mmzoo.blocks.fuse({"text": t, "image": v}, "gated", dim=64)
    ```
    """
    if method not in FUSION_METHODS:
        raise InvalidValue(f"unknown fusion {method!r}; use one of {list(FUSION_METHODS)}")
    names = list(features)
    if len(names) == 1:
        return features[names[0]]
    if method == "concat":
        return layers.Concatenate(name=f"{prefix}_concat")([features[n] for n in names])
    projected = [layers.Dense(dim, activation="tanh", name=f"{prefix}_{n}_projection")(features[n])
                 for n in names]
    if method == "sum":
        return layers.Add(name=f"{prefix}_sum")(projected)
    if method == "product":
        return layers.Multiply(name=f"{prefix}_product")(projected)
    if method == "attention":
        tokens = [layers.Reshape((1, dim), name=f"{prefix}_{n}_token")(p)
                  for n, p in zip(names, projected)]
        seq = layers.Concatenate(axis=1, name=f"{prefix}_tokens")(tokens)
        attended = layers.MultiHeadAttention(num_heads=num_heads, key_dim=max(dim // num_heads, 1),
                                             name=f"{prefix}_attention")(seq, seq)
        seq = layers.Add(name=f"{prefix}_residual")([seq, attended])
        seq = layers.LayerNormalization(name=f"{prefix}_norm")(seq)
        return layers.GlobalAveragePooling1D(name=f"{prefix}_average")(seq)
    # gated
    joint = layers.Concatenate(name=f"{prefix}_gate_input")([features[n] for n in names])
    gated = []
    for n, p in zip(names, projected):
        gate = layers.Dense(dim, activation="sigmoid", name=f"{prefix}_{n}_gate")(joint)
        gated.append(layers.Multiply(name=f"{prefix}_{n}_gated")([gate, p]))
    return layers.Add(name=f"{prefix}_gated_sum")(gated)


def late_fusion(probabilities, *, prefix="fusion"):
    """Decision-level fusion: a learned weighted average of per-modality class probabilities.

    Args:
        probabilities: list of Keras tensors. `[batch, classes]` softmax outputs, one per modality.
        prefix: str. Prefix of the layer name.

    Examples:
    ```python
    probs = mmzoo.blocks.late_fusion([text_probs, image_probs])
    ```
    """
    return WeightedAverage(dtype="float32", name=f"{prefix}_late")(list(probabilities))
