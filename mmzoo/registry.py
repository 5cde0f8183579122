"""The registry: the tasks (`register_task`, `task_of`) and the models (`register`, `build`,
`list_models`, `describe`).

A model is a name, a task, the modalities it reads, a frozen dataclass of defaults and a builder
that returns a compiled functional `keras.Model`. Adding a model means adding one decorated
function (timm's habit); adding a task, one `mmzoo.tasks.base.Task` subclass registered here.

The registry imports no task and no model: they register themselves when their modules are
imported (`mmzoo.load()` imports the built-in ones and the plugins, `mmzoo.plugins`), and the
drivers find them here by name.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import types
import typing
from typing import Any, Callable

from mmzoo import contract, plugins
from mmzoo.errors import ContractError, InvalidType, InvalidValue, UnknownName, did_you_mean

MODALITIES = ("text", "image", "audio")
INPUT_NAMES = ("text", "image", "audio", "question")

_TASKS = {}  # name -> mmzoo.tasks.base.Task


def register_task(task):
    """Register a `mmzoo.tasks.base.Task` under its `name`; a duplicate name raises. Returns it.

    Examples:
    ```python
    class Counting(mmzoo.tasks.base.Task):
        ...
    mmzoo.registry.register_task(Counting("counting"))
    ```
    """
    if task.name in _TASKS and _TASKS[task.name] is not task:
        raise InvalidValue(f"task {task.name!r} is already registered "
                           f"({type(_TASKS[task.name]).__module__}); choose another name")
    _TASKS[task.name] = task
    return task


def task_names():
    """The names of the registered tasks, in registration order."""
    return tuple(_TASKS)


def get_task(name):
    """The registered `Task` named `name`; an unknown name lists the known ones."""
    if name not in _TASKS:
        hint = did_you_mean(name, _TASKS)
        raise InvalidValue(f"unknown task {name!r}; {hint + ' ' if hint else ''}use one of "
                           f"{list(_TASKS)}")
    return _TASKS[name]


def task_of(model):
    """The `Task` of a model (a `keras.Model`, a `ModelSpec` or a registered name)."""
    return get_task(get_spec(model if isinstance(model, (str, ModelSpec)) else model.name).task)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Args:
        name: str. The registry key, also the builder's and the model's name.
        task: str. One of `classification`, `captioning`, `vqa`, `retrieval`, `transcription`.
        inputs: tuple of str. The model's input names (`text`, `image`, `audio`, `question`).
        config: type. A frozen dataclass of the full-size defaults.
        builder: callable. `builder(cfg) -> keras.Model` (compiled, functional).
        test_config: dict. Overrides for a tiny variant the generic tests build.
        summary: str. One line on what the model is.
        limits: tuple of str. What its model card says it cannot do (beside its task's).
        module: str. The module that registered it (a run records it: `mmzoo.plugins`).
    """

    name: str
    task: str
    inputs: tuple
    config: type
    builder: Callable
    test_config: dict
    summary: str
    limits: tuple = ()
    module: str = ""

    @property
    def modalities(self) -> tuple:
        """The modalities read: `question` counts as text."""
        return tuple(sorted({"text" if i == "question" else i for i in self.inputs}))

    def make_config(self, **overrides):
        """The default config with `overrides` validated and applied."""
        return _apply_overrides(self, overrides)


_REGISTRY: dict[str, ModelSpec] = {}


def register(name, *, task, inputs, config, test_config=None, limits=()):
    """Register a model builder under `name`.

    Args:
        name: str. The registry key (snake_case); a duplicate raises.
        task: str. A registered task (`mmzoo.registry.task_names()`: `classification`, `vqa`,
            `captioning`, `retrieval`, `transcription`).
        inputs: tuple of str. Input names, each one of `text`, `image`, `audio`, `question`.
        config: type. A frozen dataclass whose fields are the defaults and the valid overrides.
        test_config: dict. Overrides for the tiny variant the generic tests build.
        limits: tuple of str. What the model's card says it cannot do (beside its task's).

    Examples:
    ```python
    @mmzoo.register("my_text_cnn", task="classification", inputs=("text",), config=MyConfig)
    def my_text_cnn(cfg):
        ...
        return model
    ```
    """
    if task not in _TASKS:
        raise InvalidValue(f"register({name!r}): unknown task {task!r}; use one of "
                           f"{list(_TASKS)}")
    bad = [i for i in inputs if i not in INPUT_NAMES]
    if bad:
        raise InvalidValue(
            f"register({name!r}): unknown input names {bad}; inputs are named by modality: "
            f"{list(INPUT_NAMES)}"
        )
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise InvalidType(f"register({name!r}): config must be a frozen dataclass, got {config!r}")

    def decorator(builder):
        if name in _REGISTRY:
            raise InvalidValue(
                f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__}); "
                "choose another name"
            )
        spec = ModelSpec(
            name=name,
            task=task,
            inputs=tuple(inputs),
            config=config,
            builder=builder,
            test_config=dict(test_config or {}),
            summary=(builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else "",
            limits=tuple(limits),
            module=builder.__module__,
        )
        _apply_overrides(spec, spec.test_config)  # a bad test_config fails at import, not in CI
        _REGISTRY[name] = spec
        return builder

    return decorator


def is_registered(name):
    """Whether a model named `name` is registered in this process."""
    return name in _REGISTRY


def get_spec(name) -> ModelSpec:
    """The `ModelSpec` registered under `name`; an unknown name suggests close ones and says
    how to make a model of one's own known (`--import MODULE`, an entry point)."""
    if isinstance(name, ModelSpec):
        return name
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY, n=3)
        hint = f"{hint} " if hint else ""
        raise UnknownName(f"unknown model {name!r}; {hint}see mmzoo.list_models() "
                          f"({plugins.HOW})")
    return _REGISTRY[name]


def list_models(pattern=None, *, task=None, modality=None):
    """Sorted names of the registered models.

    Args:
        pattern: str. An fnmatch pattern on the name, e.g. `"caption_*"`.
        task: str. Keep models of this task (`mmzoo.registry.task_names()`).
        modality: str. Keep models that read this modality (`text`, `image`, `audio`).

    Examples:
    ```python
    mmzoo.list_models(task="captioning")   # ['caption_lstm', 'caption_lstm_mobilenet']
    mmzoo.list_models(modality="audio")
    ```
    """
    if task is not None:
        get_task(task)
    if modality is not None and modality not in MODALITIES:
        raise InvalidValue(f"unknown modality {modality!r}; use one of {list(MODALITIES)}")
    names = []
    for name, spec in _REGISTRY.items():
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        if task is not None and spec.task != task:
            continue
        if modality is not None and modality not in spec.modalities:
            continue
        names.append(name)
    return sorted(names)


def build(name, **overrides):
    """Build a registered model, compiled with its task's default loss, optimizer and metrics.

    Args:
        name: str. A name from `mmzoo.list_models()`.
        **overrides: values for the fields of the model's config dataclass.

    Returns:
        A compiled functional `keras.Model` whose inputs are named by modality and that carries
        what `mmzoo.contract` asks of its task (checked here: a model that does not fails with a
        `ContractError` naming what it lacks).

    Examples:
    ```python
    model = mmzoo.build("vqa_cnn_lstm", fusion="concat", image_size=32)
    ```
    """
    spec = get_spec(name)
    return _build(spec, _apply_overrides(spec, overrides), overrides)


def _keras_message(error):
    """The line of a Keras error that says what is wrong (not its "Exception encountered when
    calling ..." preamble), without terminal colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith(
        ("Exception encountered", "Arguments received", "•"))]
    called = next((line for line in str(error).splitlines() if "when calling" in line), "")
    where = re.search(r"calling (\w+)", called)
    text = (lines or [type(error).__name__])[0][:300]
    return f"{where.group(1)}: {text}" if where else text


def _user_set(overrides):
    """The overrides a user chose (not the data-adapted vocabulary, labels and tokens)."""
    return sorted(k for k in overrides if k not in ("vocabulary", "labels", "tokens"))


def _build(spec, cfg, overrides=None):
    """`spec.builder(cfg)`, checked against the model contract (`mmzoo.contract`, and what its
    task reads). A graph that Keras refuses to make with the user's `overrides` (an image too
    small for the pooling stack, heads that do not divide a width) fails naming those values:
    the user's choice, not mmzoo's bug."""
    chosen = _user_set(overrides or {})
    try:
        model = spec.builder(cfg)
    except (ValueError, TypeError) as e:
        if isinstance(e, (InvalidValue, InvalidType)) or not chosen:
            raise
        raise InvalidValue(f"model {spec.name!r} cannot be built with "
                           + ", ".join(f"{k}={overrides[k]!r}" for k in chosen)
                           + f": {_keras_message(e)}") from e
    if model.name != spec.name:
        raise ContractError(f"the builder of {spec.name!r} returned a model named "
                            f"{model.name!r}; name it {spec.name!r} (keras.Model(..., "
                            f"name={spec.name!r})), as the commands look models up by name")
    return contract.check(model, spec, get_task(spec.task))


def _no_download(cfg):
    """`cfg` with `image_weights="imagenet"` and any `audio_weights` set to None: describing a
    model (its shapes and parameter count, which weights do not change) never downloads (nor
    reads) its weights."""
    if getattr(cfg, "image_weights", None) == "imagenet":
        cfg = dataclasses.replace(cfg, image_weights=None)
    if getattr(cfg, "audio_weights", None) is not None:   # SpellingCNN's: read or fetched
        cfg = dataclasses.replace(cfg, audio_weights=None)
    return cfg


def describe(name, **overrides):
    """A model card: task, modalities, inputs, outputs, the default config and the parameter count.

    Args:
        name: str. A name from `mmzoo.list_models()`.
        **overrides: config overrides to describe instead of the defaults.

    Examples:
    ```python
    print(mmzoo.describe("caption_lstm"))
    ```
    """
    spec = get_spec(name)
    cfg = _apply_overrides(spec, overrides)
    model = _build(spec, _no_download(cfg), overrides)
    lines = [f"{spec.name}: {spec.summary}", f"  task:       {spec.task}"]
    lines.append(f"  modalities: {', '.join(spec.modalities)}")
    lines.append("  inputs:")
    for t in model.inputs:
        lines.append(f"    {t.name:<10} shape={tuple(t.shape)} dtype={t.dtype}")
    lines.append("  outputs:")
    for t, out_name in zip(model.outputs, model.output_names):
        lines.append(f"    {out_name:<10} shape={tuple(t.shape)} dtype={t.dtype}")
    lines.append("  config:")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, tuple) and len(value) > 8:
            value = f"({len(value)} items: {', '.join(map(repr, value[:4]))}, ...)"
        lines.append(f"    {f.name} = {value}")
    lines.append(f"  parameters: {model.count_params():,}")
    return "\n".join(lines)


def model_table():
    """The README's model table (Markdown), built from the registry: each model's task, inputs
    with their default shapes, parameter count of the default config, and summary line.

    Examples:
    ```python
    print(mmzoo.registry.model_table())    # also: mmzoo list --markdown
    ```
    """
    lines = ["| name | task | inputs (default shapes) | parameters | graph |",
             "|---|---|---|---|---|"]
    for name in list_models():
        spec = get_spec(name)
        model = _build(spec, _no_download(spec.config()))
        shapes = {t.name: tuple(t.shape[1:]) for t in model.inputs}
        inputs = ", ".join(f"`{n}` {shapes[n]}" for n in sorted(shapes))
        lines.append(f"| `{name}` | {spec.task} | {inputs} | {model.count_params():,} | "
                     f"{spec.summary} |")
    return "\n".join(lines)


def task_table():
    """The README's table of tasks (Markdown), built from the registry: each task, what it does,
    what `mmzoo predict` answers for it (its `answer`), and its models.

    Examples:
    ```python
    print(mmzoo.registry.task_table())
    ```
    """
    said = {"labels": "the top classes with their scores", "text": "a text", "score": "a score"}
    lines = ["| task | what it does | `mmzoo predict` answers | models |", "|---|---|---|---|"]
    for name in sorted(_TASKS):
        task = _TASKS[name]
        answer = task.answer()
        answers = said[answer["kind"]] + (f" (`{answer['output']}`)" if "output" in answer else "")
        models = ", ".join(f"`{m}`" for m in list_models(task=name))
        lines.append(f"| `{name}` | {task.summary} | {answers} | {models} |")
    return "\n".join(lines)


def _apply_overrides(spec, overrides):
    fields = {f.name: f for f in dataclasses.fields(spec.config)}
    unknown = sorted(k for k in overrides if k not in fields)
    if unknown:
        raise InvalidType(
            f"unknown config key(s) {unknown} for model {spec.name!r}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(spec.config)
    clean = {}
    for key, value in overrides.items():
        clean[key] = _check_range(spec.name, key, _check_type(spec.name, key, value, hints[key]))
    return dataclasses.replace(spec.config(), **clean)


# The range of each numeric config field: `(low, low included?, high or None (excluded), note)`.
# Other int fields (sizes, units, counts) and the items of int tuples must be at least 1.
RANGES = {
    "dropout": (0, True, 1, ""), "l1": (0, True, None, ""), "l2": (0, True, None, ""),
    "learning_rate": (0, False, None, ""), "min_learning_rate": (0, True, None, ""),
    "lr_factor": (0, False, 1, ""), "image_alpha": (0, False, None, ""),
    "clip_seconds": (0, False, None, ""),
    "text_units": (0, True, None, " (0: no recurrent layer)"),
    "lr_patience": (0, True, None, " (0: a constant rate)"),
    "image_trainable": (0, True, None, " (or None, true, false: a number of blocks)"),
}


def _check_range(model_name, key, value):
    """`value`, or an `InvalidValue` naming the field's allowed range."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, tuple):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
                and min(value) < 1:
            raise InvalidValue(f"config field {key!r} of model {model_name!r} takes numbers of "
                               f"at least 1, got {value!r}")
        return value
    if not isinstance(value, (int, float)) or (key not in RANGES and isinstance(value, float)):
        return value
    low, included, high, note = RANGES.get(key, (1, True, None, ""))
    if value < low or (value == low and not included) or (high is not None and value >= high):
        text = f"{'at least' if included else 'above'} {low}"
        text += f" and below {high}" if high is not None else ""
        raise InvalidValue(f"config field {key!r} of model {model_name!r} must be {text}{note}, "
                           f"got {value!r}")
    return value


_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _check_type(model_name, key, value, hint):
    """`value` checked (and lists made tuples, ints made floats) against the field's type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return _check_type(model_name, key, value, arm)
            except TypeError:
                continue
        raise _type_error(model_name, key, value, hint)
    if hint is type(None):
        if value is None:
            return None
        raise _type_error(model_name, key, value, hint)
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise InvalidType(
                f"config field {key!r} of model {model_name!r} must be one of {list(args)}, "
                f"got {value!r}"
            )
        return value
    if origin is tuple:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = (value,)  # `--set filters=32`: a list of one
        if not isinstance(value, (tuple, list)):
            raise _type_error(model_name, key, value, hint)
        item = args[0] if args else Any
        return tuple(_check_type(model_name, key, v, item) for v in value)
    if hint is bool and isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]  # `--set bidirectional=yes`
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(model_name, key, value, hint)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(model_name, key, value, hint)
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _type_error(model_name, key, value, hint)
    return value


def _type_error(model_name, key, value, hint):
    name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return InvalidType(
        f"config field {key!r} of model {model_name!r} must be {name}, "
        f"got {type(value).__name__} {value!r}"
    )
