"""Text-image retrieval: a text tower and an image tower into one space, ranked by similarity.

A retrieval model has inputs `image` and `text`; sub-models `text_encoder` (ids -> embedding)
and `image_encoder` (image -> embedding), and a layer `similarity` (`[text embeddings, image
embeddings]` -> logits `[texts, images]`) (`parts`). It trains on one caption per image and
epoch against the other images of its batch (a contrastive loss: its targets are unused), and is
scored with recall@1/5/10 both ways, beside what a random ranking gets.
"""

from __future__ import annotations

import collections
import math

import keras
import numpy as np
import tensorflow as tf

from mmzoo import contract
from mmzoo.data.preprocessor import Preprocessor
from mmzoo.errors import InvalidValue
from mmzoo.metrics import retrieval_scores
from mmzoo.registry import register_task
from mmzoo.tasks.base import Task, figure, image_batches, rows, with_caption

Retriever = collections.namedtuple("Retriever", "text_encoder image_encoder similarity")
Retriever.__doc__ = """The parts of a retrieval model: `text_encoder`, `image_encoder` and the
`similarity` layer."""

MAX_SCALE = 100.0   # the similarity's learned scale is clipped here, as CLIP clips it


def parts(model):
    """The `Retriever` parts of a retrieval model; what it lacks fails naming it."""
    found = {n: contract.find(model, n) for n in ("text_encoder", "image_encoder", "similarity")}
    missing = [n for n, layer in found.items() if layer is None]
    if missing:
        RETRIEVAL.fail(model, f"has no layer(s) {missing} (retrieval embeds texts and images "
                              "apart)")
    return Retriever(**found)


def encoders(model):
    """The separate embedding models of a dual encoder: `(text_encoder, image_encoder)`.

    Examples:
    ```python
    text_encoder, image_encoder = mmzoo.tasks.retrieval.encoders(model)
    image_embeddings = image_encoder.predict(images)
    ```
    """
    found = parts(model)
    return found.text_encoder, found.image_encoder


class Retrieval(Task):
    """Two towers into one space; a text against images by similarity."""

    summary = "a text and an image embedded apart into one space, matched by similarity"
    intended_use = ("Rank images for a text (or texts for an image) by the dot product of their "
                    "embeddings, among images and texts like the training pairs.")
    limits = ()
    multimodal = True
    portable_output = "embedding"

    def problems(self, model):
        return contract.lacks(model, parts)

    def caption_length(self, p95, fields):
        """The text length for captions whose 95th percentile has `p95` words."""
        return {"sequence_length": p95} if "sequence_length" in fields else {}

    # --- the input pipeline -----------------------------------------------------------------

    def check_examples(self, model, element):
        if "captions" not in element and "text" not in element:
            raise InvalidValue(f"model {model.name!r} ({self.name}) needs 'captions' (or a "
                               f"'text') in each example; the dataset has {sorted(element)}")

    def expand(self, ds, training):
        """One caption per image and epoch: drawn at random when training (so no batch holds an
        image twice, which the in-batch contrastive loss would count as a wrong match), the
        first when evaluating."""
        if "captions" not in ds.element_spec:
            return ds
        if training:
            def pick(e):
                i = tf.random.uniform([], 0, tf.shape(e["captions"])[0], dtype=tf.int32)
                return with_caption(e, e["captions"][i])
            return ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.map(lambda e: with_caption(e, e["captions"][0]))

    def targets(self, pre, batch, inputs):
        # unused: every other image of the batch is a text's negative
        return inputs, tf.zeros(tf.shape(inputs["image"])[:1], tf.int32)

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model, dataset, batch_size, ablate=None):
        found = parts(model)
        v, references = [], []
        for images, refs in image_batches(model, dataset, batch_size, ablate):
            v.append(found.image_encoder.predict(images, batch_size=batch_size, verbose=0))
            references += refs
        v = np.concatenate(v)
        texts = [t for refs in references for t in refs]
        t, pre = [], Preprocessor(model)
        for i in range(0, len(texts), 4096):
            ids = pre.text("text", tf.constant(texts[i:i + 4096])).numpy()
            if ablate == "text":
                ids = np.zeros_like(ids)
            t.append(found.text_encoder.predict(ids, batch_size=batch_size, verbose=0))
        return retrieval_scores(np.concatenate(t), v, references)

    def headline(self, result):
        return "text->image recall@5", result.get("text_to_image", {}).get("recall@5")

    def table(self, result):
        keys = list(result["text_to_image"])
        lines = rows(["", "text->image", "image->text", "chance (text->image)"],
                     [[k, figure(result["text_to_image"][k]),
                       figure(result["image_to_text"][k]),
                       figure(result["chance"]["text_to_image"][k])] for k in keys])
        return f": {result['images']:,} images, {result['texts']:,} texts", lines

    # --- export -----------------------------------------------------------------------------

    def serving_functions(self, model, pre):
        found = parts(model)

        def embed_text(text):
            return {"embedding": found.text_encoder(pre.text("text", text), training=False)}

        def embed_image(image):
            return {"embedding": found.image_encoder(pre.images(image), training=False)}

        def match(text, image):
            t = embed_text(text)["embedding"]
            v = embed_image(image)["embedding"]
            return {"text_embedding": t, "image_embedding": v,
                    "similarity": found.similarity([t, v], training=False)}

        return {"serve": (match, ("text", "image")), "embed_text": (embed_text, ("text",)),
                "embed_image": (embed_image, ("image",))}, {}

    def portable_graphs(self, model, numeric_inputs, batch):
        """The two towers apart: `text_encoder` and `image_encoder`, each giving `embedding`."""
        found = parts(model)
        out = {}
        for stem, encoder in (("text_encoder", found.text_encoder),
                              ("image_encoder", found.image_encoder)):
            inputs, feeds = numeric_inputs(encoder, batch)
            name = next(iter(inputs))
            out[stem] = keras.Model(inputs, {"embedding": encoder(feeds[name])}, name=stem)
        return out

    def metadata(self, model):
        scale = list(parts(model).similarity.weights)
        if not scale:
            return {}
        return {"similarity": {"scale": min(math.exp(float(scale[0].numpy())), MAX_SCALE),
                               "logits": "scale * text_embedding @ image_embedding.T"}}

    def answer(self, model=None):
        return {"kind": "score", "output": "similarity", "embeddings": ["text_embedding",
                                                                        "image_embedding"]}

    def pipeline_tag(self, inputs):
        return "zero-shot-image-classification"


RETRIEVAL = register_task(Retrieval("retrieval"))

__all__ = ["RETRIEVAL", "Retrieval", "Retriever", "encoders", "parts"]
