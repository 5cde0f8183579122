"""Speech with transcripts: spoken digit sequences built from FSDD, and a generic folder of audio
files with a `transcripts.csv`."""

from __future__ import annotations

import csv
import os
import warnings

import numpy as np
import tensorflow as tf

from mmzoo.data.base import Source, hash_split, progress, register_source
from mmzoo.checks import Problems, file_problem, outside_problem, utf8_lines, wav_problem
from mmzoo.data.fsdd import (DIGITS, checked_recordings, find_recordings, rates_of, read_audio,
                             with_rate)
from mmzoo.data.text import standardize
from mmzoo.data.table import SPLIT_VALUES
from mmzoo.errors import DataWarning, InvalidValue, MissingFile

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# FSDD recordings by index: the official test split, then the ones this source holds out for
# validation; the rest is training. No recording is in two splits.
SPLIT_OF_INDEX = (("test", range(0, 5)), ("validation", range(5, 10)))
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def _split_of(index):
    return next((split for split, indices in SPLIT_OF_INDEX if index in indices), "train")


@register_source
class DigitSequences(Source):
    """`digit_sequences:FSDD_PATH`: utterances of several spoken digits and their transcripts.

    Each utterance joins 2 to 7 (`min_digits`..`max_digits`) FSDD recordings of ONE speaker,
    the digits drawn at random, with a silence of 0.05 to 0.3 s (`min_gap`..`max_gap`, zeros)
    between recordings; its transcript is the digits' words (`"three one four"`). Splits come
    from FSDD's own recordings: `test` uses only index 0-4 (FSDD's test split), `validation`
    index 5-9 and `train` index 10-49, so no recording of one split is heard in another. The
    utterances are the same for the same `seed` and counts.

    Examples: `{"audio": float32 waveform at `sample_rate`, "sample_rate": int, "transcript":
    tf.string, "speaker": tf.string, "digits": int64 [n]}`. Every recording is checked when the
    folder is listed (as `fsdd:PATH` checks it).

    Options:
        sample_rate: int. Rate the recordings are read at (8 kHz, FSDD's own).
        seed: int. Seed of the utterances.
        train, validation, test: int. Utterances in each split.
        min_digits, max_digits: int. Digits per utterance.
        min_gap, max_gap: int. Silence between two digits, in milliseconds.
        speakers: str. Comma-separated speakers to use (empty: all), e.g. to hold one out:
            train on `?speakers=george,lucas,nicolas,yweweler`, test on `?speakers=jackson`.
    """

    kind = "digit_sequences"
    tasks = ("transcription",)
    modalities = ("audio",)
    options = {"sample_rate": 8000, "seed": 0, "train": 2000, "validation": 200, "test": 500,
               "min_digits": 2, "max_digits": 7, "min_gap": 50, "max_gap": 300, "speakers": ""}
    description = ("digit_sequences:FSDD_PATH: utterances of 2-7 spoken FSDD digits with "
                   "transcripts (speech to text)")

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        o = self.opts
        if not 1 <= o["min_digits"] <= o["max_digits"]:
            raise InvalidValue(f"{self.name}: need 1 <= min_digits <= max_digits, got "
                               f"{o['min_digits']} and {o['max_digits']}")
        if not 0 <= o["min_gap"] <= o["max_gap"]:
            raise InvalidValue(f"{self.name}: need 0 <= min_gap <= max_gap (ms), got "
                               f"{o['min_gap']} and {o['max_gap']}")
        pools = {}  # split -> speaker -> digit -> [path]
        for full, match, _ in checked_recordings(self.name, path, self.on_error,
                                                 kind=self.kind):
            split = _split_of(int(match["index"]))
            pools.setdefault(split, {}).setdefault(match["speaker"], {}).setdefault(
                int(match["label"]), []).append(full)
        wanted = [s.strip() for s in str(o["speakers"]).split(",") if s.strip()]
        if wanted:
            known = sorted({s for split in pools.values() for s in split})
            unknown = [s for s in wanted if s not in known]
            if unknown:
                raise InvalidValue(f"{self.name}: unknown speaker(s) {unknown}; {path} has "
                                   f"{known}")
            pools = {split: {s: d for s, d in pool.items() if s in wanted}
                     for split, pool in pools.items()}
        self.columns = {"parts": [], "gaps": [], "transcript": [], "speaker": [], "digits": []}
        self.tags = []
        for split in ("train", "validation", "test"):
            for utterance in self._utterances(split, pools.get(split, {})):
                for key, value in utterance.items():
                    self.columns[key].append(value)
                self.tags.append(split)
        if not self.tags:
            raise InvalidValue(f"{self.name}: no usable recordings left in {path!r}")

    def _utterances(self, split, pool):
        """The `split`'s utterances, drawn from its speakers' recordings (`pool`)."""
        o = self.opts
        speakers = sorted(s for s, digits in pool.items() if len(digits) == len(DIGITS))
        incomplete = sorted(set(pool) - set(speakers))
        if incomplete:
            warnings.warn(DataWarning(f"{self.name}: speaker(s) {incomplete} lack a recording of "
                                      f"some digit in the {split} split and are not used"),
                          stacklevel=4)
        if not speakers:
            return []
        rng = np.random.default_rng([o["seed"], SPLIT_SEEDS[split]])
        rate = o["sample_rate"]
        out = []
        for _ in range(o[split]):
            speaker = speakers[rng.integers(len(speakers))]
            digits = rng.integers(0, 10, rng.integers(o["min_digits"], o["max_digits"] + 1))
            parts = [pool[speaker][d][rng.integers(len(pool[speaker][d]))] for d in digits]
            gaps = (rng.uniform(o["min_gap"], o["max_gap"], len(digits) - 1) / 1000 * rate)
            out.append({"parts": parts, "gaps": [int(g) for g in gaps] + [0],
                        "transcript": " ".join(DIGIT_WORDS[d] for d in digits),
                        "speaker": speaker, "digits": [int(d) for d in digits]})
        return out

    def watched(self):
        return (), (find_recordings(self.path),)

    def audio_rates(self):  # utterances are joined at the option's rate
        o = self.opts
        return {int(o["sample_rate"]): o["train"] + o["validation"] + o["test"]}

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        ds = tf.data.Dataset.from_tensor_slices({
            "parts": tf.ragged.constant(rows["parts"]), "gaps": tf.ragged.constant(rows["gaps"]),
            "transcript": rows["transcript"], "speaker": rows["speaker"],
            "digits": tf.ragged.constant(rows["digits"], dtype=tf.int64)})
        rate = self.opts["sample_rate"]

        def join(parts, gaps):
            waves = []
            for path, gap in zip(parts, gaps):
                waves += [read_audio(path, rate)[0], np.zeros(int(gap), np.float32)]
            return np.concatenate(waves)

        def example(e):
            out = {"transcript": e["transcript"], "speaker": e["speaker"], "digits": e["digits"]}
            if decode:
                wave = tf.numpy_function(join, [e["parts"], e["gaps"]], tf.float32,
                                         stateful=False)
                out["audio"] = tf.ensure_shape(wave, [None])
            else:
                out["parts"] = e["parts"]
            return out

        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return with_rate(ds, rate) if decode else ds


@register_source
class Speech(Source):
    """`speech:PATH`: audio files of any length with their transcripts.

    Layout: `PATH/transcripts.csv` with a `file,transcript` header and one row per utterance
    (`file` relative to PATH; optional columns `speaker` and `split`, the split `train`,
    `dev`/`validation`/`val` or `test`), and the audio files (WAV, FLAC, OGG: what libsndfile
    reads), at any sample rate. Without a `split` column, each row's split comes from a stable hash
    of its file name (`mmzoo.data.base.hash_split`: 1 in 10 `validation`, 1 in 10 `test`). A
    file named by an absolute path or climbing out of PATH with `..` is a bad row unless
    `allow_outside=true`.

    Every file is checked when the folder is listed (missing, empty, not audio, truncated,
    longer than `max_seconds`) and every row (no file, empty transcript or one without letters
    or digits, unknown split); bad ones are named with their path or line (`on_error` raise or
    skip).

    Examples: `{"audio": float32 waveform, "sample_rate": int (the file's own rate, or the
    `sample_rate` option's), "transcript", "speaker"}`; `mmzoo.data.pipeline` resamples audio
    to the model's rate.

    Options:
        sample_rate: int. Resample when reading (0: keep each file's own rate).
        allow_outside: bool. Read files named by absolute paths or with `..` (default false).
        max_seconds: int. The longest utterance (default 60 s); a longer file is a bad item
            (an hour-long recording would be read whole into the recogniser).
    """

    kind = "speech"
    tasks = ("transcription",)
    modalities = ("audio",)
    options = {"sample_rate": 0, "allow_outside": False, "max_seconds": 60}
    description = "speech:PATH: audio files + transcripts.csv (file,transcript) (speech to text)"

    def __init__(self, path, **kwargs):
        import soundfile

        super().__init__(path, **kwargs)
        if not path or not os.path.isdir(path):
            raise MissingFile(f"{self.name}: no folder at {path!r}")
        table = os.path.join(path, "transcripts.csv")
        problem = file_problem(table)
        if problem:
            raise MissingFile(f"{self.name}: {table} is {problem}; expected a CSV with a "
                              "file,transcript header and one row per audio file")
        problems = Problems(self.name, self.on_error)
        self.own_splits = True  # until a row without a split is read
        self.table = table
        self.columns = {"audio": [], "sample_rate": [], "transcript": [], "speaker": []}
        self.tags, self.identities = [], []
        with open(table, "rb") as f:
            reader = csv.DictReader(utf8_lines(f, table))
            header = [h.strip().lower() for h in reader.fieldnames or []]
            if "file" not in header or "transcript" not in header:
                raise InvalidValue(f"{self.name}: {table} has header {reader.fieldnames}; it "
                                   "needs the columns file,transcript (and optionally speaker, "
                                   "split)")
            rows = [(reader.line_num, {(k or "").strip().lower(): (v or "").strip()
                                       for k, v in row.items()}) for row in reader]
        rate = self.opts["sample_rate"]
        for line, row in progress(rows, f"checking {self.name}"):
            at = f"{table}:{line}"
            if not row.get("file"):
                problems.add(at, "no file named")
                continue
            outside = outside_problem(row["file"], self.opts["allow_outside"])
            if outside:
                problems.add(at, outside)
                continue
            full = os.path.join(path, row["file"])
            if not row.get("transcript"):
                problems.add(at, f"empty transcript for {row['file']}")
                continue
            if not standardize(tf.constant(row["transcript"])).numpy():
                problems.add(at, f"transcript {row['transcript']!r} of {row['file']} has no "
                                 "letters or digits: it standardises to nothing")
                continue
            split = row.get("split", "")
            if split:
                if split.lower() not in SPLIT_VALUES:
                    problems.add(at, f"split {split!r} is not one of {sorted(SPLIT_VALUES)}")
                    continue
                split = SPLIT_VALUES[split.lower()]
            problem = wav_problem(full)
            if problem:
                problems.add(full, f"{problem} (listed on {at})")
                continue
            info = soundfile.info(full)
            if info.duration > self.opts["max_seconds"]:
                problems.add(full, f"{info.duration:,.1f} s long, over max_seconds="
                                   f"{self.opts['max_seconds']} (listed on {at}): a recogniser "
                                   "reads an utterance whole; cut long recordings into "
                                   "utterances, or raise max_seconds")
                continue
            self.columns["audio"].append(full)
            self.columns["sample_rate"].append(rate or info.samplerate)
            self.columns["transcript"].append(row["transcript"])
            self.columns["speaker"].append(row.get("speaker", ""))
            self.tags.append(split or hash_split(row["file"]))
            self.own_splits = self.own_splits and bool(split)
            self.identities.append(row["file"])
        problems.report(f"{len(rows)} rows of {table}")
        if not self.tags:
            raise InvalidValue(f"{self.name}: no usable audio files listed in {table}")

    def watched(self):
        return (self.table, *self.columns["audio"]), ()

    def audio_rates(self):
        return rates_of(self.columns["sample_rate"])

    def dataset(self, split=None, task=None, *, decode=True):
        rows, _ = self.rows(split, task)
        ds = tf.data.Dataset.from_tensor_slices({
            "audio": rows["audio"], "sample_rate": np.asarray(rows["sample_rate"], np.int32),
            "transcript": rows["transcript"], "speaker": rows["speaker"]})
        if not decode:
            return ds

        def read(path, rate):
            return read_audio(path, int(rate))[0]

        def load(e):
            wave = tf.numpy_function(read, [e["audio"], e["sample_rate"]], tf.float32,
                                     stateful=False)
            return {**e, "audio": tf.ensure_shape(wave, [None])}

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
