"""The metric functions against hand-computed values."""

import sys

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


@pytest.mark.filterwarnings("ignore:\\nThe hypothesis contains 0 counts")
def test_bleu_equals_nltk_corpus_bleu_on_random_corpora():
    """200 random corpora of 1-12 hypotheses with 1-7 references each (COCO has 5-7), words
    from a small vocabulary so n-grams match: BLEU-1..4 equal NLTK's corpus_bleu with its
    defaults (closest reference length for the brevity penalty, no smoothing) to 1e-6."""
    from nltk.translate.bleu_score import corpus_bleu

    rng = np.random.default_rng(0)
    words = "a dog man runs on the grass red ball plays with in park".split()

    def sentence():
        return " ".join(rng.choice(words, rng.integers(1, 12)))

    nonzero = 0
    for _ in range(200):
        n = int(rng.integers(1, 13))
        refs = [[sentence() for _ in range(rng.integers(1, 8))] for _ in range(n)]
        hyps = [sentence() for _ in range(n)]
        ours = bleu_scores(refs, hyps)
        for order in range(1, 5):
            expected = corpus_bleu([[r.split() for r in rs] for rs in refs],
                                   [h.split() for h in hyps], weights=(1 / order,) * order)
            assert ours[f"bleu_{order}"] == pytest.approx(expected, abs=1e-6), (refs, hyps)
        nonzero += ours["bleu_4"] > 0
    assert nonzero > 20  # the cases reach 4-gram matches, not only zeros


def test_bleu_brevity_penalty_uses_the_closest_real_reference():
    # Unequal reference counts: the second image has one reference, the first two. A padded
    # empty reference would be the "closest" length for short hypotheses and lift BLEU.
    refs = [["a man rides a red bike down the hill", "a man on a bike"],
            ["two dogs play with a ball in the park"]]
    hyps = ["a man on a bike", "dogs play"]
    one_ref = bleu_scores([refs[0][:1], refs[1]], hyps)
    two_refs = bleu_scores(refs, hyps)
    # by hand: clipped unigram matches 5 + 2 of 7 words; closest references 5 and 9 words long
    bp = np.exp(1 - 14 / 7)
    assert two_refs["bleu_1"] == pytest.approx(bp * 7 / 7, abs=1e-6)
    assert one_ref["bleu_1"] < two_refs["bleu_1"] < 0.5


def test_caption_scores_standardise_and_add_cider_d():
    from pycocoevalcap.cider.cider import Cider

    from mmzoo.evaluate import caption_scores, cider_d

    refs = [["A blue circle.", "a blue ring"], ["a red square"], ["A GREEN triangle!"]]
    perfect = caption_scores(refs, ["a blue circle", "a red square", "a green triangle"])
    assert perfect["bleu_1"] == pytest.approx(1.0) and perfect["bleu_3"] == pytest.approx(1.0)
    assert perfect["bleu_4"] < 1e-9  # no 4-grams to match: NLTK gives 0 (or 1e-77)
    clean = [["a blue circle", "a blue ring"], ["a red square"], ["a green triangle"]]
    hyps = ["a blue square", "a red square", "a circle"]
    expected, _ = Cider().compute_score({i: r for i, r in enumerate(clean)},
                                        {i: [h] for i, h in enumerate(hyps)})
    assert cider_d(clean, hyps) == pytest.approx(expected)
    assert caption_scores(refs, hyps)["cider_d"] == pytest.approx(expected)
    constant = cider_d(clean, ["a red square"] * 3)
    assert perfect["cider_d"] > 2 * constant > 0  # one caption for every image scores low


def test_bleu_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 reference lists for 1 hypotheses"):
        bleu_scores([["a"], ["b"]], ["a"])
    with pytest.raises(ValueError, match=r"examples \[1\] have no reference text"):
        bleu_scores([["a"], []], ["a", "b"])


def test_chance_recall():
    from mmzoo.evaluate import chance_recall_at_k

    relevant = np.zeros((2, 10), dtype=bool)
    relevant[0, 0] = True          # one relevant of 10: k / 10
    relevant[1, :5] = True         # five of 10: 1 - C(5, k) / C(10, k)
    r = chance_recall_at_k(relevant, ks=(1, 2))
    assert r["recall@1"] == pytest.approx((0.1 + 0.5) / 2)
    assert r["recall@2"] == pytest.approx((0.2 + (1 - 10 / 45)) / 2)


def test_unique_share_counts_images_with_a_caption_of_their_own():
    from mmzoo.evaluate import unique_share

    assert unique_share(["A dog runs.", "a dog runs", "a cat", "a bird"]) == 0.5
    assert unique_share(["same"] * 4) == 0.0


def test_constant_caption_is_the_best_fixed_caption_by_corpus_bleu():
    from mmzoo.evaluate import bleu_scores, constant_caption

    rng = np.random.default_rng(3)
    words = "a the dog man runs sits on in grass water red ball".split()
    refs = [[" ".join(rng.choice(words, rng.integers(4, 9))) for _ in range(3)]
            for _ in range(30)]
    pool = sorted({r for rs in refs for r in rs})
    best = max(bleu_scores(refs, [c] * len(refs))["bleu_4"] for c in pool)
    chosen = constant_caption(refs, candidates=len(pool))
    assert bleu_scores(refs, [chosen] * len(refs))["bleu_4"] == best > 0
    few = constant_caption(refs, candidates=5)   # the estimate's top 5 only
    assert bleu_scores(refs, [few] * len(refs))["bleu_4"] <= best


def test_blocked_recall_equals_recall_over_the_whole_matrix(monkeypatch):
    """Retrieval recall a block of queries at a time, relevance as (key, item) pairs: the same
    recall@k and chance as `recall_at_k` over the whole similarity matrix, with captions shared
    by several images (as easy-VQA's are) and blocks that do not divide the queries."""
    from mmzoo.evaluate import chance_recall_at_k, recall_at_k_blocked

    rng = np.random.default_rng(0)
    images, dim = 37, 8
    image_keys = [np.unique(rng.integers(0, 15, rng.integers(1, 4))) for _ in range(images)]
    text_keys = np.concatenate(image_keys)                 # each image's captions, in order
    texts = rng.normal(size=(len(text_keys), dim))
    embeddings = rng.normal(size=(images, dim))
    relevant = np.array([[k in keys for keys in image_keys] for k in text_keys])
    for ks in ((1, 5, 10), (1, 50)):                       # 50: more than there are images
        got = recall_at_k_blocked(texts, embeddings, text_keys, image_keys, ks=ks, block=7)
        want = recall_at_k(texts @ embeddings.T, relevant, ks=ks)
        assert {k: v for k, v in got.items() if k != "chance"} == pytest.approx(want)
        assert got["chance"] == pytest.approx(chance_recall_at_k(relevant, ks=ks))
    # image -> text: an image's relevant texts are the ones holding one of its keys
    images_of_text = [np.nonzero(relevant[j])[0] for j in range(len(text_keys))]
    got = recall_at_k_blocked(embeddings, texts, np.arange(images), images_of_text, block=5)
    want = recall_at_k(embeddings @ texts.T, relevant.T)
    assert {k: v for k, v in got.items() if k != "chance"} == pytest.approx(want)
    assert got["chance"] == pytest.approx(chance_recall_at_k(relevant.T))
    # many items: the block shrinks to keep its similarities under the limit (here 3 rows)
    monkeypatch.setattr(sys.modules["mmzoo.metrics"], "SIMILARITY_BLOCK", 3 * len(texts))
    assert recall_at_k_blocked(embeddings, texts, np.arange(images), images_of_text,
                               block=1024) == got


def test_evaluation_reads_a_split_once(data_dir, tmp_path, monkeypatch):
    """Accuracy by speaker comes with the predictions: each recording is decoded once (it was
    read a second time for the speakers)."""
    import os

    import mmzoo
    from mmzoo.data import fsdd as fsdd_source

    root = tmp_path / "fsdd"
    root.mkdir()
    names = sorted(os.listdir(os.path.join(data_dir, "fsdd", "recordings")))[::50]
    for name in names:
        os.symlink(os.path.join(data_dir, "fsdd", "recordings", name), root / name)
    read = []
    real = fsdd_source.read_audio
    monkeypatch.setattr(fsdd_source, "read_audio",
                        lambda path, rate: read.append(path) or real(path, rate))
    model = mmzoo.build("audio_mfcc_cnn", **{
        **mmzoo.registry.get_spec("audio_mfcc_cnn").test_config,
        "labels": tuple(str(d) for d in range(10))})
    test = mmzoo.data.load(f"fsdd:{root}", split="test")
    result = mmzoo.evaluate(model, test, batch_size=4)
    assert result["examples"] == len(read) == len(set(read)) > 4
    assert sum(result["confusion_matrix"], []) and set(result["accuracy_by_speaker"])


def test_the_evaluation_table_reads_per_class_figures_and_learned_nothing():
    from mmzoo.evaluate import classification_metrics, learned_nothing, table

    result = {"model": "m", "task": "classification", "data": "csv:x.csv", "split": "test",
              **classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0],
                                       ["cat", "dog", "eel"])}
    lines = table(result).splitlines()
    assert lines[0] == "m (classification) on csv:x.csv (test split): 6 examples"
    assert ["cat", "0.6667", "0.6667", "3"] in [line.split() for line in lines]
    assert ["eel", "0.0000", "0.0000", "1"] in [line.split() for line in lines]
    assert learned_nothing(result) is None  # 4/6 beats always answering "cat" (3/6)
    result = {**result, **classification_metrics([0, 0, 0, 1, 1, 2], [1, 0, 1, 0, 2, 0],
                                                  ["cat", "dog", "eel"])}
    assert learned_nothing(result).startswith(
        "m learned nothing: its accuracy 0.167 is no better than always answering 'cat' (0.500)")
