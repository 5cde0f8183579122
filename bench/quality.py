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
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("MMZOO_DATA_DIR", os.path.join(HERE, "..", "..", "shared", "data"))


def _get(result, path):
    for key in path.split("."):
        result = result[key]
    return result


# recipe name -> (model, data source, epochs, batch size, evaluation split, target)
# target: (metric path in the evaluation JSON, minimum) or None (reported only)
RECIPES = {
    "audio_mfcc_cnn": ("audio_mfcc_cnn", "fsdd:{data}/fsdd", 30, 64, "test", ("accuracy", 0.99)),
    "audio_mfcc_lstm": ("audio_mfcc_lstm", "fsdd:{data}/fsdd", 30, 64, "test", None),
    "text_word_vector_mlp": ("text_word_vector_mlp", "csv:{data}/ag_news/news.csv", 10, 32,
                             "test", ("accuracy", 0.88)),
    "text_lstm": ("text_lstm", "csv:{data}/ag_news/news.csv", 10, 32, "test", None),
    "text_transformer": ("text_transformer", "csv:{data}/ag_news/news.csv", 10, 32, "test",
                         None),
    "vqa_cnn_lstm": ("vqa_cnn_lstm", "easy_vqa", 20, 64, "test", ("accuracy", 0.995)),
    "text_image_concat": ("text_image_concat", "easy_vqa", 20, 64, "test", None),
    "late_fusion_classifier": ("late_fusion_classifier", "easy_vqa", 8, 64, "test", None),
    "trimodal_classifier": ("trimodal_classifier", "digit_qa:{data}/fsdd", 20, 64, "test", None),
    "caption_lstm": ("caption_lstm", "easy_vqa", 8, 64, "test", ("beam.bleu_4", 0.95)),
    "dual_encoder": ("dual_encoder", "easy_vqa", 8, 64, "test", None),
    "caption_lstm_flickr8k": ("caption_lstm", "captions:{data}/flickr8k_1k", 20, 32,
                              "validation", None),
    "dual_encoder_flickr8k": ("dual_encoder", "captions:{data}/flickr8k_1k", 20, 32,
                              "validation", None),
}
MULTIMODAL = {"vqa_cnn_lstm", "text_image_concat", "late_fusion_classifier",
              "trimodal_classifier", "caption_lstm", "dual_encoder"}


def run(recipe, out_root):
    model, source, epochs, batch, split, target = RECIPES[recipe]
    source = source.format(data=DATA)
    run_dir = os.path.join(out_root, recipe)
    cli = [sys.executable, "-m", "mmzoo.cli"]
    start = time.perf_counter()
    subprocess.run(cli + ["train", model, "--data", source, "--epochs", str(epochs),
                          "--batch-size", str(batch), "--out", run_dir], check=True)
    train_seconds = time.perf_counter() - start
    evaluate = cli + ["evaluate", run_dir, "--data", source, "--split", split]
    if model in MULTIMODAL:
        evaluate.append("--modality-ablation")
    out = subprocess.run(evaluate, check=True, capture_output=True, text=True)
    metrics = json.loads(out.stdout)
    result = {"recipe": recipe, "model": model, "data": source, "epochs": epochs,
              "batch_size": batch, "split": split, "train_seconds": round(train_seconds, 1),
              "command": f"mmzoo train {model} --data {source} --epochs {epochs} "
                         f"--batch-size {batch}", "metrics": metrics}
    if target:
        value = float(_get(metrics, target[0]))
        result["target"] = {"metric": target[0], "minimum": target[1], "value": value,
                            "met": value >= target[1]}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"quality_{recipe}.json"), "w") as f:
        json.dump(result, f, indent=2)
    summary = result.get("target") or {}
    print(f"{recipe}: trained in {train_seconds:.0f} s; "
          + (f"{summary['metric']} = {summary['value']:.4f} (target {summary['minimum']}, "
             f"{'met' if summary['met'] else 'NOT met'})" if summary else "reported"))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", choices=sorted(RECIPES), help="one recipe")
    group.add_argument("--all", action="store_true", help="every recipe")
    parser.add_argument("--out", default=os.path.join("runs", "bench"),
                        help="where the trained models go (default runs/bench)")
    args = parser.parse_args()
    for recipe in (sorted(RECIPES) if args.all else [args.model]):
        run(recipe, args.out)


if __name__ == "__main__":
    main()
