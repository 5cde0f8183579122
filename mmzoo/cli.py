"""The `mmzoo` command: list, describe, data, train, evaluate, export, card, predict, search.

Every command takes `--import MODULE` (repeatable; also `MMZOO_IMPORT`) to know the models a
module of your own registers (`mmzoo.plugins`). The command parses its arguments before
TensorFlow starts, so `--help` and a mistyped argument answer at once; this module imports the
library's TensorFlow-bound modules inside the commands for that reason, and `predict` / `search`
of an ONNX or LiteRT export never start it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import re
import statistics
import sys
import traceback
import warnings

from mmzoo.errors import DataWarning, InvalidValue, did_you_mean, user_message

SET_HELP = ("config override (repeatable), read as a Python literal: --set fusion=gated, "
            "--set dropout=0.3, --set filters=32,64 or (32,64) (a list; 32 alone is a list of "
            "one), --set bidirectional=yes (true/false/yes/no), --set image_weights=None")
MODALITIES = ("text", "image", "audio")
ON_ERROR = ("raise", "skip")


def _parse_set(items):
    overrides = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidValue(f"--set takes key=value, got {item!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value  # a bare string, e.g. --set fusion=gated
    return overrides


class _Warnings:
    """Says each warning once, in one line, while a command runs; with `details` (a callable
    writing to a file in the run folder, and that file's name) the full text of mmzoo's data
    warnings (every item named) goes there. With `-v`, every warning is shown in full, as
    Python shows it."""

    def __init__(self, verbose=False, details=None):
        self.verbose, self.details, self.seen, self.written = verbose, details, set(), False

    def __enter__(self):
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always", DataWarning)  # others keep Python's filters
        if not self.verbose:
            warnings.showwarning = self.show
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)

    def show(self, message, category, filename, lineno, file=None, line=None):
        short = message.short if isinstance(message, DataWarning) else \
            str(message).strip().splitlines()[0]
        if short in self.seen:
            return
        self.seen.add(short)
        detailed = isinstance(message, DataWarning) and message.details
        if detailed and self.details:
            write, where = self.details
            write(message.full() + "\n\n", append=self.written)  # this command's own
            self.written = True
            short += f" (each one named in {where})"
        elif detailed:
            short = message.full()
        print(f"mmzoo: warning: {short}", file=sys.stderr, flush=True)


def _positive(text):
    """argparse's type of a count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- the commands -----------------------------------------------------------------------------

def _cmd_list(args):
    from mmzoo.registry import get_spec, list_models, model_table

    if args.markdown:
        print(model_table())
        return
    for name in list_models(args.pattern, task=args.task, modality=args.modality):
        spec = get_spec(name)
        print(f"{name:<24} {spec.task:<15} {','.join(spec.inputs):<20} {spec.summary}")


def _cmd_describe(args):
    from mmzoo.registry import describe

    print(describe(args.name, **_parse_set(args.set)))


def _cmd_data(args):
    from mmzoo.data import open_source, prepare

    if args.prepare:
        out, sizes = prepare(args.source, args.prepare, shards=args.shards,
                             on_error=args.on_error)
        print(f"{args.source}: prepared as a TFDS dataset in {out} ("
              + ", ".join(f"{split} {n:,}" for split, n in sizes.items())
              + f" examples); read it with tfds.builder_from_directory({out!r}) or as "
              f"tfds:{out}")
        return
    src = open_source(args.source, on_error=args.on_error)
    print(f"{args.source}: every item checked")
    for split in (*src.split_names(), None):
        ds = src.dataset(split)
        print(f"  {split or 'all':<11} {int(ds.cardinality()):>7} examples")
    spec = src.dataset(None).element_spec
    print("  example:   " + ", ".join(f"{k} {v.dtype.name}{list(v.shape)}"
                                      for k, v in spec.items()))
    for line in _described_data(src):
        print(line)


def _described_data(src):
    """Lines of what `mmzoo data` says of a source beyond its splits: the lengths of its audio
    clips, its classes with their counts, and the columns of a table that nothing reads."""
    lines = []
    seconds = sorted(src.audio_seconds(None))
    if seconds:
        most = seconds[min(len(seconds) - 1, math.ceil(0.99 * len(seconds)) - 1)]
        lines.append(f"  audio:     {len(seconds):,} clips of {seconds[0]:.2f}-"
                     f"{seconds[-1]:.2f} s (median {statistics.median(seconds):.2f} s, 99% at "
                     f"most {most:.2f} s); a run cuts longer clips than its clip length to "
                     "their loudest part")
    counts = src.label_counts() if hasattr(src, "label_counts") else {}
    if counts:
        shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        text = ", ".join(f"{label} {n:,}" for label, n in shown[:12])
        more = f" and {len(shown) - 12} more" if len(shown) > 12 else ""
        lines.append(f"  classes:   {len(shown)} ({text}{more})")
    unused = src.unused_columns() if hasattr(src, "unused_columns") else []
    if unused:
        lines.append(f"  unused:    columns {', '.join(unused)} (nothing reads them; map one "
                     f"with an option, e.g. {src.kind}:PATH?text={unused[0]})")
    return lines


def _cmd_train(args):
    from mmzoo.train import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)  # before TensorFlow starts

    from mmzoo.data import fit_splits
    from mmzoo.data.sources import default_source
    from mmzoo.registry import get_spec, get_task
    from mmzoo.run import RunFolder
    from mmzoo.train import train

    spec = get_spec(args.name)
    data = args.data or default_source(spec)
    folder = RunFolder(args.out)
    # the run's folder is held for the whole command; a multi-worker cluster's processes share
    # one `--out`, which `train` holds in the chief alone (the others write to scratch folders)
    hold = folder.held() if args.strategy != "multi_worker" else contextlib.nullcontext()

    def details(text, append):
        if folder.is_held:
            folder.write_text("warnings.txt", text, append=append)

    with hold, _Warnings(args.verbose, (details, folder.file("warnings.txt"))):
        model, history = train(args.name, data, epochs=args.epochs, batch_size=args.batch_size,
                               out=folder, seed=args.seed, overrides=_parse_set(args.set),
                               strategy=args.strategy, mixed_precision=args.mixed_precision,
                               jit_compile=args.jit_compile, augment=not args.no_augment,
                               on_error=args.on_error, overwrite=args.overwrite,
                               cache=args.cache, feature_cache=args.feature_cache)
        if history.best:
            print(f"best epoch {history.best['epoch']}/{history.best['epochs']}: "
                  f"{history.best['metrics']}")
        print(f"saved {os.path.join(args.out, 'model.keras')}")

        def validation():
            return fit_splits(data, task=spec.task, on_error=args.on_error)[1]

        for line in get_task(spec.task).report(model, validation):
            print(line)


def _cmd_evaluate(args):
    from mmzoo.data import open_source
    from mmzoo.data.base import SPLIT_RULE
    from mmzoo.data.sources import absolute_source
    from mmzoo.evaluate import evaluate, table
    from mmzoo.registry import get_spec
    from mmzoo.run import check_name, open_model, recorded_beside

    given = check_name(args.split, "--split") if args.split else None
    model, run = open_model(args.run)
    recorded = run.recorded() if run else recorded_beside(args.run)
    data = args.data or recorded.get("data")
    if data is None:
        raise InvalidValue(f"{args.run} is not a run recording its data; give --data SOURCE")
    own = not args.data or absolute_source(args.data) == recorded.get("data")
    # the run's own data is read as it was trained on (bad items skipped there are skipped)
    on_error = args.on_error or (recorded.get("on_error") if own else None) or "raise"
    # the split: as given; else the run's own test split, the test split of other data with
    # splits of its own, and every item of other data without (known once it is listed)
    choices = [given] if given else ["test"] if own else ["test", "all"]
    chosen = _Chosen(choices[0], run)
    names = [f"evaluation_{s}{end}" for s in choices for end in (".json", "_warnings.txt")]
    with _held(run, names), _Warnings(args.verbose, run and (
            lambda text, append: run.write_text(chosen.warnings, text, append=append),
            chosen)):
        src = open_source(data, on_error=on_error)
        # the run's data however it is spelled (another path to it, options in another order)
        own = own or src.fingerprint() == recorded.get("data_fingerprint")
        split = chosen.split = given or ("test" if own or src.own_splits else "all")
        if own and recorded and recorded.get("split_rule", 1) != SPLIT_RULE:
            print(f"mmzoo: warning: {args.run} was trained when splits were drawn by an earlier "
                  "rule: items of its test split may have been trained on; train it again for "
                  "figures to trust", file=sys.stderr, flush=True)
        test = src.dataset(split, get_spec(model.name).task)
        print(_scored(data, split, int(test.cardinality()), given, own), file=sys.stderr,
              flush=True)
        cut = _cut(model, src, split)
        if cut:
            print(cut, file=sys.stderr, flush=True)
        result = evaluate(model, test, batch_size=args.batch_size,
                          modality_ablation=args.modality_ablation)
        result = {"data": data, "split": split, **result}
        if run:
            run.write_json(f"evaluation_{split}.json", result)
    print(json.dumps(result) if args.json else table(result))
    if result.get("learned_nothing"):
        print(f"mmzoo: warning: {result['learned_nothing']}", file=sys.stderr)


def _cut(model, src, split):
    """The line saying how many audio clips of `split` the model cuts to its clip length, or
    None."""
    from mmzoo import contract
    from mmzoo.data import waveform

    length = contract.input_shapes(model).get("audio", (None,))[0]
    if length is None:
        return None
    clip = length / contract.sample_rate(model)
    return waveform.cut_line(src.audio_seconds(None if split == "all" else split), clip,
                             "clips scored", fix=False)


class _Chosen:
    """The split `mmzoo evaluate` scores, once known; as text, its warnings file's name."""

    def __init__(self, split, run):
        self.split, self.run = split, run

    @property
    def warnings(self):
        return f"evaluation_{self.split}_warnings.txt"

    def __str__(self):
        return self.run.file(self.warnings)


def _scored(data, split, count, given, own):
    """The line saying which items of `data` `mmzoo evaluate` scores, and how to score others."""
    items = f"{count:,} item(s)" if count >= 0 else "the items"
    if split == "all":
        why = ("--split all" if given else
               "it is not the run's data and has no split of its own")
        return (f"evaluate: scoring all {items} of {data} ({why}; --split test scores only "
                "the tenth of them a hash puts in test)")
    whose = "the run's data" if own else data
    every = " (training items too)" if own else ""
    return (f"evaluate: scoring the {items} of the {split} split of {whose}; --split all "
            f"scores every item{every}")


class _held:
    """Hold a run folder (when there is one) and refuse, before anything is written, the names
    a command would write that are not mmzoo's."""

    def __init__(self, run, names):
        self.run, self.names, self.hold = run, names, None

    def __enter__(self):
        if self.run is not None:
            self.hold = self.run.held()
            self.hold.__enter__()
            try:
                self.run.refuse_foreign(self.names)
            except BaseException:
                self.hold.__exit__(*sys.exc_info())
                raise
        return self.run

    def __exit__(self, *exc):
        if self.hold is not None:
            return self.hold.__exit__(*exc)
        return False


def _cmd_export(args):
    from mmzoo.export import export
    from mmzoo.run import open_model

    model, run = open_model(args.run)
    path = export(model, args.out, args.format, args.quantize, run=run and run.path,
                  data=args.data, license=args.license, dataset_ids=args.dataset_id)
    print(f"exported {path}")


def _cmd_card(args):
    from mmzoo.card import write
    from mmzoo.run import open_model, open_run

    run = open_run(args.run, "mmzoo card")
    model, _ = open_model(args.run)
    with _held(run, ("README.md", "card.json")):
        print(f"wrote {write(run, model, license=args.license, dataset_ids=args.dataset_id)}")


def _cmd_predict(args):
    from mmzoo.predict import lines, predict

    inputs = {"image": args.image, "question": args.question, "text": args.text,
              "audio": args.audio}
    results = predict(args.path, inputs, top=args.top, table=args.table, on_error=args.on_error)
    print(json.dumps(results) if args.json else "\n".join(lines(results)))


def _cmd_search(args):
    from mmzoo.predict import search

    found = search(args.path, args.text, args.images, top=args.top)
    if args.json:
        print(json.dumps([{"score": score, "image": path} for score, path in found]))
        return
    for score, path in found:
        print(f"{score:8.4f}  {path}")


# --- the parser -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose "invalid choice" error also names the closest choice."""

    def error(self, message):
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = re.findall(r"'([^']*)'", found.group(2))
            hint = did_you_mean(found.group(1), choices)
            if hint:
                message = f"{message}; {hint}"
        super().error(message)


def _common():
    """The options every command takes: `-v` and `--import`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's logs, every warning in full, and tracebacks")
    common.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help="import MODULE first: a module of yours that registers models "
                             "(repeatable; also MMZOO_IMPORT=MODULE,...)")
    return common


def _add_catalogue(sub, common):
    p = sub.add_parser("list", parents=[common], help="list the registered models")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern on the name, e.g. 'text_*'")
    p.add_argument("--task", help="keep the models of this task (classification, vqa, "
                                  "captioning, retrieval, transcription, or a plugin's)")
    p.add_argument("--modality", choices=MODALITIES)
    p.add_argument("--markdown", action="store_true",
                   help="every model as a Markdown table with its inputs and parameter count "
                        "(the README's)")
    p.set_defaults(fn=_cmd_list)

    p = sub.add_parser("describe", parents=[common], help="print a model card")
    p.add_argument("name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(fn=_cmd_describe)


def _add_data(sub, common):
    p = sub.add_parser("data", parents=[common],
                       help="list and check a data source, count its splits")
    p.add_argument("source", help="e.g. fsdd:../shared/data/fsdd, csv:news.csv?text=title")
    p.add_argument("--on-error", choices=ON_ERROR, default="raise",
                   help="bad files in the data: raise (default) or skip them, naming each")
    p.add_argument("--prepare", metavar="DIR", default=None,
                   help="write every split as a TFDS dataset (sharded TFRecords) in DIR, "
                        "readable as tfds:DIR and with tfds.builder_from_directory(DIR)")
    p.add_argument("--shards", type=_positive, default=None, metavar="N",
                   help="with --prepare: shards per split (default: by size; at least the "
                        "number of workers that will read it)")
    p.set_defaults(fn=_cmd_data)


def _add_train(sub, common):
    p = sub.add_parser("train", parents=[common], help="train a model and save DIR/model.keras")
    p.add_argument("name")
    p.add_argument("--data", default=None,
                   help="data source (default: the bundled easy_vqa for image+text models; "
                        "other models need one, and the error names those that fit)")
    p.add_argument("--epochs", type=_positive, default=10)
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/NAME); mmzoo refuses to write over "
                        "anything in it that it did not write")
    p.add_argument("--overwrite", action="store_true",
                   help="train again over a finished run in --out (removes only its files, "
                        "still as it wrote them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--strategy", default="default",
                   choices=("default", "mirrored", "multi_worker", "tpu"),
                   help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    p.add_argument("--cpu-devices", type=_positive, default=None, metavar="N",
                   help="split the CPU into N logical devices (mirrored without GPUs)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU")
    p.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")
    p.add_argument("--no-augment", action="store_true",
                   help="no audio augmentation (of waveforms, or of MFCCs when they are cached)")
    p.add_argument("--cache", choices=("auto", "memory", "disk", "none"), default="auto",
                   help="where each split's decoded (and tokenized) examples are kept after "
                        "the first epoch: auto (default: none for text alone; images and audio "
                        "in memory when estimated at 10%% of the machine's memory and 2 GiB or "
                        "less, else on disk under --out), memory, disk (removed when training "
                        "ends), none")
    p.add_argument("--feature-cache", choices=("auto", "memory", "disk", "off"), default="auto",
                   help="fixed front ends (a frozen pretrained image backbone, an audio model's "
                        "MFCCs): compute them once per example and cache them as --cache says "
                        "(auto, default), in memory, on disk under --out/feature_cache, or run "
                        "the whole model every step (off)")
    p.add_argument("--on-error", choices=ON_ERROR, default="raise",
                   help="bad files in the data: raise (default) or skip them, naming each")
    p.set_defaults(fn=_cmd_train)


def _add_evaluate(sub, common):
    p = sub.add_parser("evaluate", parents=[common],
                       help="print the task's metrics of a trained model (a table, or JSON)")
    p.add_argument("run", help="a folder written by `mmzoo train` (or a .keras file)")
    p.add_argument("--data", default=None,
                   help="data source (default: the one the run was trained on, from its "
                        "config.json)")
    p.add_argument("--split", default=None,
                   help="split to evaluate: train, validation, test or all (default: the run's "
                        "test split; of other --data, its own test split when it has splits of "
                        "its own, else all of it)")
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--modality-ablation", action="store_true",
                   help="also each metric with one input modality zeroed at a time")
    p.add_argument("--json", action="store_true",
                   help="print the metrics as one JSON object (also written to "
                        "RUN/evaluation_SPLIT.json)")
    p.add_argument("--on-error", choices=ON_ERROR, default=None,
                   help="bad files in the data: raise or skip them, naming each (default: as "
                        "the run was trained, else raise)")
    p.set_defaults(fn=_cmd_evaluate)


def _add_publishing(p):
    p.add_argument("--license", default=None, metavar="ID",
                   help="the licence for the model card, as hubs spell it (apache-2.0, mit, "
                        "cc-by-4.0, other; default: the run's, as `mmzoo card --license` "
                        "recorded it, else unknown, which the card says)")
    p.add_argument("--dataset-id", action="append", default=None, metavar="ID",
                   help="the training data's id on a hub (NAME or OWNER/NAME; repeatable) for "
                        "the card's `datasets` (default: the run's; else none)")


def _add_export(sub, common):
    p = sub.add_parser("export", parents=[common],
                       help="write a SavedModel taking raw inputs, or ONNX / LiteRT files "
                            "taking numbers; each with metadata.json and a model card")
    p.add_argument("run", help="a folder written by `mmzoo train` (or a .keras file)")
    p.add_argument("--out", required=True,
                   help="folder to write: new, empty, or a previous mmzoo export")
    p.add_argument("--format", choices=("saved_model", "onnx", "litert"), default="saved_model",
                   help="saved_model (default; raw bytes and strings in, labels, captions and "
                        "transcripts out, beam search served), onnx (ONNX Runtime) or litert "
                        "(LiteRT, batch 1): decoded uint8 images, waveforms and token ids in, "
                        "scores out, as metadata.json says")
    p.add_argument("--quantize", choices=("float16", "int8"), default=None,
                   help="litert only: float16 weights, or int8 weights and activations "
                        "calibrated on the run's training data")
    p.add_argument("--data", default=None,
                   help="data source to calibrate int8 on and, for onnx and litert, to measure "
                        "the exported file's own test figures on (default: the run's, from its "
                        "config.json; without data the card reports no figures)")
    _add_publishing(p)
    p.set_defaults(fn=_cmd_export)

    p = sub.add_parser("card", parents=[common],
                       help="write a run's model card, RUN/README.md (with the test figures "
                            "of `mmzoo evaluate`)")
    p.add_argument("run", help="a folder written by `mmzoo train`")
    _add_publishing(p)
    p.set_defaults(fn=_cmd_card)


def _add_predict(sub, common):
    p = sub.add_parser("predict", parents=[common],
                       help="run an export (SavedModel, ONNX, LiteRT) or a run on raw inputs: "
                            "files, folders, texts")
    p.add_argument("path", help="a folder written by `mmzoo export` or by `mmzoo train`")
    p.add_argument("--image", action="append",
                   help="an image file or a folder of them (repeatable)")
    p.add_argument("--question", action="append", help="a question (repeatable)")
    p.add_argument("--text", action="append", help="a text (repeatable)")
    p.add_argument("--audio", action="append",
                   help="an audio file or a folder of them, resampled to the model's rate "
                        "(repeatable)")
    p.add_argument("--table", metavar="SOURCE",
                   help="a table of inputs, one example per row: csv:PATH, jsonl:PATH or "
                        "parquet:PATH (with their column options)")
    p.add_argument("--top", type=_positive, default=3, help="classes shown with their scores")
    p.add_argument("--on-error", choices=ON_ERROR, default="raise",
                   help="an unreadable input: stop naming it (raise, default), or name it and "
                        "go on with the others (skip)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list, a row per input naming it (a file, or a table's "
                        "row)")
    p.set_defaults(fn=_cmd_predict)

    p = sub.add_parser("search", parents=[common],
                       help="the photos a retrieval model (dual_encoder) matches best with a "
                            "text")
    p.add_argument("path", help="a folder written by `mmzoo export` or by `mmzoo train`")
    p.add_argument("--text", required=True, help="what to look for")
    p.add_argument("--images", action="append", required=True,
                   help="a folder of photos, or a photo (repeatable)")
    p.add_argument("--top", type=_positive, default=5, help="photos shown (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(fn=_cmd_search)


def _version():
    from mmzoo._version import __version__

    return __version__


def _parser():
    parser = _Parser(prog="mmzoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"mmzoo {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = _common()
    for add in (_add_catalogue, _add_data, _add_train, _add_evaluate, _add_export,
                _add_predict):
        add(sub, common)
    return parser


def _needs_tensorflow(args):
    """Whether the command starts TensorFlow: all but `predict` and `search` of an ONNX or
    LiteRT export, which run on their runtime alone (a `--table` of inputs is read by mmzoo's
    data sources, which start it)."""
    if args.command not in ("predict", "search") or getattr(args, "table", None):
        return True
    from mmzoo.run import portable_record

    return portable_record(args.path) is None


def main(argv=None):
    """Entry point of the `mmzoo` command.

    Exit status 0 on success, 2 for the user's own mistakes (one line naming what to change:
    every `mmzoo.errors.MmzooError`), 1 for anything else, which is a bug and keeps its
    traceback. A closed output pipe (`mmzoo ... | head`) ends it quietly.
    """
    args = _parser().parse_args(argv)  # before TensorFlow: --help and mistakes answer at once
    if getattr(args, "out", "") is None:
        args.out = os.path.join("runs", args.name)
    try:
        _start(args)
        with _Warnings(args.verbose):
            args.fn(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("mmzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): nothing more to say, and nowhere to say it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        message = user_message(e)  # the user's mistake, wherever it surfaced
        if message is not None:
            if args.verbose:
                traceback.print_exc()
            print(f"mmzoo: error: {message}", file=sys.stderr)
            return 2
        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"mmzoo: internal error: {type(e).__name__}: {first}\n(the traceback above "
              "says where; this is a bug, not a mistake in your command)", file=sys.stderr)
        return 1
    return 0


def _start(args):
    """Load what the command needs: the whole library and the plugins (`mmzoo.load`); nothing
    for `predict` or `search` of an ONNX or LiteRT export, whose runtime needs no model of
    mmzoo's (a plugin would import TensorFlow: `--import` is not needed there)."""
    import mmzoo

    if _needs_tensorflow(args):
        mmzoo.load(plugins=args.imports)


if __name__ == "__main__":
    sys.exit(main())
