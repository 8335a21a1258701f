"""Pre-flight check of a preset folder before it is published.

`check_preset_folder` runs every check and reports every problem at once,
each with its fix: the config, the weights, a model card whose metadata
reports the measured metrics, the `metrics.json` they were measured in, and
a load test with keras-hub's own classes.
"""

import dataclasses
import glob
import json
import os

import h5py
import keras
import keras_hub
import numpy as np

from keras_ssl.hub import keras_hub_internals
from keras_ssl.hub.model_card import _is_number
from keras_ssl.hub.model_card import read_card_metadata

METRICS_FILE = "metrics.json"
# Input side for backbones that take any image size and carry no image
# converter to say which: keras-hub's usual default.
DEFAULT_IMAGE_SIDE = 224


@dataclasses.dataclass
class PresetReport:
    """What `check_preset_folder` found in a preset folder that passed.

    Attributes:
        path: the folder.
        registered_name: the backbone's `registered_name` from config.json.
        task_name: the task's `registered_name` from task.json, or None.
        parameters: the backbone's parameter count.
        input_shape: the shape of the dummy image the load test ran on.
        metrics: the card's metrics, dicts with `name`, `type`, `value`
            and `dataset`, each matched in `metrics.json`.
        files: `{file name: size in bytes}` of what would be uploaded.
    """

    path: str
    registered_name: str
    task_name: str
    parameters: int
    input_shape: tuple
    metrics: list
    files: dict

    def __str__(self):
        task = f" with task {self.task_name}" if self.task_name else ""
        metrics = ", ".join(
            f"{m['name']}={m['value']} ({m['dataset']})" for m in self.metrics
        )
        size = sum(self.files.values())
        return (
            f"{self.path}: {self.registered_name}{task}, "
            f"{self.parameters:,} parameters; loads and runs on "
            f"{self.input_shape}; card metrics {metrics}; "
            f"{len(self.files)} files, {size:,} bytes."
        )


class PresetCheckError(ValueError):
    """A preset folder failed the pre-flight check.

    Attributes:
        path: the folder.
        problems: one message per problem, each naming its fix.
    """

    def __init__(self, path, problems):
        self.path = path
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"Preset folder '{path}' is not ready to publish:\n{listing}"
        )


def check_preset_folder(path):
    """Check that a preset folder is complete and loads, before publishing.

    The checks, all run so that one pass reports every problem:

    - `config.json` parses and names its class (`registered_name`);
    - the weights (`model.weights.h5`, or keras-hub's sharded files) are
      present and readable HDF5;
    - `README.md` has YAML front matter with `library_name: keras-hub`,
      `tags` and a `model-index` block with at least one metric (see
      `write_model_card`);
    - `metrics.json`, written by the training, holds every card metric:
      the value under the metric's `name` when that is a key (also nested,
      `metrics.<name>`), else some number, as a fraction or a percentage,
      to the precision the card shows;
    - `keras_hub.models.Backbone.from_preset(path)` loads, and runs on a
      dummy image of the backbone's input shape; with a `task.json`,
      `keras_hub.models.ImageClassifier.from_preset(path)` too.

    Args:
        path: a preset folder.

    Returns:
        A `PresetReport`.

    Raises:
        PresetCheckError: listing each problem and its fix.

    Example:
    ```python
    report = keras_ssl.hub.check_preset_folder("weights/resnet20_cifar10")
    print(report)
    ```
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise PresetCheckError(
            path,
            [
                "the folder does not exist (absolute path: "
                f"{os.path.abspath(path)}). Pass a folder written by "
                "`model.save_to_preset(folder)`."
            ],
        )
    problems = []
    config = _check_json(path, keras_hub_internals.CONFIG_FILE, problems)
    if config is not None and "registered_name" not in config:
        problems.append(
            "config.json has no `registered_name`, so keras-hub cannot tell "
            "which class to build. Re-save the model with "
            "`model.save_to_preset(folder)`."
        )
    task_config = None
    if os.path.exists(os.path.join(path, keras_hub_internals.TASK_CONFIG_FILE)):
        task_config = _check_json(path, keras_hub_internals.TASK_CONFIG_FILE, problems)
    weights_ok = _check_weights(path, problems)
    card_metrics = _check_card(path, problems)
    _check_metrics_file(path, card_metrics, problems)
    loaded = None
    if config is not None and "registered_name" in config and weights_ok:
        loaded = _load_test(path, task_config is not None, problems)
    if problems:
        raise PresetCheckError(path, problems)
    parameters, input_shape = loaded
    return PresetReport(
        path=path,
        registered_name=config["registered_name"],
        task_name=(task_config or {}).get("registered_name"),
        parameters=parameters,
        input_shape=input_shape,
        metrics=card_metrics,
        files=_folder_files(path),
    )


def _check_json(path, filename, problems):
    file_path = os.path.join(path, filename)
    if not os.path.isfile(file_path):
        problems.append(
            f"{filename} is missing. Preset folders are written by "
            "`model.save_to_preset(folder)`."
        )
        return None
    try:
        with open(file_path) as f:
            content = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        problems.append(
            f"{filename} is not valid JSON ({e}). Re-save the preset with "
            "`model.save_to_preset(folder)`."
        )
        return None
    if not isinstance(content, dict):
        problems.append(f"{filename} must hold a JSON object.")
        return None
    return content


def _check_weights(path, problems):
    weight_files = sorted(
        glob.glob(os.path.join(path, keras_hub_internals.MODEL_WEIGHTS_FILE))
        + glob.glob(os.path.join(path, "model_*.weights.h5"))
    )
    if not weight_files:
        problems.append(
            f"{keras_hub_internals.MODEL_WEIGHTS_FILE} is missing. Save the "
            "weights with `model.save_to_preset(folder)`."
        )
        return False
    for weight_file in weight_files:
        try:
            with h5py.File(weight_file, "r"):
                pass
        except OSError as e:
            problems.append(
                f"{os.path.basename(weight_file)} is not readable HDF5 ({e}); "
                "it is probably truncated by an interrupted save or copy. "
                "Re-save the preset with `model.save_to_preset(folder)`."
            )
            return False
    return True


def _check_card(path, problems):
    """Check README.md; return its metrics (empty if unusable)."""
    card_path = os.path.join(path, keras_hub_internals.README_FILE)
    fix = (
        "Write the card with `keras_ssl.hub.write_model_card(folder, "
        "repo_id, metrics=..., dataset=...)`."
    )
    if not os.path.isfile(card_path):
        problems.append(f"README.md (the model card) is missing. {fix}")
        return []
    try:
        metadata = read_card_metadata(card_path)
    except ValueError as e:
        problems.append(f"README.md is not a usable model card: {e}. {fix}")
        return []
    if metadata.get("library_name") != "keras-hub":
        problems.append(
            "README.md front matter needs `library_name: keras-hub` (found "
            f"{metadata.get('library_name')!r}) so that the Hub shows how "
            f"to load it. {fix}"
        )
    tags = metadata.get("tags")
    if not isinstance(tags, list) or not tags:
        problems.append(
            f"README.md front matter needs a non-empty `tags` list. {fix}"
        )
    metrics, problem = _card_metrics(metadata.get("model-index"))
    if problem:
        problems.append(f"README.md front matter: {problem}. {fix}")
    return metrics


def _card_metrics(model_index):
    """Flatten `model-index` into metric dicts; or explain what is wrong."""
    if not isinstance(model_index, list) or not model_index:
        return [], "it has no `model-index` block reporting the metrics"
    metrics = []
    for entry in model_index:
        for result in (entry or {}).get("results") or []:
            if not (result.get("task") or {}).get("type"):
                return [], "a `model-index` result has no `task: {type: ...}`"
            dataset = result.get("dataset") or {}
            if not dataset.get("name") or not dataset.get("type"):
                return [], (
                    "a `model-index` result has no `dataset: {name: ..., "
                    "type: ...}`"
                )
            for metric in result.get("metrics") or []:
                if not metric.get("type") or not _is_number(
                    metric.get("value")
                ):
                    return [], (
                        "a `model-index` metric needs a `type` and a numeric "
                        f"`value` (found {metric!r})"
                    )
                metrics.append(
                    {
                        "name": metric.get("name") or metric["type"],
                        "type": metric["type"],
                        "value": metric["value"],
                        "dataset": dataset["type"],
                    }
                )
    if not metrics:
        return [], "its `model-index` block reports no metric"
    return metrics, None


def _check_metrics_file(path, card_metrics, problems):
    metrics_path = os.path.join(path, METRICS_FILE)
    if not os.path.isfile(metrics_path):
        hint = ""
        beside = os.path.join(
            os.path.dirname(os.path.abspath(path)), METRICS_FILE
        )
        if os.path.isfile(beside):
            hint = (
                f" The training wrote one beside the folder: copy {beside} in."
            )
        problems.append(
            f"{METRICS_FILE} (the measured results the card reports) is "
            f"missing.{hint} Put the {METRICS_FILE} the training wrote into "
            "the folder."
        )
        return
    measured = _check_json(path, METRICS_FILE, problems)
    if measured is None:
        return
    numbers = {
        key: value
        for key, value in _flatten(measured).items()
        if _is_number(value)
    }
    for metric in card_metrics:
        problem = _metric_problem(metric, numbers)
        if problem:
            problems.append(problem)


def _metric_problem(metric, numbers):
    """Why a card metric disagrees with `metrics.json`, or None.

    A metric named after a `metrics.json` key (also a nested one: `accuracy`
    finds `metrics.accuracy`) must show that key's value; one with a display
    name, a value that some number of `metrics.json` rounds to.
    """
    name, value = metric["name"], metric["value"]
    fix = (
        "Rewrite the card from metrics.json (`keras_ssl.hub.write_model_card"
        "(..., metrics=...)`)."
    )
    keys = [k for k in numbers if k == name or k.endswith(f".{name}")]
    if keys:
        if _agrees(value, numbers[keys[0]]):
            return None
        return (
            f"the card reports {name} = {value}, but {METRICS_FILE} has "
            f"{keys[0]} = {numbers[keys[0]]}. {fix}"
        )
    if any(_agrees(value, number) for number in numbers.values()):
        return None
    shown = ", ".join(f"{k} = {v}" for k, v in sorted(numbers.items())[:10])
    return (
        f"the card reports {name} = {value}, but no number in {METRICS_FILE} "
        f"rounds to it, as a fraction or a percentage (its numbers: "
        f"{shown or 'none'}). {fix}"
    )


def _flatten(mapping, prefix=""):
    """`{"test": {"accuracy": 0.9}}` -> `{"test.accuracy": 0.9}`."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _agrees(card_value, measured):
    """Whether a card shows `measured` (or it in percent), rounded.

    The tolerance is half a unit of the card value's last digit.
    """
    text = repr(float(card_value))
    decimals = len(text.partition(".")[2]) if "e" not in text else 12
    tolerance = 0.5 * 10.0**-decimals + 1e-12
    return any(
        abs(card_value - number) <= tolerance
        for number in (measured, 100 * measured)
    )


def _load_test(path, has_task, problems):
    """Load with keras-hub's own classes and run a dummy image through.

    Returns `(parameter count, dummy image shape)`, or None when the
    backbone does not load.
    """
    try:
        backbone = keras_hub.models.Backbone.from_preset(path)
    except Exception as e:
        problems.append(
            f"`keras_hub.models.Backbone.from_preset('{path}')` failed: "
            f"{type(e).__name__}: {e}. Re-save the preset with this "
            "version of keras_ssl (`model.save_to_preset(folder)`)."
        )
        return None
    classifier = None
    if has_task:
        try:
            classifier = keras_hub.models.ImageClassifier.from_preset(path)
        except Exception as e:
            problems.append(
                f"`keras_hub.models.ImageClassifier.from_preset('{path}')` "
                f"failed: {type(e).__name__}: {e}. Re-save the classifier "
                "with `classifier.save_to_preset(folder)`."
            )
    input_shape = _dummy_image_shape(backbone, classifier)
    # Raw pixels in [0, 255], as the classifier's preprocessor expects.
    images = np.random.default_rng(0).uniform(0, 255, (1, *input_shape))
    images = images.astype("float32")
    _run_dummy("Backbone", lambda: backbone(images), input_shape, problems)
    if classifier is not None:
        _run_dummy(
            "ImageClassifier",
            lambda: classifier.predict(images, verbose=0),
            input_shape,
            problems,
        )
    return backbone.count_params(), input_shape


def _dummy_image_shape(backbone, classifier):
    """The backbone's input shape, free sides filled in.

    A free side takes the classifier's image converter size, which the
    preset was trained at, else `DEFAULT_IMAGE_SIDE`.
    """
    height, width, channels = backbone.input_shape[1:]
    preprocessor = getattr(classifier, "preprocessor", None)
    converter = getattr(preprocessor, "image_converter", None)
    image_size = getattr(converter, "image_size", None)
    image_size = image_size or (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE)
    return (height or image_size[0], width or image_size[1], channels)


def _run_dummy(name, run, input_shape, problems):
    try:
        outputs = keras.tree.flatten(run())
    except Exception as e:
        problems.append(
            f"the {name} loaded but failed on a {input_shape} image: "
            f"{type(e).__name__}: {e}."
        )
        return
    if not all(
        np.isfinite(keras.ops.convert_to_numpy(o)).all() for o in outputs
    ):
        problems.append(
            f"the {name} gives NaN or infinite outputs on a {input_shape} "
            "image; the weights are probably broken (e.g. a diverged "
            "training). Retrain, or re-save a good checkpoint."
        )


def _folder_files(path):
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            file_path = os.path.join(root, name)
            files[os.path.relpath(file_path, path)] = os.path.getsize(file_path)
    return dict(sorted(files.items()))
