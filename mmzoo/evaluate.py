"""Evaluate a model on raw examples: its task's figures (`mmzoo.tasks`), the modality ablation,
the table `mmzoo evaluate` prints, and whether the model learned anything.

The metrics themselves, as the field computes them, are `mmzoo.metrics` (also importable from
here): accuracy / macro precision, recall, F1 (scikit-learn), BLEU-1..4 (NLTK's `corpus_bleu`)
and CIDEr-D (pycocoevalcap), recall@k, word and character error rates.
"""

from __future__ import annotations

from mmzoo.metrics import (RECALL_AT, bleu_scores, caption_scores,  # noqa: F401  (re-exported)
                           chance_recall_at_k, cider_d, classification_metrics,
                           constant_caption, recall_at_k, recall_at_k_blocked,
                           retrieval_scores, speech_scores, unique_share)
from mmzoo.registry import get_spec, get_task
from mmzoo.tasks.base import figure

CAUSE = ("likely causes: too little training data or too few epochs (train longer with "
         "--epochs, or on more data)")


def learned_nothing(result, cause=CAUSE, split=""):
    """One line saying that the model an evaluation `result` (of `evaluate`) is about learned
    nothing, with the likely cause, or None: a classifier no better than always answering the
    evaluated split's most frequent class, a captioner giving one caption to every image, a
    recogniser giving empty transcripts (its task's `learned_nothing`)."""
    return get_task(result["task"]).learned_nothing(result, cause, split)


def table(result):
    """An evaluation `result` (of `evaluate`, with `data` and `split` as `mmzoo evaluate` adds
    them) as the plain-text table `mmzoo evaluate` prints: its task's figures (per class for a
    classifier, per decoder for a captioner or recogniser, per direction for retrieval), and
    the modality ablation when there is one."""
    task = get_task(result["task"])
    where = f" on {result['data']}" if result.get("data") else ""
    split = f" ({result['split']} split)" if result.get("split") else ""
    title, lines = task.table(result)
    lines = [f"{result['model']} ({result['task']}){where}{split}{title}", *lines]
    for name, ablated in result.get("ablation", {}).items():
        metric, value = task.headline(ablated)
        lines.append(f"  with {name.replace('_', ' ')}: {metric} {figure(value)}")
    return "\n".join(lines)


def evaluate(model, dataset, *, batch_size=64, modality_ablation=False):
    """The task's metrics of `model` on a dataset of raw examples (`mmzoo.data.load`).

    - classification and VQA: accuracy, macro precision / recall / F1, confusion matrix, and
      accuracy per speaker when the examples name one (FSDD);
    - captioning: BLEU-1..4 (NLTK's `corpus_bleu`) and CIDEr-D (pycocoevalcap) with greedy and
      beam decoding, over the unique images, against every reference caption of each (all texts
      standardised as the models read them), and a few example captions;
    - retrieval: recall@1/5/10 text->image and image->text (a text matches every image it is
      a caption of), and the recall a random ranking would get;
    - transcription: word and character error rates and the exact-utterance rate
      (`speech_scores`) with greedy and beam-search CTC decoding, also per speaker when the
      examples name one, and a few transcripts with their references.

    `learned_nothing` holds one line when the model learned nothing (`learned_nothing`).

    With `modality_ablation=True`, also the same metrics with each input modality zeroed in
    turn (black images, silent audio, empty text; for captioning the image only: its text
    input is the decoder's own prompt), under `ablation`.

    Examples:
    ```python
    test = mmzoo.data.load("fsdd:../shared/data/fsdd", split="test")
    mmzoo.evaluate(model, test)["accuracy"]
    ```
    """
    spec = get_spec(model.name)
    task = get_task(spec.task)
    result = {"model": model.name, "task": spec.task,
              **task.evaluate(model, dataset, batch_size)}
    nothing = task.learned_nothing(result, CAUSE)
    if nothing:
        result["learned_nothing"] = nothing
    if modality_ablation and len(spec.inputs) > 1:
        result["ablation"] = {f"{m}_zeroed": task.figures(
            task.evaluate(model, dataset, batch_size, ablate=m))
            for m in task.ablated_inputs(spec)}
    return result


__all__ = ["CAUSE", "evaluate", "learned_nothing", "table"]
