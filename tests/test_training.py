"""Short real trainings on easy-VQA, decoding, and the `mmzoo` command."""

import collections
import hashlib
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.tasks import captioning, retrieval


def test_vqa_cnn_lstm_beats_the_majority_answer_on_real_easy_vqa():
    train = mmzoo.data.load("easy_vqa", split="train").take(12000)
    test = mmzoo.data.load("easy_vqa", split="test").take(3000)
    model = mmzoo.build("vqa_cnn_lstm", image_size=32, filters=(16, 32), embed_dim=32,
                        text_units=32, fusion_dim=32, hidden_units=(32,))
    model.fit(mmzoo.data.pipeline(model, train, batch_size=64, training=True, seed=0),
              epochs=2, verbose=0)
    _, accuracy = model.evaluate(mmzoo.data.pipeline(model, test, batch_size=256), verbose=0)
    train_labels = [e["label"] for e in mmzoo.data.load("easy_vqa", split="train").take(12000)
                    .map(lambda e: {"label": e["label"]}).as_numpy_iterator()]
    majority = collections.Counter(train_labels).most_common(1)[0][0]
    test_labels = [e["label"] for e in test.map(lambda e: {"label": e["label"]})
                   .as_numpy_iterator()]
    baseline = np.mean([label == majority for label in test_labels])
    print(f"vqa accuracy {accuracy:.3f}, majority answer {majority!r} {baseline:.3f}")
    assert accuracy > baseline + 0.15


@pytest.fixture(scope="module")
def caption_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = mmzoo.data.load("easy_vqa", split="train", task="captioning")
    model = mmzoo.build("caption_lstm", image_size=32, filters=(16, 32, 64), units=64)
    model.fit(mmzoo.data.pipeline(model, train, batch_size=32, training=True, seed=0),
              epochs=6, verbose=0)
    return model


def test_caption_lstm_learns_real_captions(caption_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = mmzoo.data.load("easy_vqa", split="validation", task="captioning").take(64)
    truth = [e["text"].decode() for e in val.as_numpy_iterator()]
    images = np.stack([tf.image.resize(e["image"], (32, 32)).numpy()
                       for e in val.as_numpy_iterator()])
    greedy = captioning.generate(caption_model, images, "greedy")
    beam = captioning.generate(caption_model, images, "beam", num_beams=3)
    words = set(mmzoo.data.easy_vqa.CAPTION_WORDS)
    for caption in greedy + beam:
        assert caption and set(caption.split()) <= words, caption
    greedy_exact = np.mean([g == t for g, t in zip(greedy, truth)])
    beam_exact = np.mean([b == t for b, t in zip(beam, truth)])
    print(f"exact captions: greedy {greedy_exact:.2f}, beam {beam_exact:.2f}")
    # 24 possible captions: chance of an exact one is 0.04; 6 short epochs reach 0.4-0.9
    assert greedy_exact > 0.3 and beam_exact > 0.3


def test_a_portable_captioner_decodes_as_the_savedmodel(caption_model, tmp_path):
    """The ONNX and LiteRT exports of a trained captioner (an image encoder and a decoder
    called once per word), decoded by `mmzoo/runtime.py` as metadata.json says, give the
    captions of the SavedModel's beam-search `serving_default` and its `greedy` signature."""
    from mmzoo.runtime import Runner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = mmzoo.data.load("easy_vqa", split="validation", task="captioning").take(12)
    pixels = np.stack([tf.cast(tf.round(tf.image.resize(e["image"], (32, 32), antialias=True)),
                               tf.uint8).numpy() for e in val.as_numpy_iterator()])
    served = tf.saved_model.load(mmzoo.export(caption_model, tmp_path / "sm"))
    pngs = tf.stack([tf.io.encode_png(p) for p in pixels])
    want = {method: [c.decode() for c in served.signatures[signature](image=pngs)["caption"]
                     .numpy()]
            for method, signature in (("beam", "serving_default"), ("greedy", "greedy"))}
    assert want["beam"] == captioning.generate(caption_model, pixels, "beam")
    for fmt in ("onnx", "litert"):
        runner = Runner(mmzoo.export(caption_model, tmp_path / fmt, format=fmt))
        for method in ("beam", "greedy"):
            assert runner.caption(pixels, method) == want[method], (fmt, method)
    # `mmzoo predict` asks for the image alone (the prompt is the decoder's), and says the
    # served caption whatever the export
    files = []
    for i, png in enumerate(pngs.numpy()):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(png)
    for path in (tmp_path / "sm", tmp_path / "onnx", tmp_path / "litert"):
        rows = mmzoo.predict.predict(str(path), {"image": [str(f) for f in files]})
        assert [r["caption"] for r in rows] == want["beam"], path


def test_beam_search_of_width_one_is_greedy(caption_model):
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    assert captioning.generate(caption_model, images, "beam", num_beams=1) == \
        captioning.generate(caption_model, images, "greedy")
    with pytest.raises(ValueError, match="unknown decoding method 'sample'"):
        captioning.generate(caption_model, images, "sample")


def test_dual_encoder_has_separate_unit_norm_encoders():
    model = mmzoo.build("dual_encoder", image_size=16, filters=(4,), embedding_dim=8)
    text_encoder, image_encoder = retrieval.encoders(model)
    ids = np.array([[2, 5, 9, 0, 0, 0, 0, 0]], "int32")
    t = text_encoder.predict(ids, verbose=0)
    images = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    v = image_encoder.predict(images, verbose=0)
    assert t.shape == (1, 8) and v.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def _mmzoo(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600, env=env)


def test_cli_list_and_describe():
    from conftest import run_mmzoo  # in this process: the same code as the command

    out = run_mmzoo("list", "--task", "captioning")
    assert out.returncode == 0 and out.stdout.split()[0] == "caption_lstm"
    out = run_mmzoo("describe", "vqa_cnn_lstm", "--set", "fusion=gated", "--set",
                    "image_size=32")
    assert out.returncode == 0 and "fusion = gated" in out.stdout and "parameters:" in out.stdout
    out = run_mmzoo("describe", "vqa_cnn_lsmt")
    assert out.returncode == 2 and "did you mean 'vqa_cnn_lstm'?" in out.stderr


def test_cli_train_writes_the_model_and_prints_captions(tiny_easy_vqa, tmp_path):
    out = _mmzoo("train", "caption_lstm", "--data", f"easy_vqa:{tiny_easy_vqa}", "--epochs", "2",
                 "--batch-size", "16", "--out", str(tmp_path / "run"), "--set", "image_size=16",
                 "--set", "filters=(8,)")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "best epoch" in out.stdout and "truth | greedy | beam" in out.stdout
    assert os.path.isfile(tmp_path / "run" / "model.keras")
    # easy-VQA's images whose questions do not tell a caption: said once per split, in one
    # short line, each image named in the run folder
    said = [line for line in out.stderr.splitlines() if line.startswith("mmzoo: warning:")]
    assert len(said) == 2 and len(set(said)) == 2, out.stderr
    assert all("have no caption" in line and ".png" not in line for line in said), said
    details = (tmp_path / "run" / "warnings.txt").read_text()
    assert details.count(".png: its questions do not tell its") >= 2
    assert "I0000" not in out.stderr and "E0000" not in out.stderr
    config = json.load(open(tmp_path / "run" / "config.json"))
    assert config["model"] == "caption_lstm" and config["overrides"]["image_size"] == 16
    # the vocabulary is carried by the model (an asset of model.keras), recorded by its digest
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    tokens = mmzoo.layers.vocab.model_vocabulary(model, "text")
    assert "[start]" in tokens
    assert config["config"]["vocabulary"] == {
        "size": len(tokens), "sha256": hashlib.sha256("\n".join(tokens).encode()).hexdigest()}


def test_evaluate_captioning_bleu_and_image_ablation(caption_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = mmzoo.data.load("easy_vqa", split="validation", task="captioning").take(64)
    result = mmzoo.evaluate(caption_model, val, modality_ablation=True)
    assert result["images"] == 64
    for method in ("greedy", "beam"):
        assert result[method]["bleu_1"] >= result[method]["bleu_4"] > 0.5
        assert result[method]["cider_d"] > 1.0
    blind = result["ablation"]["image_zeroed"]
    assert blind["greedy"]["bleu_4"] < result["greedy"]["bleu_4"] - 0.2  # captions need the image


def test_evaluate_audio_per_speaker(data_dir):
    model = mmzoo.build("audio_mfcc_cnn")
    test = mmzoo.data.load(f"fsdd:{data_dir}/fsdd", split="test")
    result = mmzoo.evaluate(model, test)
    assert result["examples"] == 250 and len(result["confusion_matrix"]) == 10
    by_speaker = result["accuracy_by_speaker"]
    assert set(by_speaker) == {"george", "jackson", "lucas", "nicolas", "yweweler"}
    # 50 test clips per speaker: the per-speaker figures average to the overall accuracy
    assert np.mean(list(by_speaker.values())) == pytest.approx(result["accuracy"])
    assert "ablation" not in mmzoo.evaluate(model, test.take(8), modality_ablation=True)


GLOBAL_NEGATIVES = """
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import mmzoo

config = {**mmzoo.registry.get_spec("dual_encoder").test_config, "dropout": 0.0}
keras.utils.set_random_seed(0)
plain = mmzoo.build("dual_encoder", **config)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = mmzoo.build("dual_encoder", **config)
mirrored.set_weights(plain.get_weights())
start = [w.copy() for w in plain.get_weights()]
rng = np.random.default_rng(0)
x = {"image": rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32"),
     "text": rng.integers(2, 12, (16, 6)).astype("int32")}
ds = tf.data.Dataset.from_tensors((x, np.zeros(16, "int32")))
losses = [m.evaluate(ds, verbose=0, return_dict=True)["loss"] for m in (plain, mirrored)]
for m in (plain, mirrored):
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss=m.loss)
    m.fit(ds, epochs=1, verbose=0)
gap = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), mirrored.get_weights()))
moved = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), start))
print("RESULT", losses[0], losses[1], gap, moved)
"""


def test_contrastive_loss_uses_every_replicas_negatives():
    """Under `MirroredStrategy` on 2 replicas the dual encoder's loss and its training step are
    those of the whole batch on one device (CLIP's global negatives); with each replica's own
    8 pairs alone the loss was 2.41 against 3.12."""
    out = subprocess.run([sys.executable, "-c", GLOBAL_NEGATIVES], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-3000:]
    plain, mirrored, gap, moved = map(float, out.stdout.split("RESULT")[1].split())
    assert mirrored == pytest.approx(plain, abs=1e-5)
    assert moved > 1e-3 and gap < 1e-4 * max(1.0, moved)
