"""Task metrics: accuracy / macro precision, recall, F1 / confusion matrix; BLEU-1..4; recall@k."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mmzoo.data.pipeline import fit_image, pipeline
from mmzoo.data.text import standardize

RECALL_AT = (1, 5, 10)


def classification_metrics(y_true, y_pred, labels):
    """Accuracy, macro precision / recall / F1 and the confusion matrix (rows: true class).

    Args:
        y_true, y_pred: int arrays of class indices.
        labels: list of str. The class names, in index order.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=range(len(labels)), average="macro", zero_division=0)
    return {"examples": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)),
            "macro_precision": float(precision), "macro_recall": float(recall),
            "macro_f1": float(f1), "labels": list(labels),
            "confusion_matrix": confusion_matrix(y_true, y_pred,
                                                 labels=range(len(labels))).tolist()}


def bleu_scores(references, hypotheses):
    """BLEU-1..4 (`keras_hub.metrics.Bleu`, corpus level) of `hypotheses` against `references`
    (a list of reference lists); all texts standardised as the models' inputs are."""
    import keras_hub

    def clean(texts):
        return [t.decode() for t in standardize(tf.constant(texts)).numpy()]

    refs = [clean(r) for r in references]
    hyps = clean(hypotheses)
    width = max(len(r) for r in refs)
    refs = [r + [""] * (width - len(r)) for r in refs]  # Bleu takes a dense [batch, refs]
    out = {}
    for n in range(1, 5):
        metric = keras_hub.metrics.Bleu(max_order=n)
        metric.update_state(tf.ragged.constant(refs).to_tensor(default_value=""),
                            tf.constant(hyps))
        out[f"bleu_{n}"] = float(metric.result())
    return out


def _zeroed(ds, name):
    def zero(x, y):
        return {**x, name: tf.zeros_like(x[name])}, y

    return ds.map(zero, num_parallel_calls=tf.data.AUTOTUNE)


def _classify(model, dataset, batch_size, ablate=None):
    from mmzoo.layers.vocab import model_labels

    ds = pipeline(model, dataset, batch_size=batch_size)
    if ablate:
        ds = _zeroed(ds, ablate)
    y_true, y_pred = [], []
    for x, y in ds:
        y_true.append(y.numpy())
        y_pred.append(np.argmax(model(x, training=False), axis=-1))
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    result = classification_metrics(y_true, y_pred, model_labels(model))
    if not ablate and "speaker" in dataset.element_spec:  # FSDD: the same predictions, by speaker
        speakers = np.array([s.decode() for s in
                             dataset.map(lambda e: e["speaker"]).as_numpy_iterator()])
        right = y_true == y_pred
        result["accuracy_by_speaker"] = {s: float(np.mean(right[speakers == s]))
                                         for s in sorted(set(speakers))}
    return result


def _images_and_references(model, dataset):
    """Unique images (resized like the pipeline) and every reference text of each."""
    size = tuple(model.get_layer("image_encoder").input.shape[1:3])
    images, references = [], []
    for example in dataset:
        images.append(fit_image(example["image"], size).numpy())
        if "captions" in example:
            references.append([c.decode() for c in example["captions"].numpy()])
        else:
            references.append([example["text"].numpy().decode()])
    return np.stack(images).astype("float32"), references


def _caption(model, dataset, batch_size, ablate=None, num_beams=3):
    from mmzoo.models.captioning import generate

    images, references = _images_and_references(model, dataset)
    if ablate == "image":
        images = np.zeros_like(images)
    out = {"images": len(images)}
    for method in ("greedy", "beam"):
        hyps = []
        for i in range(0, len(images), batch_size):
            hyps += generate(model, images[i:i + batch_size], method, num_beams=num_beams)
        out[method] = bleu_scores(references, hyps)
        out[method]["examples"] = [{"references": r, "caption": h}
                                   for r, h in list(zip(references, hyps))[:5]]
    return out


def recall_at_k(similarity, relevant, ks=RECALL_AT):
    """Share of queries (rows of `similarity`) with a relevant item among their k best.

    Args:
        similarity: float array `[queries, items]`.
        relevant: bool array `[queries, items]`.
    """
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    return {f"recall@{k}": float(np.mean(hits[:, :k].any(axis=1))) for k in ks}


def chance_recall_at_k(relevant, ks=RECALL_AT):
    """Expected recall@k of a random ranking: per query with m relevant among n items,
    1 - C(n - m, k) / C(n, k), averaged over the queries."""
    from math import comb

    n = relevant.shape[1]
    counts = relevant.sum(axis=1)
    return {f"recall@{k}": float(np.mean([1 - comb(n - m, k) / comb(n, k) for m in counts]))
            for k in ks}


def _retrieve(model, dataset, batch_size, ablate=None):
    from mmzoo.data.text import vectorizer
    from mmzoo.layers.vocab import model_vocabulary
    from mmzoo.models.retrieval import encoders

    images, references = _images_and_references(model, dataset)
    text_encoder, image_encoder = encoders(model)
    texts = [t for refs in references for t in refs]
    # A text matches every image it is a caption of (easy-VQA has many images per caption).
    clean = [t.decode() for t in standardize(tf.constant(texts)).numpy()]
    captions_of = []
    start = 0
    for refs in references:
        captions_of.append(set(clean[start:start + len(refs)]))
        start += len(refs)
    relevant = np.array([[t in caps for caps in captions_of] for t in clean])  # [texts, images]
    tokenize = vectorizer(model_vocabulary(model, "text"),
                          sequence_length=text_encoder.input.shape[1])
    ids = tokenize(tf.constant(texts)).numpy().astype("int32")
    if ablate == "image":
        images = np.zeros_like(images)
    if ablate == "text":
        ids = np.zeros_like(ids)
    v = image_encoder.predict(images, batch_size=batch_size, verbose=0)
    t = text_encoder.predict(ids, batch_size=batch_size, verbose=0)
    similarity = t @ v.T                                   # [texts, images]
    return {"images": len(images), "texts": len(texts),
            "text_to_image": recall_at_k(similarity, relevant),
            "image_to_text": recall_at_k(similarity.T, relevant.T),
            "chance": {"text_to_image": chance_recall_at_k(relevant),
                       "image_to_text": chance_recall_at_k(relevant.T)}}


def evaluate(model, dataset, *, batch_size=64, modality_ablation=False):
    """The task's metrics of `model` on a dataset of raw examples (`mmzoo.data.load`).

    - classification and VQA: accuracy, macro precision / recall / F1, confusion matrix, and
      accuracy per speaker when the examples name one (FSDD);
    - captioning: BLEU-1..4 with greedy and beam decoding, over the unique images, against
      every reference caption of each, and a few example captions;
    - retrieval: recall@1/5/10 text->image and image->text (a text matches every image it is
      a caption of), and the recall a random ranking would get.

    With `modality_ablation=True`, also the same metrics with each input modality zeroed in
    turn (black images, silent audio, empty text; for captioning the image only: its text
    input is the decoder's own prompt), under `ablation`.

    Examples:
    ```python
    test = mmzoo.data.load("fsdd:../shared/data/fsdd", split="test")
    mmzoo.evaluate(model, test)["accuracy"]
    ```
    """
    from mmzoo.registry import get_spec

    spec = get_spec(model.name)
    run = {"classification": _classify, "vqa": _classify, "captioning": _caption,
           "retrieval": _retrieve}[spec.task]
    result = {"model": model.name, "task": spec.task, **run(model, dataset, batch_size)}
    if modality_ablation:
        modalities = ["image"] if spec.task == "captioning" else list(spec.inputs)
        if len(spec.inputs) > 1:
            result["ablation"] = {f"{m}_zeroed": run(model, dataset, batch_size, ablate=m)
                                  for m in modalities}
            for m in modalities:  # keep the figures only
                ablated = result["ablation"][f"{m}_zeroed"]
                for part in (ablated, ablated.get("greedy", {}), ablated.get("beam", {})):
                    for key in ("labels", "confusion_matrix", "examples"):
                        part.pop(key, None)
    return result

