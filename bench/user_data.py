"""The shared data arranged in the shapes users keep theirs, for the quality recipes that read
users' layouts (`bench/quality.py`): a table of photo-caption pairs, FSDD one folder per spoken
word, easy-VQA's images one folder per shape.

Each arrangement is a folder of symbolic links to the shared files (which are only read) and
the tables written here; it is made again when missing.
"""

from __future__ import annotations

import csv
import os
import random

from common import DATA

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _link(target, link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    target = os.path.abspath(target)
    if os.path.islink(link) and os.readlink(link) != target:
        os.remove(link)
    if not os.path.lexists(link):
        os.symlink(target, link)


def flickr8k_pairs(out_root, seed=0):
    """`pairs.csv` (columns `image,text,label,split`) beside a link to Flickr8k's photos: each
    photo with each of its own captions (`match`) and, as many times, a caption of another
    photo of its split drawn at random (`mismatch`): chance is 0.5. Flickr8k's official
    training photos are `train` and its dev photos `test` (the split column), so the test rows
    are of photos never trained on; validation is held out of training by photo. Its path."""
    source = os.path.join(DATA, "flickr8k_1k")
    folder = os.path.join(out_root, "flickr8k_pairs")
    _link(os.path.join(source, "Images"), os.path.join(folder, "Images"))
    with open(os.path.join(source, "captions.txt"), newline="") as f:
        rows = list(csv.reader(f))[1:]
    captions = {}
    for image, caption in rows:
        captions.setdefault(image, []).append(caption)
    with open(os.path.join(source, "splits.txt"), newline="") as f:
        splits = {image: split for image, split in list(csv.reader(f))[1:]}
    renamed = {"train": "train", "dev": "test"}
    rng = random.Random(seed)
    by_split = {}
    for image in sorted(captions):
        if splits.get(image) in renamed:
            by_split.setdefault(renamed[splits[image]], []).append(image)
    table = os.path.join(folder, "pairs.csv")
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "text", "label", "split"])
        for split, images in by_split.items():
            for image in images:
                for caption in captions[image]:
                    other = rng.choice([i for i in images if i != image])
                    w.writerow([f"Images/{image}", caption, "match", split])
                    w.writerow([f"Images/{image}", rng.choice(captions[other]), "mismatch",
                                split])
    return table


def fsdd_by_word(out_root):
    """FSDD one folder per spoken word, in FSDD's official split: `train/WORD/*.wav` (index 5
    and up) and `test/WORD/*.wav` (index 0-4). Its path."""
    source = os.path.join(DATA, "fsdd")
    folder = os.path.join(out_root, "fsdd_by_word")
    recordings = os.path.join(source, "recordings")
    recordings = recordings if os.path.isdir(recordings) else source
    for name in sorted(os.listdir(recordings)):
        if not name.endswith(".wav"):
            continue
        digit, _, index = os.path.splitext(name)[0].split("_")
        split = "test" if int(index) < 5 else "train"
        _link(os.path.join(recordings, name),
              os.path.join(folder, split, WORDS[int(digit)], name))
    return folder


def voice_notes(out_root, rate=44100):
    """FSDD recordings as phone voice notes, one per file (`{digit}_{speaker}_{index}.wav`, as
    FSDD names them): each word (FSDD's clip trimmed of its silence, librosa) said within the
    first 0.4 s of a 44.1 kHz mono WAV, then 1.5-3 s of a quiet room (noise 60 dB below the
    word's peak), as people record a word and stop a while later (`bench/voice_notes.py` lays
    them out one folder per word). Written once (each file drawn from its own seed); the
    folder's path."""
    import hashlib

    import librosa
    import numpy as np
    import soundfile

    source = os.path.join(DATA, "fsdd", "recordings")
    folder = os.path.join(out_root, "voice_notes")
    for name in sorted(os.listdir(source)):
        if not name.endswith(".wav"):
            continue
        out = os.path.join(folder, name)
        if os.path.exists(out):
            continue
        rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
        wave, _ = librosa.load(os.path.join(source, name), sr=rate)
        word, _ = librosa.effects.trim(wave, top_db=30)
        lead = int(rng.uniform(0.0, max(0.0, 0.4 - len(word) / rate)) * rate)
        tail = int(rng.uniform(1.5, 3.0) * rate)
        note = np.concatenate([np.zeros(lead, "float32"), word, np.zeros(tail, "float32")])
        note += rng.normal(0, 1e-3 * np.abs(word).max(), note.shape).astype("float32")
        os.makedirs(folder, exist_ok=True)
        soundfile.write(out + ".tmp", note, rate, format="WAV", subtype="PCM_16")
        os.replace(out + ".tmp", out)
    return folder


def easy_vqa_by_shape(out_root):
    """easy-VQA's images one folder per shape (`train/SHAPE/ID.png`, `test/SHAPE/ID.png`), each
    image's shape told by its answered questions (`mmzoo.data.easy_vqa.captions_by_image`;
    the few images whose questions do not tell both shape and colour are left out). Its
    path."""
    import json

    from mmzoo.data import easy_vqa

    root = easy_vqa.package_dir()
    folder = os.path.join(out_root, "easy_vqa_by_shape")
    for split in ("train", "test"):
        with open(os.path.join(root, split, "questions.json")) as f:
            rows = json.load(f)
        questions, answers, ids = zip(*rows)
        captions, _ = easy_vqa.captions_by_image(questions, answers, ids)
        for image, caption in captions.items():
            shape = caption.split()[-1]
            _link(os.path.join(root, split, "images", f"{image}.png"),
                  os.path.join(folder, split, shape, f"{image}.png"))
    return folder
