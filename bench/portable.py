"""Portable exports measured: for a trained model, one row per export format and quantization
with its file size, single-request latency in its runtime and test-split figure, beside the
Keras model's (`mmzoo evaluate`), all measured in one run.

Run by hand (never a timed test):

    python bench/portable.py --model audio_mfcc_cnn          # FSDD, 30 epochs, every format
    python bench/portable.py --model caption_lstm_flickr8k   # the SavedModel's beam and greedy

A recipe trains exactly as bench/quality.py's recipe of that name (`mmzoo train` with the
default config), evaluates with `mmzoo evaluate`, then exports with `mmzoo export` to
`saved_model`, `onnx`, `litert`, `litert --quantize float16` and `litert --quantize int8`. Each
export answers every test example one request at a time (batch 1, as a device calls it): the
SavedModel through `serving_default` on raw inputs, ONNX through onnxruntime and LiteRT through
ai-edge-litert's interpreter (`mmzoo/runtime.py`), each with 2 threads, on the numbers
`metadata.json` asks for. Latency is the median of those requests (the first five are warm-up).
Writes bench/results/portable_<recipe>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quality  # noqa: E402
from common import read_result, shown, write_result  # noqa: E402

EXPORTS = [("saved_model", None), ("onnx", None), ("litert", None), ("litert", "float16"),
           ("litert", "int8")]
RECIPES = ("audio_mfcc_cnn", "audio_mfcc_lstm", "text_word_vector_mlp", "text_fasttext",
           "text_lstm", "text_transformer", "image_classifier_shape_folders",
           "trimodal_classifier", "text_image_concat_flickr8k_pairs", "caption_lstm_flickr8k",
           "dual_encoder_flickr8k")
THREADS = 2
WARM_UP = 5


def _cli(*args, capture=False):
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *map(str, args)], check=True,
                          capture_output=capture, text=True)


def _export(run, folder, fmt, quantize=None):
    """`mmzoo export` a run; None, or the one line it said when the model cannot go there."""
    out = subprocess.run([sys.executable, "-m", "mmzoo.cli", "export", run, "--format", fmt,
                          *(["--quantize", quantize] if quantize else []), "--out", folder],
                         capture_output=True, text=True)
    if out.returncode == 2:  # a model the format cannot hold: said in one line
        return out.stderr.strip().splitlines()[-1].replace("mmzoo: error: ", "")
    if out.returncode:
        raise SystemExit(f"mmzoo export {run} --format {fmt} failed:\n{out.stderr[-3000:]}")
    return None


def _exports(recipe, run, out_root, rows):
    """`(format, quantize, folder)` of each of `EXPORTS` that `mmzoo export` wrote for `run`; a
    model a format cannot hold becomes a row of `rows` saying why."""
    for fmt, quantize in EXPORTS:
        folder = os.path.join(out_root, f"{recipe}.{fmt}" + (f".{quantize}" if quantize else ""))
        failed = _export(run, folder, fmt, quantize)
        if failed:
            rows.append({"format": fmt, "quantize": quantize, "error": failed})
            print(f"{recipe} {fmt} {quantize or ''}: {failed}", flush=True)
        else:
            yield fmt, quantize, folder


def _size(folder):
    """Bytes of an export's model files (not its card nor metadata)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if name not in ("README.md", "metadata.json", "mmzoo_export.json"):
                total += os.path.getsize(os.path.join(root, name))
    return total


def _train(recipe, out_root):
    """Train and evaluate as bench/quality.py's recipe: `(run folder, evaluation, train s,
    evaluated source, split, command)`."""
    model, source, epochs, batch, split, _target, *rest = quality.RECIPES[recipe]
    sets = [v.format(data=quality.DATA) for v in (rest[0] if rest else ())]
    source = quality._formatted(source, out_root)
    run = os.path.join(out_root, recipe)
    flags = [x for v in sets for x in ("--set", v)]
    start = time.perf_counter()
    _cli("train", model, "--data", source, "--epochs", epochs, "--batch-size", batch, "--out",
         run, "--overwrite", *flags)
    seconds = time.perf_counter() - start
    evaluation = json.loads(_cli("evaluate", run, "--split", split, "--json",
                                 capture=True).stdout)
    command = (f"mmzoo train {model} --data {source} --epochs {epochs} --batch-size {batch}"
               + "".join(f" --set {v}" for v in sets))
    return run, evaluation, seconds, source, split, command


def _timed(call, inputs):
    """`(outputs, median seconds)` of `call` on each input, one at a time, after warm-up."""
    for x in inputs[:WARM_UP]:
        call(x)
    outputs, seconds = [], []
    for x in inputs:
        start = time.perf_counter()
        outputs.append(call(x))
        seconds.append(time.perf_counter() - start)
    return outputs, statistics.median(seconds)


def classification(recipe, out_root):
    import numpy as np
    import tensorflow as tf

    import mmzoo
    from mmzoo import runtime
    from mmzoo.data import Preprocessor

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    run, evaluation, seconds, source, split, command = _train(recipe, out_root)
    import keras

    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    pre = Preprocessor(model)
    examples = list(mmzoo.data.load(source, split=split).as_numpy_iterator())
    truth = [Preprocessor.label_string(e["label"]).numpy().decode() for e in examples]
    rows = []
    for fmt, quantize, folder in _exports(recipe, run, out_root, rows):
        meta = json.load(open(os.path.join(folder, "metadata.json")))
        if fmt == "saved_model":
            served = tf.saved_model.load(folder)
            serve = served.signatures["serving_default"]
            inputs = [_raw(e, pre) for e in examples]
            outputs, latency = _timed(lambda x: serve(**x)["label"].numpy()[0].decode(), inputs)
        else:
            runner = runtime.Runner(folder, threads=THREADS)
            labels = meta["labels"]
            inputs = [_numeric(e, pre, meta) for e in examples]
            outputs, latency = _timed(
                lambda x: labels[int(np.argmax(runner(**x)["scores"][0]))], inputs)
        accuracy = float(np.mean([o == t for o, t in zip(outputs, truth)]))
        rows.append({"format": fmt, "quantize": quantize, "bytes": _size(folder),
                     "numbers": meta.get("graphs", {}).get("model", {}).get("numbers"),
                     "latency_ms": round(1000 * latency, 3), "accuracy": accuracy,
                     "examples": len(truth)})
        print(f"{recipe} {fmt} {quantize or ''}: {accuracy:.4f}, {rows[-1]['bytes']:,} bytes, "
              f"{rows[-1]['latency_ms']} ms", flush=True)
    return {"recipe": recipe, "model": model.name, "data": source, "split": split,
            "inputs": list(pre.spec.inputs),
            "train_seconds": round(seconds, 1), "command": command, "threads": THREADS,
            "keras": {"accuracy": evaluation["accuracy"], "examples": evaluation["examples"]},
            "rows": rows}


def _value(example, name):
    """The example's value for model input `name` (a `text` input reads a `question` too, as
    the pipeline does: `mmzoo.data.pipeline.SOURCE_KEYS`)."""
    from mmzoo.data.pipeline import SOURCE_KEYS

    return example[next(k for k in SOURCE_KEYS[name] if k in example)]


def _raw(example, pre):
    """A SavedModel request for one example: raw bytes, strings, waveforms."""
    import tensorflow as tf

    out = {}
    for name in pre.spec.inputs:
        value = _value(example, name)
        if name == "image":
            out[name] = tf.io.encode_png(value)[None]
        elif name == "audio":
            out[name] = tf.constant(_at_rate(example, pre.sample_rate)[None])
        else:
            out[name] = tf.constant([value])
    return out


def _at_rate(example, rate):
    """An example's waveform at `rate` Hz (librosa's resampler, as `librosa.load`)."""
    import numpy as np

    wave, own = np.asarray(example["audio"], "float32"), example.get("sample_rate")
    if own and int(own) != rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=int(own), target_sr=rate)
    return wave


def _numeric(example, pre, meta):
    """A portable request for one example: the numbers metadata.json asks for."""
    import numpy as np

    from mmzoo import runtime

    out = {}
    for name in pre.spec.inputs:
        value = _value(example, name)
        if name == "image":
            out[name] = np.asarray(pre.image(value))[None]
        elif name == "audio":
            out[name] = _at_rate(example, meta["sample_rate"])[None]
        else:
            text = value.decode() if isinstance(value, bytes) else str(value)
            out[name] = runtime.tokenize([text], meta["inputs"][name]["preprocessing"])
    return out


def captioning(recipe, out_root):
    """The Flickr8k captioner through its SavedModel (`serving_default`: beam search; the
    `greedy` signature) and its ONNX and LiteRT exports (decoded by `mmzoo/runtime.py`, beam
    and greedy) on the test photos: BLEU-4 and CIDEr-D beside `mmzoo evaluate`'s."""
    import keras
    import numpy as np
    import tensorflow as tf

    import mmzoo
    from mmzoo import runtime
    from mmzoo.data import Preprocessor
    from mmzoo.evaluate import caption_scores, unique_share

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    run, evaluation, seconds, source, split, command = _train(recipe, out_root)
    folder = os.path.join(out_root, f"{recipe}.saved_model")
    _cli("export", run, "--out", folder)
    served = tf.saved_model.load(folder)
    examples = list(mmzoo.data.load(source, split=split, task="captioning").as_numpy_iterator())
    references = [[c.decode() for c in e["captions"]] for e in examples]
    requests = [tf.io.encode_png(e["image"])[None] for e in examples]
    rows = []

    def _caption_row(fmt, signature, method, folder, captions, latency):
        scores = caption_scores(references, captions)
        keras_scores = {k: evaluation[method][k] for k in ("bleu_4", "cider_d")}
        print(f"{recipe} {fmt} {signature} ({method}): BLEU-4 {scores['bleu_4']:.4f}, CIDEr-D "
              f"{scores['cider_d']:.3f} (Keras {keras_scores}), {1000 * latency:.2f} ms",
              flush=True)
        return {"format": fmt, "signature": signature, "decoder": method,
                "bytes": _size(folder), "latency_ms": round(1000 * latency, 3),
                "bleu_4": scores["bleu_4"], "cider_d": scores["cider_d"],
                "unique_captions": unique_share(captions), "images": len(captions),
                "keras": keras_scores}

    for signature, method in (("serving_default", "beam"), ("greedy", "greedy")):
        serve = served.signatures[signature]
        captions, latency = _timed(lambda x: serve(image=x)["caption"].numpy()[0].decode(),
                                   requests)
        rows.append(_caption_row("saved_model", signature, method, folder, captions, latency))
    pre = Preprocessor(keras.saving.load_model(os.path.join(run, "model.keras")))
    pixels = [np.asarray(pre.image(e["image"]))[None] for e in examples]
    for fmt in ("onnx", "litert"):
        folder = os.path.join(out_root, f"{recipe}.{fmt}")
        _cli("export", run, "--format", fmt, "--out", folder)
        runner = runtime.Runner(folder, threads=THREADS)
        for method in ("beam", "greedy"):
            captions, latency = _timed(lambda x: runner.caption(x, method)[0], pixels)
            rows.append(_caption_row(fmt, "runtime.py", method, folder, captions, latency))
    return {"recipe": recipe, "model": "caption_lstm", "data": source, "split": split,
            "train_seconds": round(seconds, 1), "command": command, "threads": THREADS,
            "rows": rows}


def retrieval(recipe, out_root):
    """A dual encoder through each export: every test photo and every caption embedded one
    request at a time by its tower, then recall@k both ways (`mmzoo.evaluate.retrieval_scores`,
    what `mmzoo evaluate` reports) beside the Keras model's."""
    import keras
    import numpy as np
    import tensorflow as tf

    import mmzoo
    from mmzoo import runtime
    from mmzoo.data import Preprocessor
    from mmzoo.evaluate import retrieval_scores

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    run, evaluation, seconds, source, split, command = _train(recipe, out_root)
    pre = Preprocessor(keras.saving.load_model(os.path.join(run, "model.keras")))
    examples = list(mmzoo.data.load(source, split=split, task="retrieval").as_numpy_iterator())
    references = [[c.decode() for c in e["captions"]] if "captions" in e
                  else [e["text"].decode()] for e in examples]
    texts = [c for refs in references for c in refs]
    rows = []
    for fmt, quantize, folder in _exports(recipe, run, out_root, rows):
        if fmt == "saved_model":
            served = tf.saved_model.load(folder)
            image_fn, text_fn = served.signatures["embed_image"], served.signatures["embed_text"]
            images = [tf.io.encode_png(e["image"])[None] for e in examples]
            v, latency = _timed(lambda x: image_fn(image=x)["embedding"].numpy()[0], images)
            t, text_latency = _timed(lambda x: text_fn(text=tf.constant([x]))["embedding"]
                                     .numpy()[0], texts)
        else:
            runner = runtime.Runner(folder, threads=THREADS)
            preprocessing = runner.metadata["inputs"]["text"]["preprocessing"]
            images = [np.asarray(pre.image(e["image"]))[None] for e in examples]
            v, latency = _timed(lambda x: runner("image_encoder", image=x)["embedding"][0],
                                images)
            t, text_latency = _timed(
                lambda x: runner("text_encoder", text=runtime.tokenize([x], preprocessing))
                ["embedding"][0], texts)
        scores = retrieval_scores(np.stack(t), np.stack(v), references)
        rows.append({"format": fmt, "quantize": quantize, "bytes": _size(folder),
                     "latency_ms": round(1000 * latency, 3),
                     "text_latency_ms": round(1000 * text_latency, 3),
                     "text_to_image": scores["text_to_image"],
                     "image_to_text": scores["image_to_text"], "images": scores["images"],
                     "texts": scores["texts"]})
        print(f"{recipe} {fmt} {quantize or ''}: text->image {scores['text_to_image']}, "
              f"{rows[-1]['latency_ms']} ms", flush=True)
    return {"recipe": recipe, "model": "dual_encoder", "data": source, "split": split,
            "train_seconds": round(seconds, 1), "command": command, "threads": THREADS,
            "keras": {"text_to_image": evaluation["text_to_image"],
                      "image_to_text": evaluation["image_to_text"]}, "rows": rows}


TASKS = {"caption_lstm_flickr8k": "captioning", "dual_encoder_flickr8k": "retrieval"}


def run(recipe, out_root):
    if recipe not in RECIPES:
        raise SystemExit(f"unknown recipe {recipe!r}; choose from {list(RECIPES)}")
    measure = {"captioning": captioning, "retrieval": retrieval}.get(TASKS.get(recipe),
                                                                     classification)
    result = measure(recipe, out_root)
    write_result(f"portable_{recipe}", result)
    return result


def _mb(n):
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def table():
    """The README's portable table: one row per export, from bench/results/portable_*.json."""
    lines = ["| model | export | runtime | file | single request | test figure (Keras model) "
             "| measured at |", "|---|---|---|---|---|---|---|"]
    runtimes = {"saved_model": "TensorFlow", "onnx": "onnxruntime", "litert": "ai-edge-litert"}
    for recipe in RECIPES:
        result = read_result(f"portable_{recipe}")
        if result is None:
            continue
        at = shown(result["measured"])
        float_size = next((r["bytes"] for r in result["rows"]
                           if r["format"] == "litert" and not r.get("quantize")
                           and "bytes" in r), None)
        for r in result["rows"]:
            export = r["format"] + (f" {r['quantize']}" if r.get("quantize") else "")
            if "dynamic range" in (r.get("numbers") or ""):
                export += " (weights only)"
            if "error" in r:
                lines.append(f"| `{result['recipe']}` | {export} | - | - | - | not exported: "
                             f"{r['error']} | {at} |")
                continue
            size = _mb(r["bytes"])
            if r.get("quantize") and float_size:
                size += f" ({r['bytes'] / float_size:.2f} of float)"
            if "accuracy" in r:
                unit = {"audio": "clips", "image": "images"}.get(
                    result.get("inputs", ["examples"])[0], "examples")
                figure = (f"accuracy {100 * r['accuracy']:.2f}% "
                          f"({100 * result['keras']['accuracy']:.2f}%; {r['examples']} {unit})")
            elif "text_to_image" in r:
                figure = (f"text→image recall@10 {100 * r['text_to_image']['recall@10']:.1f}% "
                          f"({100 * result['keras']['text_to_image']['recall@10']:.1f}%; "
                          f"{r['texts']} captions of {r['images']} photos; photo "
                          f"{r['latency_ms']:.2f} ms, caption {r['text_latency_ms']:.2f} ms)")
            else:
                export += f" `{r['signature']}` ({r['decoder']})"
                figure = (f"BLEU-4 {r['bleu_4']:.4f}, CIDEr-D {r['cider_d']:.3f} "
                          f"({r['keras']['bleu_4']:.4f}, {r['keras']['cider_d']:.3f}; "
                          f"{r['images']} photos)")
            lines.append(f"| `{result['recipe']}` | {export} | {runtimes[r['format']]} | {size} "
                         f"| {r['latency_ms']:.2f} ms | {figure} | {at} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=RECIPES)
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "runs"))
    args = parser.parse_args()
    for recipe in (RECIPES if args.all else args.model or []):
        run(recipe, os.path.abspath(args.out))


if __name__ == "__main__":
    main()
