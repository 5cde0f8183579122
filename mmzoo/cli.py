"""The `mmzoo` command: list, describe, data, train."""

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

    from mmzoo.data import fit_splits, pipeline
    from mmzoo.registry import get_spec
    from mmzoo.train import train

    spec = get_spec(args.name)
    model, history = train(args.name, args.data, epochs=args.epochs, batch_size=args.batch_size,
                           out=args.out, seed=args.seed, overrides=_parse_set(args.set),
                           on_error=args.on_error)
    best = int(np.argmin(history.history["val_loss"]))
    metrics = {k: round(float(v[best]), 4) for k, v in history.history.items()}
    print(f"best epoch {best + 1}/{len(history.history['val_loss'])}: {metrics}")
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
    p.add_argument("--on-error", **on_error)
    p.set_defaults(fn=_cmd_train)

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
