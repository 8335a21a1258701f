"""Training recipes: one small YAML file per preset.

A recipe names everything a run depends on, so that the preset it writes can
be reproduced by running it again:

```yaml
name: resnet20_cifar10
description: CIFAR ResNet-20 trained with labels on CIFAR-10.
backbone:
  constructor: ResNetBackbone.cifar      # a keras_ssl.models class or
  arguments: {depth: 20, image_shape: [32, 32, 3]}   # Class.factory
method:
  class: Supervised                      # a keras_ssl.methods class
  arguments: {}
data:
  dataset: ../shared/data/cifar10        # TFDS name, image folder, "sample"
  train_split: train
  eval_split: test
  augment: cifar
  normalization: cifar10                 # or imagenet
  in_memory: true                        # decode the images once
training:
  epochs: 30
  batch_size: 128
  optimizer: {name: sgd, learning_rate: 0.1, momentum: 0.9,
              nesterov: true, l2_decay: 5.0e-4}
  schedule: {name: cosine, warmup_epochs: 0}
  validate_every: 1
evaluation: [accuracy]
seed: 0
```
"""

import copy
import dataclasses
import os

import yaml

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
NORMALIZATIONS = ("cifar10", "imagenet")
# What `evaluation` may list, by kind of method.
CLASSIFIER_EVALUATIONS = ("accuracy", "accuracy_si", "accuracy_ag", "accuracy_sd")
BACKBONE_EVALUATIONS = ("knn", "linear")
SECTIONS = (
    "name", "description", "backbone", "method", "data", "training",
    "evaluation", "seed", "compare_with", "reference", "hf_handle",
)


@dataclasses.dataclass
class Recipe:
    """A parsed, validated recipe (see the module docstring for the format).

    Attributes:
        name: str. The preset name (keras-hub style: `resnet20_cifar10_sfe`).
        description: str. One sentence for the registry and the card.
        backbone: dict with `constructor` and `arguments`.
        method: dict with `class` and `arguments`.
        data: dict (dataset, splits, augmentation, normalisation).
        training: dict (epochs, batch size, optimizer, schedule).
        evaluation: list of str, the metrics to measure.
        seed: int.
        compare_with: str or None. The supervised twin whose card metrics
            this preset's card compares against.
        reference: str or None. The JSON report of the same recipe run in
            plain PyTorch (e.g. by `scripts/reference_torch_cifar_resnet.py`),
            which the card states as the fidelity check.
        hf_handle: str or None. Where the preset is published.
        path: str or None. The file the recipe was read from.
        text: str. The recipe file's text, copied into the preset.
    """

    name: str
    description: str
    backbone: dict
    method: dict
    data: dict
    training: dict
    evaluation: list
    seed: int = 0
    compare_with: str = None
    reference: str = None
    hf_handle: str = None
    path: str = None
    text: str = ""

    def to_dict(self):
        return {
            key: copy.deepcopy(getattr(self, key))
            for key in SECTIONS
            if getattr(self, key) is not None
        }


def _require(section, mapping, key, where):
    if key not in mapping:
        raise ValueError(
            f"Recipe {where}: `{section}` needs `{key}`. See "
            "keras_ssl/recipes/recipe.py for the format."
        )
    return mapping[key]


def _choice(value, choices, what, where):
    if value not in choices:
        raise ValueError(
            f"Recipe {where}: {what} must be one of {', '.join(choices)}; "
            f"received {value!r}."
        )
    return value


def parse_recipe(config, path=None, text=""):
    """Validates a recipe dict and fills in the defaults.

    Args:
        config: dict, the parsed YAML.
        path: str or None. Where it came from (for error messages).
        text: str. The original file text.

    Returns:
        A `Recipe`.
    """
    where = f"'{path}'" if path else "(dict)"
    if not isinstance(config, dict):
        raise ValueError(f"Recipe {where} must be a YAML mapping.")
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise ValueError(
            f"Recipe {where} has unknown sections {unknown}; the sections "
            f"are {', '.join(SECTIONS)}."
        )
    for section in ("name", "backbone", "method", "data", "training"):
        _require("recipe", config, section, where)
    backbone = dict(config["backbone"])
    _require("backbone", backbone, "constructor", where)
    backbone.setdefault("arguments", {})
    method = dict(config["method"])
    _require("method", method, "class", where)
    method.setdefault("arguments", {})

    data = {
        "train_split": "train",
        "eval_split": "test",
        "augment": "cifar",
        "normalization": "imagenet",
        "in_memory": False,
        **config["data"],
    }
    _require("data", data, "dataset", where)
    _choice(data["normalization"], NORMALIZATIONS, "data.normalization", where)

    training = {"validate_every": 1, **config["training"]}
    for key in ("epochs", "batch_size", "optimizer"):
        _require("training", training, key, where)
    optimizer = {"momentum": 0.9, "nesterov": True, "weight_decay": 0.0,
                 "l2_decay": 0.0, **training["optimizer"]}
    _require("training.optimizer", optimizer, "name", where)
    _require("training.optimizer", optimizer, "learning_rate", where)
    _choice(optimizer["name"], OPTIMIZERS, "training.optimizer.name", where)
    if optimizer["name"] == "adamw" and optimizer["l2_decay"]:
        raise ValueError(
            f"Recipe {where}: `l2_decay` (decay in the gradient) is for "
            "SGD; AdamW's `weight_decay` is already decoupled as in PyTorch."
        )
    training["optimizer"] = optimizer
    schedule = {"name": "cosine", "warmup_epochs": 0,
                **training.get("schedule", {})}
    _choice(schedule["name"], SCHEDULES, "training.schedule.name", where)
    training["schedule"] = schedule
    for key in ("epochs", "batch_size"):
        if not isinstance(training[key], int) or training[key] < 1:
            raise ValueError(
                f"Recipe {where}: training.{key} must be a positive int; "
                f"received {training[key]!r}."
            )
    if schedule["warmup_epochs"] >= training["epochs"]:
        raise ValueError(
            f"Recipe {where}: warmup_epochs ({schedule['warmup_epochs']}) "
            f"must be below epochs ({training['epochs']})."
        )

    evaluation = list(config.get("evaluation") or ["accuracy"])
    for metric in evaluation:
        _choice(metric, CLASSIFIER_EVALUATIONS + BACKBONE_EVALUATIONS,
                "each evaluation entry", where)
    return Recipe(
        name=config["name"],
        description=config.get("description", ""),
        backbone=backbone,
        method=method,
        data=data,
        training=training,
        evaluation=evaluation,
        seed=int(config.get("seed", 0)),
        compare_with=config.get("compare_with"),
        reference=config.get("reference"),
        hf_handle=config.get("hf_handle"),
        path=path,
        text=text,
    )


def load_recipe(path):
    """Reads and validates a recipe YAML file.

    Args:
        path: str, the `.yaml` file.

    Returns:
        A `Recipe`.

    Example:
    ```python
    recipe = keras_ssl.recipes.load_recipe("recipes/resnet20_cifar10.yaml")
    recipe.training["epochs"]  # 30
    ```
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file '{path}' does not exist.")
    with open(path) as file:
        text = file.read()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"Recipe '{path}' is not valid YAML: {error}") from error
    return parse_recipe(config, path=path, text=text)
