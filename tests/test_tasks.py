"""Every registered task through every method of the `Task` interface (`mmzoo.tasks.base`), on a
tiny model of it and a few real examples: what the drivers ask of a task, each asked here.

A method added to the interface without a test here that asks it (each test names what it
asked with `exercised(...)`) fails `test_every_method_of_the_interface_is_exercised`.
"""

import ast
import inspect
import json

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from conftest import news_rows
from mmzoo.evaluate import table
from mmzoo.registry import get_spec, get_task, task_names
from mmzoo.tasks.base import Task

# A tiny model of each built-in task, and the real examples it reads
MODELS = {"classification": "text_word_vector_mlp", "vqa": "vqa_cnn_lstm",
          "captioning": "caption_lstm", "retrieval": "dual_encoder",
          "transcription": "speech_ctc"}
def source(task, data_dir, tiny_easy_vqa, tmp_path_factory):
    if task == "classification":
        return f"csv:{news_rows(data_dir, tmp_path_factory.mktemp('news'), 48)}"
    if task == "transcription":
        return f"digit_sequences:{data_dir}/fsdd?train=8&validation=4&test=4&max_digits=2"
    return f"easy_vqa:{tiny_easy_vqa}"


@pytest.fixture(scope="module", params=list(MODELS))
def case(request, data_dir, tiny_easy_vqa, tmp_path_factory):
    """`(task, model, train, validation)`: the task, a tiny model adapted to its data, and raw
    examples of its data."""
    task = get_task(request.param)
    name = MODELS[task.name]
    spec = get_spec(name)
    src = mmzoo.data.open_source(source(task.name, data_dir, tiny_easy_vqa, tmp_path_factory))
    train, validation = src.fit_splits(task.name)
    config = {k: v for k, v in spec.test_config.items() if k not in ("labels", "tokens")}
    model = mmzoo.build(name, **{**mmzoo.data.adapt(name, train, config=config), **config})
    return task, model, train.take(12), validation.take(8)


def exercised(*names):
    """Names the Task methods a test asked (read from this file's source by the last test)."""


def test_the_contract_and_the_adapted_config(case):
    task, model, train, _ = case
    spec = get_spec(model.name)
    assert task.problems(model) == []                      # a model of the task keeps it
    assert task.audio_any_length == (task.name == "transcription")
    fields = {f.name for f in spec.config.__dataclass_fields__.values()}
    adapted = task.adapt(spec, train, fields, {})
    assert set(adapted) <= fields
    if task.name in ("classification", "vqa"):
        assert adapted["labels"] and list(adapted["labels"]) == sorted(
            adapted["labels"], key=lambda s: (not s.isdigit(), float(s) if s.isdigit() else 0, s))
    if task.name == "transcription":
        assert adapted["tokens"] and adapted["unit"] == "words"
    tokens = task.text_tokens(("a", "b"))
    assert tokens[-2:] == ("a", "b") and (tokens[:2] == ("[start]", "[end]")) == (
        task.name == "captioning")
    # a model of another task lacks what this one reads
    other = MODELS["captioning"] if task.name in ("classification", "vqa") else \
        MODELS["classification"]
    assert task.problems(mmzoo.build(other, **get_spec(other).test_config)), task.name
    length = task.caption_length(7, fields)
    assert set(length) <= fields and (bool(length) == (task.name in ("captioning", "retrieval")))
    exercised("problems", "audio_any_length", "adapt", "text_tokens", "fail", "caption_length")


def test_the_pipeline_the_task_shapes(case):
    task, model, train, _ = case
    ds = mmzoo.data.pipeline(model, train, batch_size=4, training=True, seed=0)
    inputs, targets = next(iter(ds))
    assert set(inputs) == {t.name for t in model.inputs}
    loss = model.compute_loss(x=inputs, y=targets, y_pred=model(inputs, training=False))
    assert np.isfinite(float(loss))
    element = train.element_spec
    task.check_examples(model, element)
    with pytest.raises(ValueError):
        task.check_examples(model, {"nothing": None})
    pre = mmzoo.data.Preprocessor(model)
    example = next(iter(train))
    prepared = task.prepare(pre, example)
    assert isinstance(prepared, dict)
    assert isinstance(task.identity(model), dict)
    assert json.dumps(task.identity(model))
    for name, key in (("text", "captions"), ("text", "text"), ("question", "question")):
        assert isinstance(task.per_epoch_text(name, key), bool)
    assert task.expand(tf.data.Dataset.from_tensors({"x": 1}), False) is not None
    if task.name != "transcription":   # it batches utterances itself (the pipeline above)
        assert task.batch(tf.data.Dataset.from_tensors({"x": 1}), pre, 2, False, False, ()) \
            is None
    assert task.encodes_targets == (task.name in ("classification", "vqa"))
    if task.encodes_targets:
        encoded = task.encode(pre, {"label": tf.constant([prepared["label"].numpy()])})
        assert encoded["label"].dtype == tf.int32
    exercised("check_examples", "prepare", "identity", "per_epoch_text", "expand", "batch",
              "encode", "encodes_targets", "targets")


def test_evaluation_and_its_table(case):
    task, model, _, validation = case
    spec = get_spec(model.name)
    result = {"model": model.name, "task": task.name,
              **task.evaluate(model, validation, batch_size=4)}
    assert json.dumps(result)
    metric, value = task.headline(result)
    assert isinstance(metric, str) and isinstance(value, float)
    title, lines = task.table(result)
    assert title.startswith(":") and lines and all(isinstance(line, str) for line in lines)
    said = task.learned_nothing(result, "cause")
    assert said is None or ("learned nothing" in said and said.endswith("cause"))
    assert set(task.ablated_inputs(spec)) <= set(spec.inputs)
    assert set(task.decoders) <= {"greedy", "beam"}
    figures = task.figures(json.loads(json.dumps(result)))
    assert not {"labels", "confusion_matrix", "examples"} & set(figures)
    assert all("examples" not in figures[d] for d in task.decoders)
    assert table(result).splitlines()[0].startswith(model.name)
    # a portable export's figures: its `model` graph (here the Keras one) in place of the model
    graph = mmzoo.portable.graphs(model).get("model")
    forward = graph and (lambda x: {k: np.asarray(v) for k, v in graph(
        mmzoo.portable.as_numbers(model, x), training=False).items()})
    measured = task.evaluate_file(model, validation, 4, forward)
    assert (measured is None) == (task.name in ("captioning", "retrieval"))
    if measured is not None:
        assert task.headline(measured)[1] == pytest.approx(value)
    exercised("evaluate", "headline", "table", "learned_nothing", "ablated_inputs", "decoders",
              "figures", "evaluate_file")


def test_what_training_asks_after_fit(case):
    task, model, _, validation = case
    best = {"epoch": 1, "epochs": 1, "metrics": {"val_accuracy": 0.0, "val_loss": 1.0}}
    said = task.learned_nothing_after_training(model, validation, best, 4, "cause",
                                               mmzoo.evaluate)
    assert said is None or "learned nothing" in said
    # the decoding tasks try their model on a few validation examples after training
    assert (task.checked_examples is not None) == bool(task.decoders)
    assert isinstance(task.validation_needs_decoding(), bool)
    lines = task.report(model, lambda: validation, 2)
    assert isinstance(lines, list) and (bool(lines) == bool(task.decoders))
    exercised("learned_nothing_after_training", "checked_examples", "validation_needs_decoding",
              "report")


def test_export_metadata_and_card(case, tmp_path):
    task, model, train, _ = case
    spec = get_spec(model.name)
    pre = mmzoo.data.Preprocessor(model)
    endpoints, info = task.serving_functions(model, pre)
    assert "serve" in endpoints and json.dumps(info)
    for body, names in endpoints.values():
        assert set(names) <= set(spec.inputs) | {"lengths"}
    served = task.served_inputs(model)
    assert served and set(served) <= set(spec.inputs)
    assert ("text" in served) == (task.name not in ("captioning",) and "text" in spec.inputs)
    decoding = task.decoding()
    assert (decoding is not None) == bool(task.decoders)
    graphs = mmzoo.portable.graphs(model)   # the task's portable_graphs
    assert graphs and all(g.outputs for g in graphs.values())
    meta = task.metadata(model)
    assert json.dumps(meta)
    answer = task.answer(model)
    assert answer["kind"] in ("labels", "text", "score")
    lines = task.card_lines(mmzoo.card.metadata(model, "saved_model"))
    assert all(isinstance(line, str) for line in lines)
    tag = task.pipeline_tag(list(spec.inputs))
    assert tag is None or "-" in tag
    assert task.name in task.tags(list(spec.inputs))
    assert task.summary and task.intended_use and isinstance(task.limits, tuple)
    assert task.multimodal in (True, False)
    assert task.portable_output in ("scores", "frames", "embedding")
    calibration = task.calibration_data(model, train)
    extra = task.calibration_inputs(model, next(iter(
        mmzoo.data.pipeline(model, calibration, batch_size=1)))[0])
    assert isinstance(extra, dict) and set(extra) <= {"features", "ids"}
    exercised("serving_functions", "decoding", "portable_graphs", "portable_output", "metadata",
              "answer", "card_lines", "pipeline_tag", "tags", "summary", "intended_use",
              "limits", "multimodal", "calibration_inputs", "calibration_data",
              "served_inputs")


def test_every_registered_task_has_a_model_here():
    assert set(task_names()) == set(MODELS)


def test_every_method_of_the_interface_is_exercised():
    """Every method of the interface is named by an `exercised(...)` of a test above, read from
    this file's source (so it holds whichever tests run, and without the shared data)."""
    with open(__file__) as f:
        tree = ast.parse(f.read())
    asked = {arg.value for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "exercised"
             for arg in node.args if isinstance(arg, ast.Constant)}
    members = {name for name, _ in inspect.getmembers(Task)
               if not name.startswith("_") and name != "name"}
    assert members - asked == set(), "add them to tests/test_tasks.py"
