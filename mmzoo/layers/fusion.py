"""Fusion and similarity layers with learned weights that plain Keras layers do not offer."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable("mmzoo")
class WeightedAverage(keras.layers.Layer):
    """Decision-level fusion: a learned convex combination of per-modality predictions.

    The weights are `softmax(w)` over the inputs, so they stay positive and sum to one; they start
    equal (plain averaging, i.e. soft voting).

    Args:
        (none beyond the usual layer arguments)

    Examples:
    ```python
    probs = mmzoo.layers.WeightedAverage(name="fusion_late")([text_probs, image_probs])
    ```
    """

    def build(self, input_shape):
        self.logits = self.add_weight(shape=(len(input_shape),), initializer="zeros",
                                      name="logits")

    def weights_normalized(self):
        """The current combination weights, one per input."""
        return ops.softmax(self.logits)

    def call(self, inputs):
        w = ops.softmax(self.logits)
        stacked = ops.stack(inputs, axis=-1)
        return ops.sum(stacked * w, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable("mmzoo")
class Similarity(keras.layers.Layer):
    """Scaled cosine similarities between every text and every image of a batch (CLIP).

    Inputs are L2-normalised embeddings `[batch, dim]`; the output is `[batch_text, batch_image]`
    logits `exp(t) * text @ image.T` with a learned temperature `t` (clipped at 100, as in CLIP).

    Args:
        init_scale: float. Initial value of `exp(t)`.

    Examples:
    ```python
    logits = mmzoo.layers.Similarity(name="similarity")([text_embedding, image_embedding])
    ```
    """

    def __init__(self, init_scale=10.0, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = float(init_scale)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(self.init_scale)),
            name="log_scale")

    def call(self, inputs):
        text, image = inputs
        scale = ops.minimum(ops.exp(self.log_scale), 100.0)
        context = _replicas()
        if context is not None:  # every replica's texts and images are negatives (CLIP)
            texts, images = context.all_gather(text, axis=0), context.all_gather(image, axis=0)
            return scale * ops.concatenate([ops.matmul(text, ops.transpose(images)),
                                            ops.matmul(image, ops.transpose(texts))], axis=1)
        return scale * ops.matmul(text, ops.transpose(image))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale}


def _replicas():
    """The replica context of a step run on several replicas (TensorFlow's `MirroredStrategy`,
    `MultiWorkerMirroredStrategy`, `TPUStrategy`), where `Similarity` gathers every replica's
    embeddings, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _matching(logits):
    """`(labels, text -> image logits, image -> text logits)` of a `Similarity` output: on one
    replica the batch's `[texts, images]` matrix (the match of text i is image i); on several,
    this replica's texts against every replica's images beside its images against every
    replica's texts, the match of local pair i being global pair `offset + i`."""
    context = _replicas()
    n = ops.shape(logits)[0]
    if context is None:
        return ops.arange(n), logits, ops.transpose(logits)
    import tensorflow as tf

    sizes = context.all_gather(tf.shape(logits)[:1], axis=0)
    offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
    total = tf.shape(logits)[1] // 2
    return tf.range(n) + offset, logits[:, :total], logits[:, total:]


@keras.saving.register_keras_serializable("mmzoo")
def contrastive_loss(y_true, logits):
    """Symmetric InfoNCE over a batch's similarity matrix: pair `i` of the batch is the match.

    `y_true` is ignored: the targets are the diagonal, computed from the batch itself. Under a
    strategy with several replicas the negatives are global, as in CLIP: each replica scores
    its pairs against every replica's texts and images (`Similarity` gathers them), so the
    loss is the one of the whole batch on one device.
    """
    labels, text_to_image, image_to_text = _matching(logits)
    loss = keras.losses.sparse_categorical_crossentropy
    return (loss(labels, text_to_image, from_logits=True)
            + loss(labels, image_to_text, from_logits=True)) / 2.0
