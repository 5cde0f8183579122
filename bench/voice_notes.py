"""Phone voice notes, leave one speaker out: does a user's audio reach the model whole?

FSDD's recordings made into voice notes (`bench/user_data.py`: each word said within the first
0.4 s of a 44.1 kHz WAV, then 1.5-3 s of a quiet room), one folder per spoken word, and the
same recordings as they are; each of FSDD's five speakers is held out in turn (`test/`, never
trained on) and `audio_mfcc_cnn` trained with `mmzoo train`'s default settings (no option but
`--data`: 10 epochs, batch 64, the clip length its own choice) on the other four. The rows:

- `voice_notes`: the voice notes with this checkout (clip length chosen from the data, longer
  clips cut to their loudest part);
- `fsdd`: the recordings as they are, the same way (what the model makes of a speaker it never
  heard when nothing is cut away: the ceiling the voice notes can reach);
- `voice_notes_before` (`--before REV`): the voice notes with another commit's mmzoo (a
  worktree of it), e.g. the one before the clip length came from the data;
- `spelling_voice_notes`, `spelling_fsdd`: the same with `audio_spelling_cnn` (SpellingCNN,
  pretrained on many voices, frozen; its weights given as `--set audio_weights=` the shared
  folder, as on a machine without GitHub; nothing else set).

Each row: every held-out speaker's accuracy and the mean, the clip length the run chose, the
clips it cut, and the seconds per run. Results in bench/results/voice_notes.json.

Run: `python bench/voice_notes.py [--before REV]`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import user_data
from common import DATA, ROOT, git, read_result, write_result

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")


def _by_speaker(files, held, folder):
    """Links `folder/{train,test}/WORD/NAME.wav` to `files` (`{name: path}`, names
    `{digit}_{speaker}_{index}.wav`), the speaker `held` in `test/`."""
    for name, path in files.items():
        digit, speaker, _ = os.path.splitext(name)[0].split("_")
        link = os.path.join(folder, "test" if speaker == held else "train",
                            user_data.WORDS[int(digit)], name)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(path), link)
    return folder


def _files(kind, out_root):
    if kind == "fsdd":
        folder = os.path.join(DATA, "fsdd", "recordings")
        return {n: os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".wav")}
    notes = user_data.voice_notes(out_root)
    return {n: os.path.join(root, n) for root, _, names in os.walk(notes) for n in names
            if n.endswith(".wav")}


MODELS = {"spelling": ("audio_spelling_cnn",
                     ["--set", f"audio_weights={os.path.join(DATA, 'weights', 'spelling_cnn')}"])}


def run_one(data, run_dir, epochs, root, model="audio_mfcc_cnn", sets=()):
    """Train and evaluate with the mmzoo of checkout `root`: (accuracy, clip line, seconds)."""
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [sys.executable, "-m", "mmzoo.cli"]
    start = time.perf_counter()
    epochs = ["--epochs", str(epochs)] if epochs else []   # else mmzoo train's default
    out = subprocess.run(cli + ["train", model, "--data", f"audio:{data}", *epochs, *sets,
                                "--out", run_dir, "--overwrite"], env=env,
                         capture_output=True, text=True, cwd=root)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    seconds = time.perf_counter() - start
    said = [line for line in out.stderr.splitlines() if line.startswith("audio: ")
            and "resampled" not in line]
    result = subprocess.run(cli + ["evaluate", run_dir, "--json"], env=env,
                            capture_output=True, text=True, check=True, cwd=root)
    with open(os.path.join(run_dir, "config.json")) as f:
        clip = json.load(f)["config"].get("clip_seconds", 1.0)
    return json.loads(result.stdout)["accuracy"], clip, said, seconds


def row(kind, out_root, epochs, root):
    model, sets = MODELS.get(kind.split("_")[0], ("audio_mfcc_cnn", []))
    files = _files(kind.replace("_before", "").replace("spelling_", ""), out_root)
    speakers = {}
    for held in SPEAKERS:
        data = _by_speaker(files, held, os.path.join(out_root, f"{kind}_{held}"))
        accuracy, clip, said, seconds = run_one(
            data, os.path.join(out_root, f"run_{kind}_{held}"), epochs, root, model, sets)
        speakers[held] = {"accuracy": round(accuracy, 4), "clip_seconds": clip,
                          "said": said, "seconds": round(seconds, 1)}
        print(f"{kind}: {held} held out: accuracy {accuracy:.3f} (clip {clip:g} s, "
              f"{seconds:.0f} s)", flush=True)
    mean = sum(s["accuracy"] for s in speakers.values()) / len(speakers)
    return {"model": model, "sets": sets[1::2], "speakers": speakers,
            "mean_accuracy": round(mean, 4)}


ROWS = {"voice_notes_before": "voice notes, mmzoo before (clip 1 s, cut in its middle)",
        "voice_notes": "voice notes (clip length from the data, cut to the loudest part)",
        "fsdd": "FSDD recordings as they are (the same way)",
        "spelling_voice_notes": "voice notes, `audio_spelling_cnn` (pretrained, frozen)",
        "spelling_fsdd": "FSDD recordings, `audio_spelling_cnn` (pretrained, frozen)"}


def table():
    """The Markdown table of bench/results/voice_notes.json, for docs/results.md."""
    result = read_result("voice_notes")
    if result is None:
        return "_Not measured yet: run `python bench/voice_notes.py --before REV`._"
    from common import shown

    lines = ["| data and model | " + " | ".join(SPEAKERS) + " | mean | clip | measured at |",
             "|---|" + "---|" * (len(SPEAKERS) + 3)]
    for kind, label in ROWS.items():
        r = result["rows"].get(kind)
        if r is None:
            continue
        clips = sorted({s["clip_seconds"] for s in r["speakers"].values()})
        at = f"commit {r['commit'][:7]}" if "commit" in r else shown(result["measured"])
        lines.append(f"| {label} | " + " | ".join(
            f"{r['speakers'][s]['accuracy']:.3f}" for s in SPEAKERS)
            + f" | **{r['mean_accuracy']:.3f}** | {', '.join(f'{c:g} s' for c in clips)} | "
            f"{at} |")
    return (f"`audio_mfcc_cnn` unless named, epochs {result['epochs']}, accuracy on the "
            "held-out speaker "
            f"({result['protocol']}); {result['measured']['machine']}:\n\n"
            + "\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV",
                        help="also the voice notes with the mmzoo of this commit")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: mmzoo train's own, as a user runs it)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(),
                                                      "mmzoo_voice_notes"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    result = {"model": "audio_mfcc_cnn", "epochs": args.epochs or "default (10)",
              "batch_size": "default (64)",
              "protocol": "each FSDD speaker held out in turn (test/, never trained on); "
                          "mmzoo train's default settings on the other four",
              "rows": {}}
    previous = read_result("voice_notes")
    if previous and not args.before and "voice_notes_before" in previous.get("rows", {}):
        result["rows"]["voice_notes_before"] = previous["rows"]["voice_notes_before"]
    if args.before:
        worktree = os.path.join(args.out, "before")
        if not os.path.isdir(worktree):
            git("worktree", "add", "--detach", worktree, args.before)
        before = row("voice_notes_before", args.out, args.epochs, worktree)
        result["rows"]["voice_notes_before"] = {**before, "commit": git(
            "rev-parse", args.before)}
    for kind in ("voice_notes", "fsdd", "spelling_voice_notes", "spelling_fsdd"):
        result["rows"][kind] = row(kind, args.out, args.epochs, ROOT)
    write_result("voice_notes", result)
    for kind, r in result["rows"].items():
        print(f"{kind}: mean {r['mean_accuracy']:.3f} " + ", ".join(
            f"{s} {v['accuracy']:.3f}" for s, v in r["speakers"].items()))


if __name__ == "__main__":
    main()
