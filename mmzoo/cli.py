"""The `mmzoo` command: list, describe, data, train, evaluate, export, predict."""

from __future__ import annotations

import argparse
import ast
import os
import sys


def _parse_set(items):
    overrides = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"mmzoo: --set takes key=value, got {item!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value  # a bare string, e.g. --set fusion=gated
    return overrides


def _cmd_list(args):
    import mmzoo
    from mmzoo.registry import get_spec
    for name in mmzoo.list_models(args.pattern, task=args.task, modality=args.modality):
        spec = get_spec(name)
        print(f"{name:<24} {spec.task:<15} {','.join(spec.inputs):<20} {spec.summary}")


def _cmd_describe(args):
    import mmzoo
    print(mmzoo.describe(args.name, **_parse_set(args.set)))


def _cmd_data(args):
    from mmzoo.data import open_source

    src = open_source(args.source, on_error=args.on_error)
    print(f"{args.source}: every item checked")
    for split in (*src.split_names(), None):
        ds = src.dataset(split)
        print(f"  {split or 'all':<11} {int(ds.cardinality()):>7} examples")
    spec = src.dataset(None).element_spec
    print("  example:   " + ", ".join(f"{k} {v.dtype.name}{list(v.shape)}"
                                      for k, v in spec.items()))


def _cmd_train(args):
    import numpy as np

    from mmzoo.train import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)  # before TensorFlow starts

    from mmzoo.data import fit_splits, pipeline
    from mmzoo.registry import get_spec
    from mmzoo.train import train

    spec = get_spec(args.name)
    model, history = train(args.name, args.data, epochs=args.epochs, batch_size=args.batch_size,
                           out=args.out, seed=args.seed, overrides=_parse_set(args.set),
                           strategy=args.strategy, mixed_precision=args.mixed_precision,
                           jit_compile=args.jit_compile, augment=not args.no_augment,
                           on_error=args.on_error)
    import csv
    with open(os.path.join(args.out, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    if rows:
        best = int(np.argmin([float(r["val_loss"]) for r in rows]))
        metrics = {k: round(float(v), 4) for k, v in rows[best].items() if k != "epoch"}
        print(f"best epoch {best + 1}/{len(rows)}: {metrics}")
    print(f"saved {os.path.join(args.out, 'model.keras')}")
    if spec.task == "captioning":
        from mmzoo.layers.vocab import model_vocabulary
        from mmzoo.models.captioning import decode, generate
        _, val = fit_splits(args.data, task="captioning", on_error=args.on_error)
        val = pipeline(model, val, batch_size=8)
        inputs, targets = next(iter(val))
        truth = decode(targets.numpy(), model_vocabulary(model, "text"))
        greedy = generate(model, inputs["image"], "greedy")
        beam = generate(model, inputs["image"], "beam")
        print("validation captions (truth | greedy | beam):")
        for t, g, b in zip(truth, greedy, beam):
            print(f"  {t:<22} | {g:<22} | {b}")


def _load_run(path):
    import keras

    import mmzoo.models  # noqa: F401  (registers the models' custom objects for loading)

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no trained model at {file}; give a folder written by "
                                "`mmzoo train` or a .keras file")
    return keras.saving.load_model(file), file


def _cmd_evaluate(args):
    import json

    from mmzoo.data import load
    from mmzoo.evaluate import evaluate
    from mmzoo.registry import get_spec

    model, file = _load_run(args.run)
    test = load(args.data, split=args.split, task=get_spec(model.name).task,
                on_error=args.on_error)
    result = evaluate(model, test, batch_size=args.batch_size,
                      modality_ablation=args.modality_ablation)
    result = {"data": args.data, "split": args.split, **result}
    if os.path.isdir(args.run):
        with open(os.path.join(args.run, f"evaluation_{args.split}.json"), "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))


def _cmd_export(args):
    import mmzoo

    model, _ = _load_run(args.run)
    print(f"exported {mmzoo.export(model, args.out)}")


def _cmd_predict(args):
    import json

    import numpy as np
    import tensorflow as tf

    if not os.path.isfile(os.path.join(args.path, "saved_model.pb")):
        raise FileNotFoundError(f"no SavedModel at {args.path}; write one with `mmzoo export`")
    loaded = tf.saved_model.load(args.path)
    serve = loaded.signatures["serving_default"]
    expected = sorted(serve.structured_input_signature[1])
    given = {k: v for k, v in (("image", args.image), ("question", args.question),
                               ("text", args.text), ("audio", args.audio)) if v is not None}
    if sorted(given) != expected:
        raise ValueError(f"this model's serving signature takes {expected} (give "
                         + " ".join(f"--{k}" for k in expected) + f"); got {sorted(given)}")
    info = json.loads(loaded.signatures["metadata"]()["json"].numpy()) \
        if "metadata" in loaded.signatures else {}
    inputs = {}
    for name, value in given.items():
        if name == "image":
            with open(value, "rb") as f:
                inputs[name] = tf.constant([f.read()])
        elif name == "audio":
            from mmzoo.data.fsdd import read_audio
            inputs[name] = tf.constant(read_audio(value, info.get("sample_rate") or 8000)[None])
        else:
            inputs[name] = tf.constant([value])
    out = serve(**inputs)
    if "label" in out:
        print(out["label"].numpy()[0].decode())
        if args.verbose:
            scores = out["scores"].numpy()[0]
            for i in np.argsort(-scores)[:5]:
                print(f"  {info.get('labels', [])[i] if info else i}: {scores[i]:.4f}")
    elif "caption" in out:
        print(out["caption"].numpy()[0].decode())
    else:
        print(f"{float(out['similarity'].numpy()[0, 0]):.4f}")


def main(argv=None):
    """Entry point of the `mmzoo` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    parser = argparse.ArgumentParser(prog="mmzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered models")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern on the name, e.g. 'text_*'")
    p.add_argument("--task", choices=("classification", "captioning", "vqa", "retrieval"))
    p.add_argument("--modality", choices=("text", "image", "audio"))
    p.set_defaults(fn=_cmd_list)

    p = sub.add_parser("describe", help="print a model card")
    p.add_argument("name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    p.set_defaults(fn=_cmd_describe)

    on_error = dict(choices=("raise", "skip"), default="raise",
                    help="bad files in the data: raise (default) or skip them, naming each")
    p = sub.add_parser("data", help="list and check a data source, count its splits")
    p.add_argument("source", help="e.g. fsdd:../shared/data/fsdd, csv:news.csv?text=title")
    p.add_argument("--on-error", **on_error)
    p.set_defaults(fn=_cmd_data)

    p = sub.add_parser("train", help="train a model and save DIR/model.keras")
    p.add_argument("name")
    p.add_argument("--data", default="easy_vqa", help="data source (default: easy_vqa)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=None, help="output folder (default: runs/NAME)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="config override, e.g. --set fusion=gated (repeatable)")
    p.add_argument("--strategy", default="default",
                   choices=("default", "mirrored", "multi_worker", "tpu"),
                   help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="split the CPU into N logical devices (mirrored without GPUs)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU")
    p.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")
    p.add_argument("--no-augment", action="store_true", help="no waveform augmentation")
    p.add_argument("--on-error", **on_error)
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("evaluate", help="print the task's metrics of a trained model as JSON")
    p.add_argument("run", help="a folder written by `mmzoo train` (or a .keras file)")
    p.add_argument("--data", default="easy_vqa", help="data source (default: easy_vqa)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--modality-ablation", action="store_true",
                   help="also each metric with one input modality zeroed at a time")
    p.add_argument("--on-error", **on_error)
    p.set_defaults(fn=_cmd_evaluate)

    p = sub.add_parser("export", help="write a SavedModel that takes raw inputs")
    p.add_argument("run", help="a folder written by `mmzoo train` (or a .keras file)")
    p.add_argument("--out", required=True, help="SavedModel folder to write")
    p.set_defaults(fn=_cmd_export)

    p = sub.add_parser("predict", help="run an exported SavedModel on raw inputs")
    p.add_argument("path", help="a SavedModel folder written by `mmzoo export`")
    p.add_argument("--image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--question", help="a question")
    p.add_argument("--text", help="a text")
    p.add_argument("--audio", help="an audio file (resampled to the model's rate)")
    p.add_argument("-v", "--verbose", action="store_true", help="also the top-5 scores")
    p.set_defaults(fn=_cmd_predict)

    args = parser.parse_args(argv)
    if getattr(args, "out", "") is None:
        args.out = os.path.join("runs", args.name)
    try:
        args.fn(args)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"mmzoo: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
