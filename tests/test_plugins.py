"""Your own models from every command (`mmzoo.plugins`): a module on `PYTHONPATH` registers a
model; `mmzoo train NAME --import MODULE` trains it, and its run evaluates, exports and predicts
with no flag (each in a process of its own that never heard of the model). The SavedModel, ONNX
and LiteRT exports of the run answer with the same top classes, the portable ones on their
runtimes in a process where TensorFlow cannot be imported. Entry points and `MMZOO_IMPORT`
find modules too."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import run_mmzoo

MODULE = textwrap.dedent('''
    """A user's models: a custom image branch, registered for mmzoo."""

    import dataclasses

    import keras

    import mmzoo
    from mmzoo.blocks import classifier_head


    @dataclasses.dataclass(frozen=True)
    class SeparableConfig:
        image_size: int = 16
        filters: tuple[int, ...] = (8, 16)
        labels: tuple[str, ...] = ("circle", "rectangle", "triangle")
        hidden_units: tuple[int, ...] = (16,)
        dropout: float = 0.0
        learning_rate: float = 3e-3


    @mmzoo.register("plugin_separable_cnn", task="classification", inputs=("image",),
                    config=SeparableConfig, test_config={"filters": (4,)})
    def plugin_separable_cnn(cfg):
        """Depthwise-separable convolutions and a softmax head."""
        image = keras.Input((cfg.image_size, cfg.image_size, 3), name="image")
        x = keras.layers.Rescaling(1 / 255.0, name="image_rescale")(image)
        for i, width in enumerate(cfg.filters, start=1):
            x = keras.layers.SeparableConv2D(width, 3, padding="same", activation="relu",
                                             name=f"image_sepconv{i}")(x)
            x = keras.layers.MaxPooling2D(name=f"image_pool{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="image_avgpool")(x)
        scores = classifier_head(x, labels=cfg.labels, hidden_units=cfg.hidden_units,
                                 dropout=cfg.dropout)
        model = keras.Model({"image": image}, scores, name="plugin_separable_cnn")
        model.compile(keras.optimizers.Adam(cfg.learning_rate),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
''')
# Blocks TensorFlow and Keras in the process it starts (imported at start-up from PYTHONPATH)
NO_TENSORFLOW = textwrap.dedent('''
    import sys
    for name in ("tensorflow", "keras", "keras_hub", "tf_keras"):
        sys.modules[name] = None
''')


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """`(folder, environment)`: a folder holding the user's module, and an environment with it
    on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "user_models.py").write_text(MODULE)
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    return folder, {**os.environ, "PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": "-1"}


def command(*args, env, check=True):
    done = subprocess.run([sys.executable, "-m", "mmzoo", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def run(plugin, tiny_shapes, tmp_path_factory):
    """`mmzoo train plugin_separable_cnn --import user_models` on images one folder per shape."""
    folder, _ = plugin
    sys.path.insert(0, str(folder))      # as PYTHONPATH does for the processes below
    try:
        out = tmp_path_factory.mktemp("runs") / "separable"
        done = run_mmzoo("train", "plugin_separable_cnn", "--import", "user_models", "--data",
                         f"images:{tiny_shapes}", "--epochs", 2, "--batch-size", 16,
                         "--out", out)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        sys.path.remove(str(folder))
    return out


def test_the_run_records_the_module_that_built_its_model(run):
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "plugin_separable_cnn" and config["module"] == "user_models"


def test_without_the_module_the_name_is_unknown_and_says_how(plugin, tmp_path):
    _, env = plugin
    done = command("describe", "plugin_separable_cnn", env={
        **env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}, check=False)
    assert done.returncode == 2 and "unknown model 'plugin_separable_cnn'" in done.stderr
    assert "--import MODULE" in done.stderr
    missing = command("list", "--import", "no_such_models", env=env, check=False)
    assert missing.returncode == 2 and "no module named 'no_such_models'" in missing.stderr


def test_mmzoo_import_environment_variable(plugin):
    _, env = plugin
    listed = command("list", "plugin_*", env={**env, "MMZOO_IMPORT": "user_models"})
    assert listed.stdout.split()[0] == "plugin_separable_cnn"


def test_an_entry_point_of_an_installed_package(plugin, tmp_path):
    """A distribution on the path declaring `[mmzoo.models] user = user_models` (what `pip
    install` of a package with that entry point leaves): every command finds its models; a
    broken one is named in a warning and left out."""
    _, env = plugin
    site = tmp_path / "site"
    info = site / "user_models_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-models-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mmzoo.models]\nuser = user_models\n"
                                           "broken = no_such_module_at_all\n")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]])}
    listed = command("list", "plugin_*", env=env)
    assert listed.stdout.split()[0] == "plugin_separable_cnn"
    assert "mmzoo plugin 'broken'" in listed.stderr and "left out" in listed.stderr


def test_evaluate_export_and_predict_of_the_run_need_no_flag(plugin, run, tiny_shapes,
                                                              tmp_path):
    _, env = plugin
    evaluated = command("evaluate", run, env=env)
    assert "plugin_separable_cnn (classification)" in evaluated.stdout
    assert "accuracy" in evaluated.stdout
    exports = {"saved_model": tmp_path / "sm"}
    command("export", run, "--out", exports["saved_model"], env=env)
    for fmt in ("onnx", "litert"):          # in this process, the module imported already
        exports[fmt] = tmp_path / fmt
        done = run_mmzoo("export", run, "--out", exports[fmt], "--format", fmt)
        assert done.returncode == 0, done.stderr[-3000:]
    photos = sorted(os.path.join(d, f) for d, _, files in os.walk(
        os.path.join(tiny_shapes, "test")) for f in files)[:6]
    images = [a for p in photos for a in ("--image", p)]
    said = {"run": json.loads(command("predict", run, *images, "--json", env=env).stdout)}
    done = run_mmzoo("predict", exports["saved_model"], *images, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    said["saved_model"] = json.loads(done.stdout)
    # ONNX and LiteRT on their runtimes alone: TensorFlow cannot be imported in that process
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    bare = {**env, "PYTHONPATH": os.pathsep.join([str(blocker), env["PYTHONPATH"]])}
    for fmt in ("onnx", "litert"):
        said[fmt] = json.loads(command("predict", exports[fmt], *images, "--json",
                                       env=bare).stdout)
    assert [row["input"]["image"] for row in said["onnx"]] == photos
    top = {name: [row["top"][0]["label"] for row in rows] for name, rows in said.items()}
    assert top["saved_model"] == top["run"] == top["onnx"] == top["litert"], top
    for name in ("saved_model", "onnx", "litert"):
        for mine, theirs in zip(said[name], said["run"]):
            assert abs(mine["top"][0]["score"] - theirs["top"][0]["score"]) < 0.02, name
