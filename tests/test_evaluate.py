"""The metric functions against hand-computed values."""

import numpy as np
import pytest

from mmzoo.evaluate import bleu_scores, classification_metrics, recall_at_k


def test_classification_metrics():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # per class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    assert m["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1 = [2 * p * r / (p + r) for p, r in ((1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2))]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_recall_at_k():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.2, 0.3]])
    relevant = np.eye(3, dtype=bool)
    r = recall_at_k(similarity, relevant, ks=(1, 2, 3))
    # query 0 finds item 0 first; query 1 ranks item 1 second; query 2 ranks item 2 first
    assert r == {"recall@1": pytest.approx(2 / 3), "recall@2": 1.0, "recall@3": 1.0}


def test_bleu():
    refs = [["A blue circle.", "a blue ring"], ["a red square"]]
    perfect = bleu_scores(refs, ["a blue circle", "a red square"])  # case and "." ignored
    assert perfect["bleu_1"] == pytest.approx(1.0) and perfect["bleu_3"] == pytest.approx(1.0)
    assert perfect["bleu_4"] == 0.0  # three-word captions have no 4-grams to match
    assert bleu_scores([["a big blue circle here"]], ["a big blue circle here"])["bleu_4"] == 1.0
    half = bleu_scores([["a blue circle"]], ["a red circle"])
    assert half["bleu_1"] == pytest.approx(2 / 3, abs=1e-4)


def test_chance_recall():
    from mmzoo.evaluate import chance_recall_at_k

    relevant = np.zeros((2, 10), dtype=bool)
    relevant[0, 0] = True          # one relevant of 10: k / 10
    relevant[1, :5] = True         # five of 10: 1 - C(5, k) / C(10, k)
    r = chance_recall_at_k(relevant, ks=(1, 2))
    assert r["recall@1"] == pytest.approx((0.1 + 0.5) / 2)
    assert r["recall@2"] == pytest.approx((0.2 + (1 - 10 / 45)) / 2)
