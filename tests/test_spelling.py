"""SpellingCNN as a Keras graph: its trunk computes what the authors' ONNX file computes, and
its front end what their published definition does (`mmzoo.blocks.spelling`)."""

import glob
import os

import numpy as np
import pytest

from mmzoo.blocks import spelling
from mmzoo.errors import MissingFile


@pytest.fixture(scope="module")
def weights(data_dir):
    return os.path.join(data_dir, "weights", "spelling_cnn")


def test_the_trunk_equals_the_onnx_file(weights):
    import onnxruntime

    trunk = spelling.load_onnx_weights(spelling.spelling_trunk(), weights)
    assert 1_000_000 < trunk.count_params() < 1_020_000
    mel = np.random.default_rng(0).standard_normal((4, 1, 64, 128)).astype("float32")
    session = onnxruntime.InferenceSession(os.path.join(weights, spelling.ONNX_FILE))
    want = session.run(None, {"log_mel": mel})[0]
    _, logits = trunk.predict(mel.transpose(0, 2, 3, 1), verbose=0)
    np.testing.assert_allclose(logits, want, atol=1e-4)


def test_the_front_end_equals_the_published_definition_and_recognises_digits(weights,
                                                                             data_dir):
    import librosa

    files = sorted(glob.glob(os.path.join(data_dir, "fsdd", "recordings", "*_george_1.wav")))
    waves = np.stack([np.pad(w, (0, max(0, 16000 - len(w))))[:16000] for w in
                      (librosa.load(f, sr=16000)[0] for f in files)]).astype("float32")
    ours = np.asarray(spelling.SpellingLogMel()(waves))[..., 0]
    want = np.stack([spelling.published_log_mel(w) for w in waves])
    np.testing.assert_allclose(ours, want, atol=1e-4)     # float32 against librosa's float64
    _, logits = spelling.spelling_encoder(weights).predict(waves, verbose=0)
    names = spelling.class_names(weights)
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    said = [words[i] for i in np.argmax(logits[:, [names.index(w) for w in words]], axis=1)]
    heard = [words[int(os.path.basename(f)[0])] for f in files]
    assert np.mean([a == b for a, b in zip(said, heard)]) >= 0.8, list(zip(said, heard))


def test_wrong_weights_name_what_to_pass(tmp_path):
    with pytest.raises(MissingFile, match="no spelling_cnn_mel.onnx in"):
        spelling.weights_folder(tmp_path)


def test_a_head_on_the_frozen_encoder_recognises_a_voice_it_never_heard(weights, data_dir,
                                                                       tmp_path):
    """`audio_spelling_cnn`: trained on four FSDD speakers' "zero" and "one" (its embeddings
    computed once and cached), it tells george's apart."""
    import shutil

    from conftest import run_mmzoo

    fsdd = os.path.join(data_dir, "fsdd", "recordings")
    for name in sorted(os.listdir(fsdd)):
        digit, speaker, index = name[:-4].split("_")
        if digit in "01" and int(index) < 8:
            split = "test" if speaker == "george" else "train"
            folder = tmp_path / "words" / split / ("zero", "one")[int(digit)]
            os.makedirs(folder, exist_ok=True)
            shutil.copy(os.path.join(fsdd, name), folder / name)
    run = tmp_path / "run"
    out = run_mmzoo("train", "audio_spelling_cnn", "--data", f"audio:{tmp_path / 'words'}",
                    "--set", f"audio_weights={weights}", "--epochs", "4", "--out", str(run))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "frozen audio backbone: computed once per example" in out.stderr
    out = run_mmzoo("evaluate", str(run), "--json")
    import json

    result = json.loads(out.stdout)
    assert result["examples"] == 16 and result["accuracy"] >= 0.9, result


def test_the_frozen_encoder_is_a_fixed_front_end_and_its_features_train_the_same_head(weights):
    """`front_ends` finds the frozen backbone (not a fine-tuned one); the feature model on its
    embeddings computes what the whole model computes; the cache key tells weights apart."""
    import mmzoo
    from mmzoo.contract import front_end_key, front_ends
    from mmzoo.features import feature_model

    model = mmzoo.build("audio_spelling_cnn", audio_weights=weights, labels=("a", "b"))
    fronts = front_ends(model)
    assert list(fronts) == ["audio"] and fronts["audio"].name == "audio_backbone"
    assert not front_ends(mmzoo.build("audio_spelling_cnn", audio_weights=None,
                                      audio_trainable=True, labels=("a", "b")))
    waves = np.random.default_rng(0).uniform(-0.3, 0.3, (3, 16000)).astype("float32")
    whole = model.predict({"audio": waves}, verbose=0)
    embedding = fronts["audio"].predict(waves, verbose=0)
    head = feature_model(model).predict({"audio": embedding}, verbose=0)
    np.testing.assert_allclose(head, whole, rtol=1e-5, atol=1e-6)
    random = front_ends(mmzoo.build("audio_spelling_cnn", audio_weights=None, labels=("a", "b")))
    assert front_end_key(fronts) != front_end_key(random)
    assert front_end_key(fronts) == front_end_key(front_ends(mmzoo.build(
        "audio_spelling_cnn", audio_weights=weights, labels=("a", "b"))))


def test_the_front_end_takes_no_other_settings():
    from mmzoo.errors import InvalidValue
    from mmzoo.layers import SpellingLogMel

    with pytest.raises(InvalidValue, match=r"takes no \['n_fft'\]"):
        SpellingLogMel(n_fft=256)
