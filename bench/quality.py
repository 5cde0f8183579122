"""Quality runs: each model family trained and evaluated on real data from the command line.

Run by hand (never a timed test):

    python bench/quality.py --model audio_mfcc_cnn          # one recipe
    python bench/quality.py --all                           # every recipe, one after another

Each recipe is `mmzoo train NAME --data SOURCE --epochs N` with the model's DEFAULT config (the
defaults are what is tuned, never a benchmark-only config), then `mmzoo evaluate` on the held-out
split (with `--modality-ablation` for multimodal models). The training wall time, the metrics
and whether the target is met go to bench/results/quality_<recipe>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import user_data  # noqa: E402
from common import DATA, read_result, shown, write_result  # noqa: E402


def _get(result, path):
    for key in path.split("."):
        result = result[key]
    return result


# The ImageNet MobileNet v1 (alpha 0.25) of ../shared/data/weights, frozen: the pretrained recipes.
MOBILENET = ("image_encoder=mobilenet", "image_alpha=0.25", "image_size=224",
             "image_weights={data}/weights/mobilenet_v1_0.25_224_imagenet_no_top.h5")

# Speech: FSDD's five speakers, and the same with one speaker (jackson) held out of training.
HELD_OUT = "jackson"
SEEN = "george,lucas,nicolas,yweweler"

# recipe name -> (model, data source, epochs, batch size, evaluation split, target[, --set[,
# evaluation source]])
# target: (metric path in the evaluation JSON, minimum), a list of them, or None (reported
# only); a target (metric, bound, "max") is a maximum (error rates)
RECIPES = {
    "audio_mfcc_cnn": ("audio_mfcc_cnn", "fsdd:{data}/fsdd", 30, 64, "test", ("accuracy", 0.99)),
    "audio_mfcc_lstm": ("audio_mfcc_lstm", "fsdd:{data}/fsdd", 30, 64, "test", None),
    "text_word_vector_mlp": ("text_word_vector_mlp", "csv:{data}/ag_news/news.csv", 10, 32,
                             "test", ("accuracy", 0.88)),
    "text_lstm": ("text_lstm", "csv:{data}/ag_news/news.csv", 10, 32, "test", None),
    "text_transformer": ("text_transformer", "csv:{data}/ag_news/news.csv", 10, 32, "test",
                         None),
    # fastText's word and word-pair vectors: a linear model, so more epochs at Adam's rate;
    # its target is the TF-IDF + linear SVM row's accuracy on the same rows (`BASELINES`)
    "text_fasttext": ("text_fasttext", "csv:{data}/ag_news/news.csv", 15, 32, "test",
                      ("accuracy", "tfidf_svm_ag_news")),
    "vqa_cnn_lstm": ("vqa_cnn_lstm", "easy_vqa", 20, 64, "test", ("accuracy", 0.995)),
    "text_image_concat": ("text_image_concat", "easy_vqa", 20, 64, "test", None),
    "late_fusion_classifier": ("late_fusion_classifier", "easy_vqa", 8, 64, "test", None),
    "trimodal_classifier": ("trimodal_classifier", "digit_qa:{data}/fsdd", 20, 64, "test", None),
    "caption_lstm": ("caption_lstm", "easy_vqa", 8, 64, "test", ("beam.bleu_4", 0.95)),
    "dual_encoder": ("dual_encoder", "easy_vqa", 8, 64, "test", None),
    # Flickr8k's official dev photos are the test split here (`dev_as_test`): the best epoch
    # is picked on 1 in 10 training photos held out, never on the photos reported
    "caption_lstm_flickr8k": ("caption_lstm", "captions:{flickr8k_dev_as_test}", 30, 64,
                              "test", [("beam.bleu_4", 0.10),
                                       ("beam.unique_captions", 0.25)], MOBILENET),
    "dual_encoder_flickr8k": ("dual_encoder", "captions:{flickr8k_dev_as_test}", 30, 64,
                              "test", [("text_to_image.recall@10", 0.45)], MOBILENET),
    "speech_ctc": ("speech_ctc", "digit_sequences:{data}/fsdd", 30, 64, "test",
                   [("greedy.wer", 0.05, "max"), ("served.wer", 0.05, "max")]),
    "speech_ctc_transformer": ("speech_ctc_transformer", "digit_sequences:{data}/fsdd", 30, 64,
                               "test", None),
    "speech_ctc_unseen_speaker": ("speech_ctc", "digit_sequences:{data}/fsdd?speakers=" + SEEN,
                                  30, 64, "test", None, (),
                                  "digit_sequences:{data}/fsdd?speakers=" + HELD_OUT),
    # users' own layouts (bench/user_data.py arranges the shared data in them): a table of
    # Flickr8k photo-caption pairs (match or mismatch; test: official dev photos, never trained
    # on), FSDD one folder per spoken word, easy-VQA images one folder per shape
    "text_image_concat_flickr8k_pairs": ("text_image_concat", "csv:{flickr8k_pairs}", 20, 64,
                                         "test", None, MOBILENET),
    "text_image_product_flickr8k_pairs": ("text_image_concat", "csv:{flickr8k_pairs}", 20, 64,
                                          "test", None, (*MOBILENET, "fusion=product")),
    "text_image_attention_flickr8k_pairs": ("text_image_concat", "csv:{flickr8k_pairs}", 20, 64,
                                            "test", None, (*MOBILENET, "fusion=attention")),
    "text_image_gated_flickr8k_pairs": ("text_image_concat", "csv:{flickr8k_pairs}", 20, 64,
                                        "test", None, (*MOBILENET, "fusion=gated")),
    "text_image_sum_flickr8k_pairs": ("text_image_concat", "csv:{flickr8k_pairs}", 20, 64,
                                      "test", None, (*MOBILENET, "fusion=sum")),
    "audio_mfcc_cnn_word_folders": ("audio_mfcc_cnn", "audio:{fsdd_by_word}", 30, 64, "test",
                                    ("accuracy", 0.99)),
    "image_classifier_shape_folders": ("image_classifier", "images:{easy_vqa_by_shape}", 10, 64,
                                       "test", ("accuracy", 0.97)),
    # the same with the earlier defaults (characters, per-utterance normalisation): the
    # comparison behind today's defaults
    "speech_ctc_unseen_speaker_characters": (
        "speech_ctc", "digit_sequences:{data}/fsdd?speakers=" + SEEN, 30, 64, "test", None,
        ("unit=characters", "normalization=utterance"),
        "digit_sequences:{data}/fsdd?speakers=" + HELD_OUT),
}
# Baselines outside mmzoo, trained on the same rows: name -> (data source, evaluation split).
# TF-IDF (words, or words and word pairs) + a linear SVM (scikit-learn), its n-grams and C
# chosen on the validation split, as text classification papers report the linear baseline.
BASELINES = {"tfidf_svm_ag_news": ("csv:{data}/ag_news/news.csv", "test")}
SVM_GRID = {"ngram_range": ((1, 1), (1, 2)), "C": (0.1, 0.3, 1.0, 3.0)}

MULTIMODAL = {"vqa_cnn_lstm", "text_image_concat", "late_fusion_classifier",
              "trimodal_classifier", "caption_lstm", "dual_encoder"}


def dev_as_test(out_root):
    """`flickr8k_1k` with its official dev photos as the `test` split and no validation split
    (so `mmzoo train` picks the best epoch on 1 in 10 training photos held out): a folder under
    `out_root` linking to the shared photos and captions, with its own `splits.txt`. The shared
    data is only read."""
    source = os.path.join(DATA, "flickr8k_1k")
    folder = os.path.join(out_root, "flickr8k_1k_dev_as_test")
    os.makedirs(folder, exist_ok=True)
    for name in ("Images", "captions.txt"):
        link, target = os.path.join(folder, name), os.path.abspath(os.path.join(source, name))
        if os.path.islink(link) and os.readlink(link) != target:
            os.remove(link)  # a link of an earlier run, to shared data elsewhere
        if not os.path.lexists(link):
            os.symlink(target, link)
    with open(os.path.join(source, "splits.txt"), newline="") as f:
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    renamed = {"dev": "test", "validation": "test", "val": "test"}
    text = "".join(f"{image},{renamed.get(split.strip(), split.strip())}\n"
                   for image, split in rows if image != "image")
    with open(os.path.join(folder, "splits.txt"), "w") as f:
        f.write("image,split\n" + text)
    return folder


# data arranged for a recipe: placeholder -> what makes it under the output folder
ARRANGED = {"flickr8k_dev_as_test": dev_as_test, "flickr8k_pairs": user_data.flickr8k_pairs,
            "fsdd_by_word": user_data.fsdd_by_word,
            "easy_vqa_by_shape": user_data.easy_vqa_by_shape}


def _formatted(text, out_root):
    for key, make in ARRANGED.items():
        if "{" + key + "}" in text:
            return text.replace("{" + key + "}", make(out_root))
    return text.format(data=DATA)


def tfidf_svm(name):
    """The TF-IDF + linear SVM baseline `name` of `BASELINES`: fit on the source's `train`
    split, each setting of `SVM_GRID` scored on `validation`, the best one on the evaluation
    split. Writes bench/results/quality_NAME.json."""
    import itertools
    import warnings

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    import mmzoo

    source, split = BASELINES[name]
    source = source.format(data=DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = mmzoo.data.open_source(source)

    def rows(part):
        examples = list(src.dataset(part, decode=False).as_numpy_iterator())
        return ([e["text"].decode() for e in examples],
                np.array([e["label"].decode() for e in examples]))

    start = time.perf_counter()
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = map(rows, ("train", "validation",
                                                                        split))
    tried = []
    for ngrams, c in itertools.product(SVM_GRID["ngram_range"], SVM_GRID["C"]):
        vectorizer = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True)
        svm = LinearSVC(C=c).fit(vectorizer.fit_transform(train_x), train_y)
        accuracy = float(np.mean(svm.predict(vectorizer.transform(val_x)) == val_y))
        tried.append({"ngram_range": list(ngrams), "C": c, "validation_accuracy": accuracy,
                      "model": (vectorizer, svm)})
    best = max(tried, key=lambda t: t["validation_accuracy"])
    vectorizer, svm = best.pop("model")
    accuracy = float(np.mean(svm.predict(vectorizer.transform(test_x)) == test_y))
    for t in tried:
        t.pop("model", None)
    result = {"recipe": name, "model": "TF-IDF + linear SVM (scikit-learn)", "data": source,
              "split": split, "epochs": 0, "batch_size": 0,
              "train_seconds": round(time.perf_counter() - start, 1),
              "command": "python bench/quality.py --model " + name,
              "metrics": {"task": "classification", "accuracy": accuracy,
                          "examples": len(test_y), "chosen": best, "grid": tried,
                          "train_rows": len(train_y), "validation_rows": len(val_y)}}
    write_result(f"quality_{name}", result)
    print(f"{name}: {split} accuracy {accuracy:.4f} ({best})")
    return result


def run(recipe, out_root):
    if recipe in BASELINES:
        return tfidf_svm(recipe)
    model, source, epochs, batch, split, target, *rest = RECIPES[recipe]
    sets = [v.format(data=DATA) for v in (rest[0] if rest else ())]
    source = _formatted(source, out_root)
    evaluated = _formatted(rest[1], out_root) if len(rest) > 1 else source
    run_dir = os.path.join(out_root, recipe)
    cli = [sys.executable, "-m", "mmzoo.cli"]
    flags = [x for v in sets for x in ("--set", v)]
    start = time.perf_counter()
    subprocess.run(cli + ["train", model, "--data", source, "--epochs", str(epochs),
                          "--batch-size", str(batch), "--out", run_dir, "--overwrite", *flags],
                   check=True)
    train_seconds = time.perf_counter() - start
    evaluate = cli + ["evaluate", run_dir, "--data", evaluated, "--split", split, "--json"]
    if model in MULTIMODAL:
        evaluate.append("--modality-ablation")
    out = subprocess.run(evaluate, check=True, capture_output=True, text=True)
    metrics = json.loads(out.stdout)
    if metrics["task"] == "transcription":
        metrics["served"] = served_transcripts(run_dir, evaluated, split)
    result = {"recipe": recipe, "model": model, "data": source, "epochs": epochs,
              "batch_size": batch, "split": split, "train_seconds": round(train_seconds, 1),
              "command": f"mmzoo train {model} --data {source} --epochs {epochs} "
                         f"--batch-size {batch}" + "".join(f" --set {v}" for v in sets),
              "metrics": metrics}
    if evaluated != source:
        result["evaluated_on"] = evaluated
    targets = [target] if isinstance(target, tuple) else list(target or [])
    for i, (metric, bound, *kind) in enumerate(targets):
        if isinstance(bound, str):  # another row's figure: a baseline measured first
            baseline = read_result(f"quality_{bound}")
            if baseline is None:
                raise SystemExit(f"{recipe}'s target is {bound}'s {metric}: run "
                                 f"python bench/quality.py --model {bound} first")
            targets[i] = (metric, float(_get(baseline["metrics"], metric)), *kind)
            result["baseline"] = {"recipe": bound, metric: targets[i][1],
                                  "measured": baseline["measured"]}
    if "beam" in metrics and recipe.endswith("flickr8k"):
        result["baseline"] = constant_caption_baseline(source, split)
        targets.append(("beam.cider_d", 2 * result["baseline"]["scores"]["cider_d"]))
    if targets:
        result["targets"] = []
        for metric, bound, *kind in targets:
            value = float(_get(metrics, metric))
            if kind == ["max"]:
                result["targets"].append({"metric": metric, "maximum": round(bound, 4),
                                          "value": value, "met": value <= bound})
            else:
                result["targets"].append({"metric": metric, "minimum": round(bound, 4),
                                          "value": value, "met": value >= bound})
    write_result(f"quality_{recipe}", result)
    print(f"{recipe}: trained in {train_seconds:.0f} s; " + "; ".join(
        f"{t['metric']} = {t['value']:.4f} (target {_bound(t)}, "
        f"{'met' if t['met'] else 'NOT met'})" for t in result.get("targets", [])))
    return result


def _bound(target):
    return f"<= {target['maximum']}" if "maximum" in target else f">= {target['minimum']}"


def served_transcripts(run_dir, source, split):
    """The run exported, then served by TensorFlow alone through `serving_default` (beam
    search), one test waveform at a time (as a user calls it): WER, CER and exact rate, and a
    few transcripts."""
    import tensorflow as tf

    import mmzoo
    from mmzoo.evaluate import speech_scores

    export = os.path.join(run_dir, "export")
    subprocess.run([sys.executable, "-m", "mmzoo.cli", "export", run_dir, "--out", export],
                   check=True, capture_output=True)
    serve = tf.saved_model.load(export).signatures["serving_default"]
    refs, hyps = [], []
    start = time.perf_counter()
    for e in mmzoo.data.load(source, split=split).as_numpy_iterator():
        out = serve(audio=tf.constant(e["audio"][None]))["transcript"].numpy()[0].decode()
        refs.append(e["transcript"].decode())
        hyps.append(out)
    seconds = time.perf_counter() - start
    return {**speech_scores(refs, hyps), "decoder": "beam",
            "seconds_per_utterance": round(seconds / len(refs), 4),
            "examples": [{"reference": r, "transcript": h} for r, h in zip(refs[:8], hyps[:8])]}


def constant_caption_baseline(source, split):
    """The best single caption chosen on the training captions
    (`from mmzoo.evaluate import constant_caption`), scored on `split` like the model's captions."""
    import warnings

    import mmzoo
    from mmzoo.evaluate import caption_scores, constant_caption

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = mmzoo.data.open_source(source)

    def references(name):
        return [[c.decode() for c in e["captions"]]
                for e in src.dataset(name, decode=False).as_numpy_iterator()]

    caption = constant_caption(references("train"))
    evaluated = references(split)
    return {"caption": caption, "chosen_on": "train",
            "scores": caption_scores(evaluated, [caption] * len(evaluated))}


def _pct(x):
    return f"{100 * x:.2f}%"


def _speech_summary(result):
    m = result["metrics"]
    g, b, s = m["greedy"], m["beam"], m["served"]
    # the export served greedy decoding until beam search became `serving_default`
    served = s.get("decoder", "greedy")
    measured = (f"WER greedy **{_pct(g['wer'])}**, beam {_pct(b['wer'])}, served ({served}) one "
                f"waveform at a time {_pct(s['wer'])}; CER greedy {_pct(g['cer'])}; exact "
                f"utterances {_pct(g['exact'])} ({g['utterances']} utterances, {g['words']} "
                "words); WER per speaker " + ", ".join(f"{k} {_pct(v['wer'])}"
                                       for k, v in sorted(g.get("by_speaker", {}).items())))
    if result.get("evaluated_on"):
        measured += " (speaker held out of training)"
    return measured, "-"


def summary(result):
    """`(measured, ablation)` cells of the README table for one result JSON."""
    m = result["metrics"]
    if m.get("task") == "transcription":
        return _speech_summary(result)
    if "beam" in m:
        b, g = m["beam"], m["greedy"]
        measured = (f"BLEU-1..4 beam {b['bleu_1']:.4f} / {b['bleu_2']:.4f} / {b['bleu_3']:.4f} / "
                    f"**{b['bleu_4']:.4f}**, CIDEr-D **{b['cider_d']:.3f}**; greedy "
                    f"{g['bleu_1']:.4f} / {g['bleu_2']:.4f} / {g['bleu_3']:.4f} / "
                    f"{g['bleu_4']:.4f}, CIDEr-D {g['cider_d']:.3f}")
        if "unique_captions" in b:
            measured += f"; {100 * b['unique_captions']:.0f}% of images get a caption of their own"
        base = result.get("baseline")
        if base:
            measured += (f"; best fixed caption (chosen on train) \"{base['caption']}\": BLEU-4 "
                         f"{base['scores']['bleu_4']:.4f}, CIDEr-D {base['scores']['cider_d']:.3f}")
        ablation = {k: f"beam BLEU-4 {v['beam']['bleu_4']:.3f}, CIDEr-D "
                       f"{v['beam']['cider_d']:.3f}" for k, v in m.get("ablation", {}).items()}
    elif "text_to_image" in m:
        t, c, i = m["text_to_image"], m["chance"]["text_to_image"], m["image_to_text"]
        measured = ("text->image recall@1/5/10 "
                    f"{t['recall@1']:.3f} / **{t['recall@5']:.3f}** / {t['recall@10']:.3f} (chance "
                    f"{c['recall@1']:.3f} / {c['recall@5']:.3f} / {c['recall@10']:.3f}); "
                    f"image->text {i['recall@1']:.3f} / {i['recall@5']:.3f} / "
                    f"{i['recall@10']:.3f}")
        ablation = {k: f"recall@5 {v['text_to_image']['recall@5']:.3f}" for k, v in
                    m.get("ablation", {}).items()}
    else:
        measured = f"accuracy **{_pct(m['accuracy'])}**"
        speakers = m.get("accuracy_by_speaker")
        if speakers:
            measured += "; per speaker " + ", ".join(f"{k} {_pct(v)}"
                                                     for k, v in sorted(speakers.items()))
        ablation = {k: _pct(v["accuracy"]) for k, v in m.get("ablation", {}).items()}
    return measured, "; ".join(f"{k.replace('_zeroed', '')} zeroed: {v}"
                               for k, v in ablation.items()) or "-"


def table():
    """The README's quality table, from bench/results/quality_*.json."""
    lines = ["| recipe | data (split) | measured | modality ablation | target | training | "
             "measured at |", "|---|---|---|---|---|---|---|"]
    order = []
    for recipe in RECIPES:  # each baseline beside the models it is the baseline of
        order.append(recipe)
        order += [b for b in BASELINES if recipe == "text_transformer"]
    for recipe in order:
        result = read_result(f"quality_{recipe}")
        if result is None:
            continue
        if recipe in BASELINES:
            chosen = result["metrics"]["chosen"]
            measured = (f"scikit-learn's TF-IDF + linear SVM: accuracy "
                        f"**{_pct(result['metrics']['accuracy'])}** (TF-IDF of "
                        f"{'words' if chosen['ngram_range'][1] == 1 else 'words and pairs'}"
                        f", linear SVM C={chosen['C']}, chosen on validation: "
                        f"{_pct(chosen['validation_accuracy'])})")
            data = re.sub(r"^(\w+:)[^?]*?shared/data", r"\1../shared/data", result["data"])
            lines.append(f"| `{recipe}` | {data} ({result['split']}) | "
                         f"{measured} | - | - | {result['train_seconds']:.0f} s, the grid | "
                         f"{shown(result['measured'])} |")
            continue
        measured, ablation = summary(result)
        targets = result.get("targets") or ([result["target"]] if result.get("target") else [])
        target = "; ".join(f"{t['metric']} {_bound(t)}: "
                           f"{'met' if t['met'] else '**NOT met**'}" for t in targets) or "-"
        # wherever the shared data was when measured (an absolute path), as the README names it
        data = re.sub(r"^(\w+:)[^?]*?shared/data", r"\1../shared/data", result["data"])
        split = result["split"]
        if data.endswith("flickr8k_1k_dev_as_test"):  # `dev_as_test`
            data = "captions:../shared/data/flickr8k_1k"
            split = "official dev photos; best epoch picked on held-out training photos"
        for key in ARRANGED:  # arranged by bench/user_data.py under the runs' folder
            at = result["data"].find(key)
            if key != "flickr8k_dev_as_test" and at >= 0:
                data = result["data"].split(":")[0] + ":" + result["data"][at:]
                data += " (bench/user_data.py)"
                split = {"flickr8k_pairs": "test: Flickr8k's dev photos, none trained on; "
                                           "chance 50%",
                         "fsdd_by_word": "test: FSDD's official test split, as `fsdd:`"
                         }.get(key, split)
        lines.append(f"| `{recipe}` | {data} ({split}) | {measured} | {ablation} | "
                     f"{target} | {result['train_seconds']:.0f} s, {result['epochs']} epochs | "
                     f"{shown(result['measured'])} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", choices=sorted([*RECIPES, *BASELINES]), help="one recipe")
    group.add_argument("--all", action="store_true", help="every recipe")
    group.add_argument("--table", action="store_true",
                       help="print the README's table from bench/results and exit")
    parser.add_argument("--out", default=os.path.join("runs", "bench"),
                        help="where the trained models go (default runs/bench; each recipe's "
                             "folder is trained again from scratch)")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    for recipe in ([*BASELINES, *sorted(RECIPES)] if args.all else [args.model]):
        run(recipe, args.out)


if __name__ == "__main__":
    main()
