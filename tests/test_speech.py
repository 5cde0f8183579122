"""Speech to text: front end, speech sources, padding invariance, WER/CER, CTC end to end."""

import os
import re
import warnings

import numpy as np
import pytest
import soundfile
import tensorflow as tf

import mmzoo
from mmzoo.checks import BadDataError
from mmzoo.evaluate import speech_scores
from mmzoo.tasks.transcription import pad_waveforms, transcribe
from mmzoo.registry import get_spec
from conftest import run_mmzoo

SMALL = "?train=40&validation=10&test=20"


def fsdd_clip(data_dir, name, sr=8000):
    import librosa

    return librosa.load(os.path.join(data_dir, "fsdd", "recordings", name), sr=sr)[0]


def test_log_mel_equals_librosa(data_dir):
    import librosa

    wave = fsdd_clip(data_dir, "3_jackson_7.wav")
    layer = mmzoo.layers.LogMel(8000, n_fft=256, hop_length=80, n_mels=40)
    ours = layer(wave[None]).numpy()[0]
    want = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wave, sr=8000, n_fft=256, hop_length=80, n_mels=40, pad_mode="constant"),
        ref=1.0, amin=1e-10, top_db=80.0).T
    assert ours.shape == want.shape == (layer.num_frames(len(wave)), 40)
    np.testing.assert_allclose(ours, want, atol=2e-3)
    # MFCC still equals librosa's (it is now LogMel followed by the DCT)
    mfcc = mmzoo.layers.MFCC(8000, n_mfcc=13, n_fft=256, hop_length=80)(wave[None]).numpy()[0]
    want = librosa.feature.mfcc(y=wave, sr=8000, n_mfcc=13, n_fft=256, hop_length=80,
                                n_mels=40, pad_mode="constant").T
    np.testing.assert_allclose(mfcc, want, atol=2e-2)


def test_normalisation_does_not_depend_on_the_silence_around_an_utterance(data_dir):
    """The same digit with 0.5 s of silence on both sides gets the same normalised features on
    its own frames (statistics over loud frames), which statistics over every frame would not."""
    wave = fsdd_clip(data_dir, "6_yweweler_3.wav")
    hop = 80
    padded = np.concatenate([np.zeros(4000, "float32"), wave, np.full(4000, 1e-4, "float32")])
    mel = mmzoo.layers.LogMel(8000, n_fft=256, hop_length=hop, n_mels=40)

    def normalised(w, speech_db):
        x = mel(w[None])
        lengths = tf.constant([x.shape[1]])
        norm = mmzoo.layers.UtteranceNormalization(speech_db=speech_db)
        return norm([x, lengths]).numpy()[0]

    inner = slice(4, len(wave) // hop - 4)            # frames away from the edges
    shifted = slice(4000 // hop + 4, 4000 // hop + len(wave) // hop - 4)
    loud = normalised(wave, 40.0)[inner], normalised(padded, 40.0)[shifted]
    np.testing.assert_allclose(loud[0], loud[1], atol=0.05)
    every = normalised(wave, None)[inner], normalised(padded, None)[shifted]
    assert np.abs(every[0] - every[1]).max() > 0.5    # what the loud-frame statistics avoid


def test_digit_sequences_split_fsdd_recordings_and_say_what_they_hold(data_dir):
    source = f"digit_sequences:{data_dir}/fsdd{SMALL}"
    src = mmzoo.data.open_source(source)
    assert src.split_names() == ("train", "validation", "test")
    used = {}
    for split in src.split_names():
        rows, _ = src.rows(split, None)
        assert len(rows["parts"]) == {"train": 40, "validation": 10, "test": 20}[split]
        indices = set()
        for parts, transcript, speaker, digits in zip(rows["parts"], rows["transcript"],
                                                      rows["speaker"], rows["digits"]):
            names = [os.path.basename(p)[:-4].split("_") for p in parts]
            assert 2 <= len(parts) <= 7
            assert {n[1] for n in names} == {speaker}                      # one speaker
            assert [int(n[0]) for n in names] == digits
            assert transcript == " ".join(mmzoo.data.speech.DIGIT_WORDS[d] for d in digits)
            indices |= {int(n[2]) for n in names}
            used.setdefault(split, set()).update(parts)
        allowed = {"test": range(0, 5), "validation": range(5, 10), "train": range(10, 50)}
        assert indices <= set(allowed[split]), (split, sorted(indices))
    assert not (used["train"] & used["test"]) and not (used["validation"] & used["test"])
    # the waveform is the recordings joined by silences, and the same for the same seed
    first = next(iter(src.dataset("test")))
    rows, _ = src.rows("test", None)
    pieces = [fsdd_clip(data_dir, os.path.basename(p)) for p in rows["parts"][0]]
    audio = first["audio"].numpy()
    assert len(audio) == sum(map(len, pieces)) + sum(rows["gaps"][0])
    np.testing.assert_allclose(audio[:len(pieces[0])], pieces[0], atol=1e-6)
    again = mmzoo.data.open_source(source).rows("test", None)[0]
    assert again == rows
    other = mmzoo.data.open_source(source + "&seed=1").rows("test", None)[0]
    assert other["transcript"] != rows["transcript"]
    # one speaker held out: the others only, and an unknown name says which there are
    held = mmzoo.data.open_source(source + "&speakers=jackson").rows("train", None)[0]
    assert set(held["speaker"]) == {"jackson"}
    # tokens follow the unit: characters or words when asked for; by default (`auto`) words
    # for a closed vocabulary like the ten digits, characters past WORDS_UNIT_MAX words
    train = src.dataset("train", decode=False)
    chars = mmzoo.data.adapt("speech_ctc", train, config={"unit": "characters"})
    assert chars == {"tokens": tuple(" efghinorstuvwxz")}
    words = mmzoo.data.adapt("speech_ctc", train, config={"unit": "words"})["tokens"]
    assert words == tuple(sorted(mmzoo.data.speech.DIGIT_WORDS))
    assert mmzoo.data.adapt("speech_ctc", train) == {"tokens": words, "unit": "words"}
    letters = {"tokens": tuple(" abc")}       # tokens given win, and their unit with them
    assert "unit" not in mmzoo.data.adapt("speech_ctc", train, config=letters)
    from mmzoo.tasks.transcription import WORDS_UNIT_MAX

    many = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)} one" for i in range(WORDS_UNIT_MAX)]
    assert len({w for t in many for w in t.split()}) == WORDS_UNIT_MAX + 1
    large = tf.data.Dataset.from_tensor_slices({"transcript": many})
    assert mmzoo.data.adapt("speech_ctc", large)["unit"] == "characters"
    assert mmzoo.data.adapt("speech_ctc", large.take(WORDS_UNIT_MAX - 1))["unit"] == "words"
    assert mmzoo.tasks.transcription.parts(mmzoo.build("speech_ctc", tokens=words)).unit == "words"
    assert mmzoo.tasks.transcription.parts(mmzoo.build("speech_ctc")).unit == "characters"
    with pytest.raises(ValueError, match="with unit='words' every token is one word"):
        mmzoo.build("speech_ctc", unit="words")                  # the default tokens: letters
    known = r"\['george', 'jackson', 'lucas', 'nicolas', 'yweweler'\]"
    with pytest.raises(ValueError, match=r"unknown speaker\(s\) \['jakson'\]; .* has " + known):
        mmzoo.data.open_source(source + "&speakers=george,jakson")


def _write_speech_folder(root, data_dir):
    import librosa

    os.makedirs(root / "clips")
    wave = fsdd_clip(data_dir, "5_lucas_3.wav")
    soundfile.write(root / "clips" / "a.wav", wave, 8000)
    soundfile.write(root / "clips" / "b.flac", librosa.resample(wave, orig_sr=8000,
                                                                target_sr=16000), 16000)
    (root / "clips" / "empty.wav").write_bytes(b"")
    (root / "clips" / "text.wav").write_text("not audio")
    (root / "transcripts.csv").write_text(
        "file,transcript,speaker\n"
        "clips/a.wav,Five!,lucas\n"
        "clips/b.flac,five,lucas\n"
        "clips/missing.wav,four,lucas\n"
        "clips/empty.wav,three,lucas\n"
        "clips/text.wav,two,lucas\n"
        "clips/a.wav,,lucas\n")
    return wave


def test_speech_folder_reads_any_rate_and_names_every_bad_file(data_dir, tmp_path):
    wave = _write_speech_folder(tmp_path, data_dir)
    with pytest.raises(BadDataError) as error:
        mmzoo.data.open_source(f"speech:{tmp_path}")
    message = str(error.value)
    assert "4 bad item(s)" in message
    for bad in ("missing.wav: missing", "empty.wav: empty file", "text.wav: not a readable",
                "transcripts.csv:7: empty transcript"):
        assert bad in message, message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = mmzoo.data.open_source(f"speech:{tmp_path}", on_error="skip")
    assert any("skipped 4 bad item(s)" in str(w.message) for w in caught)
    examples = list(src.dataset(None).as_numpy_iterator())
    assert [e["sample_rate"] for e in examples] == [8000, 16000]     # each file's own rate
    assert [e["transcript"] for e in examples] == [b"Five!", b"five"]
    # the pipeline resamples the 16 kHz file to the model's 8 kHz
    model = mmzoo.build("speech_ctc", **{**get_spec("speech_ctc").test_config,
                                         "tokens": tuple(" efiv")})
    (x, y), = mmzoo.data.pipeline(model, src.dataset(None), batch_size=2).as_numpy_iterator()
    assert x["audio"].shape[1] == pytest.approx(len(wave), abs=4)
    np.testing.assert_array_equal(y, [[4, 5, 6, 3]] * 2)              # "five": f i v e


@pytest.mark.parametrize("name", ["speech_ctc", "speech_ctc_transformer"])
def test_an_utterance_is_transcribed_the_same_alone_and_padded_in_a_batch(name, data_dir,
                                                                          tmp_path):
    """Half a second and six seconds of real speech: the short one alone, and in a batch
    zero-padded to the long one, gives the same frames (to float rounding), the same greedy and
    beam transcripts, and padding frames that are a certain blank; the export agrees, through
    `serving_default` (beam search) one at a time and `transcribe_padded` for the batch, and
    its `greedy` signature with greedy decoding."""
    spec = get_spec(name)
    letters = tuple(" abcdefghijklmnopqrstuvwxyz")
    model = mmzoo.build(name, **{**spec.test_config, "tokens": letters})
    short = fsdd_clip(data_dir, "1_george_2.wav")[:4000]                       # 0.5 s
    long = np.concatenate([fsdd_clip(data_dir, f"{d}_nicolas_{d}.wav") for d in range(10)] * 2)
    long = long[:48000]                                                        # 6 s
    alone = model({"audio": short[None]}, training=False).numpy()[0]
    batch = model({"audio": pad_waveforms([long, short])}, training=False).numpy()[1]
    np.testing.assert_allclose(batch[:len(alone)], alone, atol=1e-4)
    assert np.all(np.argmax(batch[len(alone):], axis=-1) == 0)                # padding: blank
    for method in ("greedy", "beam"):
        one = transcribe(model, [short], method)
        both = transcribe(model, [long, short], method)
        assert one[0] and both[1] == one[0], (method, one, both)
    mmzoo.export(model, tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm"))
    default = served.signatures["serving_default"]
    padded = served.signatures["transcribe_padded"]
    want = transcribe(model, [long, short], "beam")
    assert [default(audio=tf.constant(w[None]))["transcript"].numpy()[0].decode()
            for w in (long, short)] == want
    greedy = served.signatures["greedy"]
    assert [greedy(audio=tf.constant(w[None]))["transcript"].numpy()[0].decode()
            for w in (long, short)] == transcribe(model, [long, short], "greedy")
    # the portable files give per-frame outputs (equal to Keras': tests/test_portable.py),
    # which a runtime decodes as metadata.json says
    from mmzoo.runtime import Runner, ctc_greedy

    from mmzoo.tasks.transcription import decode_ids, transcript_strings

    runner = Runner(mmzoo.export(model, tmp_path / "onnx", format="onnx"))
    frames = model({"audio": pad_waveforms([long, short])}, training=False).numpy()
    decoded = transcript_strings(model, decode_ids(frames, "greedy")).numpy()
    assert ctc_greedy(frames, runner.metadata["ctc"]) == [t.decode() for t in decoded]
    assert len(runner.transcribe(pad_waveforms([long, short]))) == 2
    # beam search as the SavedModel serves it, on each utterance alone (`mmzoo predict`)
    assert [runner.serve(audio=w[None])["transcript"][0] for w in (long, short)] == want
    noisy = pad_waveforms([long, short])
    noisy[1, len(short):] = 0.3                  # whatever is past `lengths` is not heard
    out = padded(audio=tf.constant(noisy), lengths=tf.constant([len(long), len(short)]))
    assert [t.decode() for t in out["transcript"].numpy()] == want


def test_the_runtimes_ctc_beam_search_is_tensorflows(data_dir):
    """`mmzoo.runtime.ctc_beam` (numpy alone) decodes as `tf.nn.ctc_beam_search_decoder` (what
    the SavedModel serves), on random frames of many shapes and beam widths: the same labels
    where a full beam drops prefixes in TensorFlow's order."""
    from mmzoo.runtime import _CTCBeam
    from mmzoo.tasks.transcription import decode_ids

    rng = np.random.default_rng(7)
    for _ in range(120):
        frames, classes, width = (int(rng.integers(5, 40)), int(rng.integers(3, 12)),
                                  int(rng.integers(1, 17)))
        logits = rng.standard_normal((1, frames, classes)) * rng.uniform(0.5, 4)
        log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")
        want = [int(i) for i in decode_ids(log_probs, "beam", beam_width=width).numpy()[0]
                if i >= 0]
        assert _CTCBeam(width).decode(log_probs[0]) == want, (frames, classes, width)


def test_word_and_character_error_rates_as_the_field_counts_them():
    refs = ["three one four", "five", "nine two"]
    hyps = ["three four four five", "five", ""]
    scores = speech_scores(refs, hyps)
    # edits: "one"->"four" and "five" inserted (2); none; "nine two" deleted (2) over 6 words
    assert scores["wer"] == pytest.approx(4 / 6)
    assert scores["exact"] == pytest.approx(1 / 3)
    assert scores["words"] == 6 and scores["utterances"] == 3
    # characters: "three one four" -> "three four four five" is 8 edits, "nine two" 8 deleted
    assert scores["cer"] == pytest.approx((8 + 0 + 8) / (14 + 4 + 8))
    assert speech_scores(["Three, ONE!"], ["three one"])["wer"] == 0.0   # standardised first
    # a reference without words has no error rate (it was 0 whatever was transcribed)
    with pytest.raises(ValueError, match=r"1 reference\(s\) have no words .* #1: '\?!'"):
        speech_scores(["three", "?!"], ["three", "hello world"])


def test_speech_folders_name_overlong_recordings_and_wordless_transcripts(data_dir, tmp_path):
    os.makedirs(tmp_path / "clips")
    wave = fsdd_clip(data_dir, "5_lucas_3.wav")
    soundfile.write(tmp_path / "clips" / "a.wav", wave, 8000)
    soundfile.write(tmp_path / "clips" / "long.wav", np.tile(wave, 8), 8000)   # about 3 s
    (tmp_path / "transcripts.csv").write_text(
        "file,transcript\nclips/a.wav,five\nclips/long.wav,five five five\nclips/a.wav,?!\n"
        "../a.wav,five\n")
    with pytest.raises(BadDataError) as error:
        mmzoo.data.open_source(f"speech:{tmp_path}?max_seconds=2")
    message = str(error.value)
    assert "3 bad item(s)" in message, message
    assert "long.wav: 3.3 s long, over max_seconds=2" in message or \
        "s long, over max_seconds=2" in message, message
    assert "transcripts.csv:4: transcript '?!' of clips/a.wav has no letters or digits" in message
    assert "transcripts.csv:5: '../a.wav' climbs out of the data folder" in message


def test_ctc_training_learns_the_transcripts_it_is_given(data_dir):
    """A few hundred steps on eight real utterances: the loss falls and greedy decoding
    gives back their transcripts (token ids, CTC targets and decoding agree)."""
    src = mmzoo.data.open_source(f"digit_sequences:{data_dir}/fsdd?train=8&validation=2&test=2"
                                 "&max_digits=2")
    train = src.dataset("train")
    # characters and per-utterance normalisation: the CTC mechanics on 8 utterances, with no
    # batch statistics to learn
    config = {**mmzoo.data.adapt("speech_ctc", train, config={"unit": "characters"}),
              "unit": "characters", "normalization": "utterance", "spec_augment": False,
              "units": 64,
              "num_layers": 1, "conv_filters": 8, "dropout": 0.0, "learning_rate": 3e-3}
    model = mmzoo.build("speech_ctc", **config)
    batches = mmzoo.data.pipeline(model, train, batch_size=8, augment=False).cache()
    history = model.fit(batches, epochs=150, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    refs = [e["transcript"].decode() for e in train.as_numpy_iterator()]
    waves = [e["audio"] for e in train.as_numpy_iterator()]
    alone = [transcribe(model, [w])[0] for w in waves]
    assert speech_scores(refs, alone)["wer"] <= 0.25, list(zip(refs, alone))
    # trained, too: each utterance alone and padded in a batch with the longest is the same text
    longest = max(waves, key=len)
    assert [transcribe(model, [longest, w])[1] for w in waves] == alone


def test_cli_trains_evaluates_exports_and_predicts_speech(data_dir, tmp_path):
    def cli(*args):  # the command's `main`, in this process
        out = run_mmzoo(*args)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    data = f"digit_sequences:{data_dir}/fsdd?train=16&validation=4&test=6"
    run = tmp_path / "run"
    printed = cli("train", "speech_ctc", "--data", data, "--epochs", "1", "--out", run,
                  "--set", "units=8", "--set", "num_layers=1", "--set", "conv_filters=4")
    assert "validation transcripts (truth | greedy | beam):" in printed
    import json

    result = json.loads(cli("evaluate", run, "--json"))
    assert result["task"] == "transcription" and result["greedy"]["utterances"] == 6
    assert set(result["beam"]["by_speaker"]) <= {"george", "jackson", "lucas", "nicolas",
                                                  "yweweler"}
    assert 0.0 <= result["greedy"]["cer"] and result["greedy"]["wer"] >= 0.0
    cli("export", run, "--out", tmp_path / "sm")
    clip = os.path.join(data_dir, "fsdd", "recordings", "4_jackson_1.wav")
    said = cli("predict", tmp_path / "sm", "--audio", clip).strip()
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    want = served(audio=tf.constant(fsdd_clip(data_dir, "4_jackson_1.wav")[None]))
    assert said == (f"{clip}: " + want["transcript"].numpy()[0].decode()).strip()
    assert re.fullmatch(r"[a-z ]*", said[len(clip) + 1:].strip())
