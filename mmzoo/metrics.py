"""Metrics as the field computes them: accuracy / macro precision, recall, F1 / confusion matrix
(scikit-learn); BLEU-1..4 (NLTK's `corpus_bleu`) and CIDEr-D (pycocoevalcap); recall@k; word and
character error rates (`keras_hub.metrics.EditDistance`).

Each is a function of references and predictions, with no model: the tasks (`mmzoo.tasks`)
compute them on a model's outputs, `mmzoo.evaluate` drives them.
"""

from __future__ import annotations

import collections
import warnings
from math import comb

import numpy as np
import tensorflow as tf

from mmzoo.data.text import standardize
from mmzoo.errors import InvalidValue

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
    """Corpus BLEU-1..4 as NLTK's `corpus_bleu` computes it with its defaults.

    N-gram precisions are clipped by each reference and pooled over the corpus, with no
    smoothing (an order without any match gives 0); the brevity penalty compares the corpus'
    hypothesis length with, per hypothesis, the length of the closest reference (the shorter on
    a tie), as the COCO caption evaluation does, so images may have any number of references.
    BLEU-n weighs orders 1..n equally. Texts are split on whitespace as they are:
    `mmzoo.evaluate` standardises captions first (`caption_scores`).

    Args:
        references: list of list of str. The reference texts of each example (at least one).
        hypotheses: list of str. One text per example.

    Returns:
        `{"bleu_1": float, ..., "bleu_4": float}`.

    Examples:
    ```python
    bleu_scores([["a dog runs", "a dog is running"]], ["a dog runs"])["bleu_1"]   # 1.0
    ```
    """
    from nltk.translate.bleu_score import corpus_bleu

    refs, hyps = _tokenized(references, hypotheses)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns when an order has no match: its BLEU is 0
        for n in range(1, 5):
            out[f"bleu_{n}"] = float(corpus_bleu(refs, hyps, weights=(1.0 / n,) * n))
    return out


def cider_d(references, hypotheses):
    """Corpus CIDEr-D as pycocoevalcap computes it (the COCO caption evaluation's `CIDEr`):
    TF-IDF weighted 1..4-gram cosine similarity with clipped counts and a Gaussian length
    penalty (sigma 6), averaged over references, times 10. Document frequencies come from the
    references of the corpus given, so score a whole evaluation split at once.

    Args:
        references: list of list of str. The reference texts of each example, whitespace-split.
        hypotheses: list of str. One text per example.

    Examples:
    ```python
    cider_d([["a dog runs", "a dog is running"], ["a red car"]], ["a dog runs", "a car"])
    ```
    """
    from pycocoevalcap.cider.cider import Cider

    refs, hyps = _tokenized(references, hypotheses)
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def _tokenized(references, hypotheses):
    if len(references) != len(hypotheses):
        raise InvalidValue(f"{len(references)} reference lists for {len(hypotheses)} "
                           "hypotheses; give one list of references per hypothesis")
    empty = [i for i, r in enumerate(references) if not len(r)]
    if empty:
        raise InvalidValue(f"examples {empty[:10]} have no reference text; each needs one")
    return ([[str(r).split() for r in rs] for rs in references],
            [str(h).split() for h in hypotheses])


def standardized(texts):
    """`texts` as the models read them (`mmzoo.data.text.standardize`), as Python strings."""
    if not len(texts):
        return []
    return [t.decode() for t in standardize(tf.constant(list(texts), tf.string)).numpy()]


def caption_scores(references, hypotheses):
    """BLEU-1..4 (`bleu_scores`) and CIDEr-D (`cider_d`, under the key `cider_d`) of captions,
    after standardising every text as the models read text (lower case; any run of characters
    other than letters and digits separates words, so punctuation is not a word)."""
    refs = [standardized(r) for r in references]
    hyps = standardized(hypotheses)
    return {**bleu_scores(refs, hyps), "cider_d": cider_d(refs, hyps)}


def unique_share(captions):
    """Share of captions that no other image got (standardised): 1.0 when every image has a
    caption of its own, 0.0 when the model says one caption for everything."""
    clean = standardized(captions)
    counts = collections.Counter(clean)
    return float(np.mean([counts[c] == 1 for c in clean])) if clean else 0.0


def constant_caption(references, *, candidates=50):
    """The best single caption by BLEU-4 on `references`: the baseline a captioner must beat.

    An image-blind "model" that says one caption for every image scores surprisingly well on
    BLEU (a generic `a dog is running through the grass` matches many n-grams), so caption
    figures are reported against it. Every distinct reference is a candidate: each gets a quick
    estimate of its corpus BLEU-4 (for each n, the average share of images whose references
    hold each of its n-grams, the geometric mean of those, times the brevity penalty against
    the mean reference length), and the `candidates` best by that estimate are scored with NLTK's
    `corpus_bleu` (`bleu_scores`); the best is returned. Pass the training split's captions,
    then score the chosen caption on the evaluation split with `caption_scores`.

    Args:
        references: list of list of str. The reference captions of each image.
        candidates: int. How many of the best-estimated captions to score exactly.

    Returns:
        The chosen caption (str), standardised.

    Examples:
    ```python
    fixed = constant_caption(train_references)
    caption_scores(dev_references, [fixed] * len(dev_references))
    ```
    """
    refs = [standardized(r) for r in references]
    images = len(refs)
    df = collections.Counter()
    for rs in refs:
        df.update({g for r in rs for g in _ngrams(r.split())})
    mean_length = float(np.mean([len(r.split()) for rs in refs for r in rs]))

    def estimate(caption):
        words = caption.split()
        if len(words) < 4:
            return 0.0
        grams = _ngrams(words)
        logs = []
        for n in range(1, 5):
            shares = [df[g] / images for g in grams if len(g) == n]
            logs.append(np.log(max(np.mean(shares), 1e-9)))
        penalty = min(1.0, np.exp(1 - mean_length / len(words)))
        return penalty * float(np.exp(np.mean(logs)))

    pool = sorted({c for rs in refs for c in rs}, key=estimate, reverse=True)[:candidates]
    scored = [(bleu_scores(refs, [c] * images)["bleu_4"], c) for c in sorted(pool)]
    return max(scored)[1]


def _ngrams(words):
    return [tuple(words[i:i + n]) for n in range(1, 5) for i in range(len(words) - n + 1)]


def speech_scores(references, hypotheses):
    """Word and character error rates and the exact-utterance rate of transcripts.

    WER is the word-level edit distance (substitutions, deletions, insertions) summed over the
    corpus and divided by the number of reference words, as `keras_hub.metrics.EditDistance`
    (`normalize=True`) and the field compute it; CER the same over characters (spaces
    included). Texts are standardised as the models read them first (lower case, any run of
    characters other than letters and digits one space).

    Args:
        references: list of str. One reference transcript per utterance.
        hypotheses: list of str. One transcript per utterance.

    Returns:
        `{"utterances", "words", "wer", "cer", "exact"}`.

    Examples:
    ```python
    speech_scores(["three one four"], ["three one five"])["wer"]   # 0.333...
    ```
    """
    import keras_hub

    if len(references) != len(hypotheses):
        raise InvalidValue(f"{len(references)} references for {len(hypotheses)} hypotheses")
    refs, hyps = standardized(references), standardized(hypotheses)
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:  # no words to be wrong about: the rates are undefined there, never 0
        raise InvalidValue(f"{len(empty)} reference(s) have no words once standardised (the "
                           f"first is #{empty[0]}: {references[empty[0]]!r}); WER and CER "
                           "divide by the reference's words: leave those utterances out")
    out = {"utterances": len(refs), "words": sum(len(r.split()) for r in refs)}
    for key, units in (("wer", str.split), ("cer", list)):
        metric = keras_hub.metrics.EditDistance(normalize=True)
        if refs:
            metric.update_state(tf.ragged.constant([units(r) for r in refs], dtype=tf.string),
                                tf.ragged.constant([units(h) for h in hyps], dtype=tf.string))
        out[key] = float(metric.result())
    out["exact"] = float(np.mean([r == h for r, h in zip(refs, hyps)])) if refs else 0.0
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
    return _chance(relevant.sum(axis=1), relevant.shape[1], ks)


def _chance(counts, n, ks):
    """`chance_recall_at_k` of queries with `counts` relevant items each among `n` (a k past
    `n` ranks every item)."""
    return {f"recall@{k}": float(np.mean([1 - comb(n - int(m), min(k, n)) / comb(n, min(k, n))
                                          for m in counts]))
            for k in ks}


SIMILARITY_BLOCK = 2**22  # similarities computed at once by `recall_at_k_blocked` (16 MB)


def recall_at_k_blocked(queries, items, query_keys, item_keys, ks=RECALL_AT, block=1024):
    """`recall_at_k` of embeddings, a block of queries at a time: peak memory is a block of the
    similarity matrix (`block` rows, fewer when there are so many items that the block would
    hold more than `SIMILARITY_BLOCK`, 4M, similarities), never the whole `[queries, items]`
    one, and relevance is a set of `(key, item)` pairs rather than a matrix.

    Query `q` is relevant to item `i` when `query_keys[q]` is among `item_keys[i]` (a text and
    the images it is a caption of). Ties rank the lower index first, as `recall_at_k` does.

    Args:
        queries: float array `[queries, dim]`.
        items: float array `[items, dim]`. Similarity is the dot product.
        query_keys: int array `[queries]`.
        item_keys: list of int arrays, one per item.
        ks: the k of recall@k.
        block: int. Queries per block.

    Returns:
        `{"recall@k": float}`, and under `"chance"` what a random ranking would get.
    """
    n = len(items)
    # at most SIMILARITY_BLOCK similarities at once: with many items, fewer queries per block
    block = max(1, min(block, SIMILARITY_BLOCK // max(n, 1)))
    query_keys = np.asarray(query_keys, np.int64)
    pairs = np.unique(np.concatenate(
        [np.asarray(keys, np.int64) * n + i for i, keys in enumerate(item_keys)] or
        [np.zeros(0, np.int64)]))
    items = tf.constant(np.asarray(items, np.float32))
    top = min(max(ks), n)
    hits = np.zeros((len(queries), top), bool)
    for start in range(0, len(queries), block):
        similarity = tf.matmul(tf.constant(np.asarray(queries[start:start + block], np.float32)),
                               items, transpose_b=True)
        best = tf.math.top_k(similarity, k=top, sorted=True).indices.numpy()
        codes = query_keys[start:start + block, None] * n + best
        hits[start:start + block] = np.isin(codes, pairs)
    pair_keys = pairs // n
    key_values, key_counts = np.unique(pair_keys, return_counts=True)
    relevant = np.zeros(len(query_keys), np.int64)
    found = np.isin(query_keys, key_values)
    relevant[found] = key_counts[np.searchsorted(key_values, query_keys[found])]
    out = {f"recall@{k}": float(np.mean(hits[:, :k].any(axis=1))) for k in ks}
    return {**out, "chance": _chance(relevant, n, ks)}


def retrieval_scores(text_embeddings, image_embeddings, references):
    """Recall@k both ways of text and image embeddings (`recall_at_k_blocked`), the texts being
    the images' `references` (a list of lists of captions) flattened in order.

    A text matches every image it is a caption of (easy-VQA has many images per caption):
    each standardised caption is a key, and an image holds the keys of its captions.
    """
    t, v = text_embeddings, image_embeddings
    texts = [c for refs in references for c in refs]
    clean = standardized(texts)
    key_of = {c: i for i, c in enumerate(dict.fromkeys(clean))}
    text_keys = np.array([key_of[c] for c in clean], np.int64)
    image_keys, start = [], 0
    for refs in references:
        image_keys.append(np.unique(text_keys[start:start + len(refs)]))
        start += len(refs)
    # image -> text: image i is relevant to text j when j's key is one of i's keys, so each
    # text's "keys" are the images that hold its key
    images_by_key = collections.defaultdict(list)
    for i, keys in enumerate(image_keys):
        for key in keys:
            images_by_key[key].append(i)
    images_of_text = [np.asarray(images_by_key[key], np.int64) for key in text_keys]
    text_to_image = recall_at_k_blocked(t, v, text_keys, image_keys)
    image_to_text = recall_at_k_blocked(v, t, np.arange(len(v)), images_of_text)
    return {"images": len(v), "texts": len(texts),
            "text_to_image": {k: x for k, x in text_to_image.items() if k != "chance"},
            "image_to_text": {k: x for k, x in image_to_text.items() if k != "chance"},
            "chance": {"text_to_image": text_to_image["chance"],
                       "image_to_text": image_to_text["chance"]}}


__all__ = ["RECALL_AT", "bleu_scores", "caption_scores", "chance_recall_at_k", "cider_d",
           "classification_metrics", "constant_caption", "recall_at_k", "recall_at_k_blocked",
           "retrieval_scores", "speech_scores", "standardized", "unique_share"]
