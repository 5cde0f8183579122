"""File checks run when a source is listed, and how bad items are reported.

Every file a source names is checked from its header (and, for images, its last bytes) before
any training starts, so a bad file surfaces with its path at once, not hours into a run. This
module imports no TensorFlow: `mmzoo predict` checks its inputs with it on a portable export's
runtime alone.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import sys
import warnings

import numpy as np

from mmzoo.errors import DATA_ERROR, DataWarning, InvalidValue

MAX_LISTED = 20  # bad items named in an error message (a warning names them all)
SHARED_REASON = 5  # a reason shared by at least this many (and most) bad items is said once
_REASON = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d[\d.,]*\b")  # the values in a reason
# The files of each kind in a folder (`images:DIR`, `audio:DIR`, `mmzoo predict --image DIR`)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


class BadDataError(InvalidValue):
    """A data source holds bad items; `problems` is the list of `(where, what is wrong)`."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class Problems:
    """Bad items found while listing a source, reported together by `report`.

    Args:
        source: str. The source, as the user named it (used in messages).
        on_error: str. `raise`: `report` raises a `BadDataError` naming every bad item (up to
            20, then a count); `skip`: `report` warns naming each bad item and their count.
    """

    def __init__(self, source, on_error="raise"):
        if on_error not in ("raise", "skip"):
            raise InvalidValue(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.source, self.on_error, self.items = source, on_error, []

    def add(self, where, what):
        self.items.append((str(where), what))

    def __bool__(self):
        return bool(self.items)

    def _shared_reason(self):
        """`(lines, the other items)`: when one reason (the message with its quoted values and
        numbers set aside) is shared by most bad items (and at least 5), one line saying it
        with its count and first places, the items of other reasons listed after."""
        reasons = {}
        for i, (_, what) in enumerate(self.items):
            reasons.setdefault(_REASON.sub("…", what), []).append(i)
        shared = max(reasons.values(), key=len)
        if len(shared) < max(SHARED_REASON, len(self.items) / 2):
            return [], self.items
        places = ", ".join(self.items[i][0] for i in shared[:3])
        line = (f"  {len(shared):,} of them for one reason, e.g. {self.items[shared[0]][1]} "
                f"(at {places}{' ...' if len(shared) > 3 else ''})")
        gone = set(shared)
        return [line], [item for i, item in enumerate(self.items) if i not in gone]

    def report(self, among):
        """Raise or warn about the problems found `among` (e.g. "2500 .wav files"); no-op
        when there are none."""
        if not self.items:
            return
        n = len(self.items)
        if self.on_error == "raise":
            lines, rest = self._shared_reason()
            lines += [f"  {where}: {what}" for where, what in rest[:MAX_LISTED]]
            if len(rest) > MAX_LISTED:
                lines.append(f"  ... and {len(rest) - MAX_LISTED} more")
            raise BadDataError(
                f"{self.source}: {n} bad item(s) among {among}:\n" + "\n".join(lines)
                + "\nFix or remove them, or leave them out with on_error='skip' (--on-error "
                "skip; each is then named in a warning).", self.items)
        warnings.warn(DataWarning(f"{self.source}: skipped {n} bad item(s) among {among}",
                                  [f"{where}: {what}" for where, what in self.items]),
                      stacklevel=4)


def any_field_size():
    """Let Python's `csv` read cells of any size (its default limit is 131,072 characters: a
    longer cell, such as an article or a base64 image, would be a bad row)."""
    csv.field_size_limit(min(sys.maxsize, 2 ** 31 - 1))


def utf8_lines(f, path):
    """The lines of binary file `f` decoded as UTF-8 (a byte-order mark dropped; Python's own
    decoder, in C), for `csv.reader` (of cells of any size: `any_field_size`): a line that is
    not UTF-8 fails naming the file and the line (found by reading the file again, line by
    line, only then)."""
    any_field_size()
    try:
        yield from io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
        return
    except UnicodeDecodeError:
        pass
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise InvalidValue(
                    f"{path}:{number}: not UTF-8 text (byte {line[e.start:e.start + 1]!r} at "
                    f"column {e.start + 1}); save the file as UTF-8") from None
    raise InvalidValue(f"{path}: not UTF-8 text; save the file as UTF-8")


def outside_problem(name, allow_outside=False):
    """Why a file `name` given in a data file (a caption list, a transcript table) is not read
    (it is absolute, or climbs out of the data folder with `..`), or None. A lexical check: a
    symlinked folder inside the data is the user's own choice and is followed."""
    if allow_outside:
        return None
    shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name):,} characters)"
    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0]:
        return (f"{shown} is an absolute path, outside the data folder; name files relative "
                "to it, or pass allow_outside=true to read files elsewhere")
    parts = os.path.normpath(name.replace("\\", "/")).split("/")
    if parts and parts[0] == "..":
        return (f"{shown} climbs out of the data folder with '..'; name files inside it, or "
                "pass allow_outside=true to read files elsewhere")
    return None


def file_problem(path):
    """Why `path` cannot be read as a file (missing, a folder, empty), or None."""
    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "not a file"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    return None


def read_audio(value, rate=0, inline=False):
    """`(waveform, rate)` of an audio file: mono float32 (channels averaged) at `rate` Hz,
    resampled by librosa when the file's own differs (`rate` 0: the file's own). `value` is a
    path (str or bytes) or, with `inline`, the file's bytes (a table's audio cell). Every audio
    source and `mmzoo predict` read through this one function; an error names the file.
    """
    import librosa

    if inline:
        where, source = "audio bytes", io.BytesIO(value)
    else:
        where = source = value.decode() if isinstance(value, bytes) else str(value)
    try:
        wave, sr = librosa.load(source, sr=int(rate) or None, mono=True)
    except Exception as e:
        raise InvalidValue(f"{DATA_ERROR}{where}: cannot read audio ({e}); it changed or went "
                           "away after the data was listed, or is not audio") from e
    return wave.astype(np.float32), np.int32(sr)


def wav_problem(path):
    """Why `path` is not a readable, complete audio file, or None.

    Reads the header with libsndfile (`soundfile.info`): not audio, no samples. For RIFF/WAVE
    files it also walks the chunks and compares the `data` chunk's declared size with the bytes
    on disk, because libsndfile reads a truncated WAV without complaint.
    """
    import soundfile

    problem = file_problem(path)
    if problem:
        return problem
    try:
        info = soundfile.info(path)
    except Exception as e:  # libsndfile's error says what it could not parse
        return f"not a readable audio file ({str(e).strip() or type(e).__name__})"
    if info.frames == 0:
        return "no audio samples (header declares 0 frames)"
    return _riff_truncation(path)


def audio_info(source):
    """`(problem, sample rate)` of an audio file's path or a file object of its bytes:
    `problem` why it is not readable, complete audio (None when it is), the rate None then."""
    problem, facts = audio_facts(source, samples=False)
    return problem, facts and facts.rate


SILENT_PEAK = 1e-4  # a clip whose loudest sample is below this (-80 dBFS) is silent


class AudioFacts(tuple):
    """What listing learns of an audio file: `rate` (Hz), `seconds` and `peak` (its loudest
    sample's magnitude, None when the samples were not read)."""

    def __new__(cls, rate, seconds, peak=None):
        return super().__new__(cls, (rate, seconds, peak))

    rate = property(lambda self: self[0])
    seconds = property(lambda self: self[1])
    peak = property(lambda self: self[2])

    @property
    def silent(self):
        return self.peak is not None and self.peak < SILENT_PEAK


def audio_facts(source, samples=True):
    """`(problem, AudioFacts or None)` of an audio file's path or a file object of its bytes:
    `problem` why it is not readable, complete audio (None when it is). With `samples`, the
    samples are read (libsndfile, in blocks) for the clip's peak: silent clips are named."""
    import soundfile

    if isinstance(source, str):
        problem = wav_problem(source)
        if problem:
            return problem, None
    try:
        info = soundfile.info(source)
    except Exception as e:
        return f"not a readable audio file ({str(e).strip() or type(e).__name__})", None
    if info.frames == 0:
        return "no audio samples (header declares 0 frames)", None
    peak = None
    if samples:
        if not isinstance(source, str):
            source.seek(0)
        try:
            peak = 0.0
            for block in soundfile.blocks(source, blocksize=1 << 18, dtype="float32"):
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
        except Exception as e:
            return f"cannot read its samples ({str(e).strip() or type(e).__name__})", None
    return None, AudioFacts(int(info.samplerate), float(info.frames) / info.samplerate, peak)


def warn_silent(source, names, among):
    """Warn naming the silent clips (`names`: their paths or rows) of a source."""
    if names:
        warnings.warn(DataWarning(
            f"{source}: {len(names)} of {among} clip(s) are silent (their loudest sample is "
            "below -80 dBFS): a model learns nothing from them; check the recordings",
            [f"{name}: silent" for name in names]), stacklevel=4)


def _riff_truncation(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not RIFF/WAVE (FLAC, OGG, ...): libsndfile's own checks apply
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size == 0xFFFFFFFF:  # streamed WAV: size unknown, nothing to compare
                    return None
                on_disk = size - offset - 8
                if on_disk < chunk_size:
                    return (f"truncated: its header declares {chunk_size} bytes of samples but "
                            f"only {on_disk} are on disk")
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return "no 'data' chunk: the WAV header ends before any samples"


# Magic numbers of the formats `tf.io.decode_image` reads, and how each file must end.
_IMAGE_FORMATS = (
    ("JPEG", lambda h: h[:3] == b"\xff\xd8\xff"),
    ("PNG", lambda h: h[:8] == b"\x89PNG\r\n\x1a\n"),
    ("GIF", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    ("BMP", lambda h: h[:2] == b"BM"),
    ("WebP", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
)


def image_problem(path):
    """Why `path` is not a complete JPEG/PNG/GIF/BMP/WebP image, or None.

    Reads the first bytes (the format's magic number) and the last ones (a JPEG's end-of-image
    marker, a PNG's IEND chunk), so missing, empty, non-image and truncated files are caught
    without decoding.
    """
    problem = file_problem(path)
    if problem:
        return problem
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, os.path.getsize(path) - 4096))
        tail = f.read()

    def whole():
        with open(path, "rb") as f:
            return f.read()

    return _image_ends_problem(head, tail, whole)


def image_bytes_problem(data):
    """Why `data` (an image file's bytes) is not a complete JPEG/PNG/GIF/BMP/WebP image, or
    None (the checks of `image_problem`)."""
    if not data:
        return "empty (0 bytes)"
    return _image_ends_problem(data[:16], data[-4096:], lambda: data)


def _jpeg_ends(data):
    """Whether JPEG `data` holds its end-of-image marker after its image data, with anything
    after it (a phone's motion photo appends a video): its segments walked from the start,
    each scan's entropy-coded bytes skipped (0xFF there is followed by 0x00 or a restart
    marker), so the end marker of an embedded thumbnail is not taken for the image's."""
    at, size = 2, len(data)
    while at + 4 <= size:
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        at += 2 + length
        if marker == 0xDA:  # a scan: skip its entropy-coded data to the next marker
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= size:
                    return False
                following = data[at + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    at += 2
                    continue
                break
    return False


def _image_ends_problem(head, tail, whole=None):
    kind = next((name for name, match in _IMAGE_FORMATS if match(head)), None)
    if kind is None:
        return ("not an image: its first bytes are none of JPEG, PNG, GIF, BMP or WebP "
                f"({head[:8]!r})")
    if kind == "JPEG" and b"\xff\xd9" not in tail and not (whole and _jpeg_ends(whole())):
        return "truncated JPEG: no end-of-image marker (FFD9) after its image data"
    if kind == "PNG" and b"IEND" not in tail[-16:]:
        return "truncated PNG: no IEND chunk at the end of the file"
    return None


__all__ = ["AudioFacts", "BadDataError", "Problems", "audio_facts", "audio_info", "warn_silent", "file_problem", "image_bytes_problem",
           "image_problem", "outside_problem",
           "utf8_lines", "wav_problem"]
