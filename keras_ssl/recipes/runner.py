"""Runs a recipe: resumable training, evaluation, and the preset folder."""

import csv
import dataclasses
import inspect
import json
import os
import shutil
import time

import keras
import keras_hub
import numpy as np
import yaml

from keras_ssl import methods
from keras_ssl import models
from keras_ssl.data import load_dataset
from keras_ssl.methods.rotnet import RotationPretext
from keras_ssl.methods.supervised import default_preprocessor
from keras_ssl.models import image_converter
from keras_ssl.optimizers import SGDWithL2Decay
from keras_ssl.recipes import model_card
from keras_ssl.recipes.recipe import BACKBONE_EVALUATIONS
from keras_ssl.recipes.recipe import CLASSIFIER_EVALUATIONS

NORMALIZATION_STATS = {
    "cifar10": (image_converter.CIFAR10_MEAN, image_converter.CIFAR10_STD),
    "imagenet": (image_converter.IMAGENET_MEAN, image_converter.IMAGENET_STD),
}
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"
CURVE_FILE = "training_curve.png"


def _resolve_attribute(module, dotted, what):
    target = module
    for part in dotted.split("."):
        if not hasattr(target, part):
            raise ValueError(
                f"Unknown {what} '{dotted}' in the recipe: "
                f"`{module.__name__}` has no `{part}`."
            )
        target = getattr(target, part)
    return target


def build_backbone(recipe):
    """The randomly initialised backbone the recipe names."""
    constructor = _resolve_attribute(
        models, recipe.backbone["constructor"], "backbone constructor"
    )
    arguments = dict(recipe.backbone["arguments"])
    if "image_shape" in arguments:
        arguments["image_shape"] = tuple(arguments["image_shape"])
    return constructor(**arguments)


def is_pretext(recipe):
    """Whether the recipe's method learns without labels (saves a backbone)."""
    method_cls = _resolve_attribute(methods, recipe.method["class"], "method")
    return issubclass(method_cls, RotationPretext)


def build_method(recipe, backbone, num_classes):
    """The method model of the recipe, with its preprocessor."""
    method_cls = _resolve_attribute(methods, recipe.method["class"], "method")
    mean, std = NORMALIZATION_STATS[recipe.data["normalization"]]
    preprocessor = default_preprocessor(backbone, mean=mean, std=std)
    arguments = dict(recipe.method["arguments"])
    if "seed" in _init_parameters(method_cls):
        arguments.setdefault("seed", recipe.seed)
    if issubclass(method_cls, RotationPretext):
        return method_cls(backbone, preprocessor=preprocessor, **arguments)
    return method_cls(backbone, num_classes, preprocessor=preprocessor, **arguments)


def _init_parameters(cls):
    return inspect.signature(cls.__init__).parameters


def build_optimizer(recipe, steps_per_epoch):
    """The recipe's optimizer with a per-step warm-up + cosine schedule.

    The schedule is stepped every batch, like a PyTorch `LambdaLR` called
    after each `optimizer.step()`.
    """
    training = recipe.training
    settings = training["optimizer"]
    schedule = training["schedule"]
    learning_rate = settings["learning_rate"]
    warmup_steps = schedule["warmup_epochs"] * steps_per_epoch
    if schedule["name"] == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate,
            decay_steps=(training["epochs"] * steps_per_epoch) - warmup_steps,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    if settings["name"] == "adamw":
        return keras.optimizers.AdamW(
            learning_rate,
            weight_decay=settings["weight_decay"],
            beta_1=settings.get("beta_1", 0.9),
            beta_2=settings.get("beta_2", 0.999),
        )
    if settings["weight_decay"]:
        return keras.optimizers.SGD(
            learning_rate, momentum=settings["momentum"],
            nesterov=settings["nesterov"], weight_decay=settings["weight_decay"],
        )
    return SGDWithL2Decay(
        learning_rate, momentum=settings["momentum"],
        nesterov=settings["nesterov"], l2_decay=settings["l2_decay"],
    )


def _decode_in_memory(spec, split):
    """All images of a split as uint8 arrays (each file decoded once)."""
    dataset, info = load_dataset(
        spec, split=split, batch_size=1000, shuffle=False, with_info=True
    )
    images, labels = [], []
    for batch_images, batch_labels in dataset.as_numpy_iterator():
        images.append(np.round(batch_images).astype(np.uint8))
        labels.append(batch_labels)
    arrays = {
        "images": np.concatenate(images),
        "labels": np.concatenate(labels).astype(np.int32),
    }
    if info.class_names is not None:
        arrays["class_names"] = list(info.class_names)
    return arrays, info


@dataclasses.dataclass
class RecipeData:
    """The datasets of a recipe run.

    Attributes:
        train: the shuffled, augmented training batches.
        train_plain: the training images without augmentation or shuffling
            (for k-NN and linear probes).
        eval: the evaluation split, not shuffled, not augmented.
        train_info: `DatasetInfo` of the training split.
        eval_info: `DatasetInfo` of the evaluation split.
    """

    train: object
    train_plain: object
    eval: object
    train_info: object
    eval_info: object


def load_recipe_data(recipe, dataset=None):
    """The datasets of a recipe.

    Args:
        recipe: a `Recipe`.
        dataset: optional override of `recipe.data["dataset"]` (e.g. the
            path of the data on this machine).

    Returns:
        A `RecipeData`.
    """
    spec = dataset or recipe.data["dataset"]
    batch_size = recipe.training["batch_size"]
    train_split, eval_split = recipe.data["train_split"], recipe.data["eval_split"]
    infos = None
    if recipe.data["in_memory"]:
        train_spec, train_info = _decode_in_memory(spec, train_split)
        eval_spec, eval_info = _decode_in_memory(spec, eval_split)
        infos = (train_info, eval_info)
        # Arrays have no named splits: "train" shuffles, "test" does not.
        train_split, eval_split = "train", "test"
    else:
        train_spec = eval_spec = spec
    train, train_info = load_dataset(
        train_spec, split=train_split, batch_size=batch_size,
        augment=recipe.data["augment"] or False, seed=recipe.seed,
        with_info=True,
    )
    train_plain = load_dataset(
        train_spec, split=train_split, batch_size=batch_size, shuffle=False
    )
    eval_data, eval_info = load_dataset(
        eval_spec, split=eval_split, batch_size=batch_size, shuffle=False,
        with_info=True,
    )
    if infos:
        train_info, eval_info = infos
    return RecipeData(train, train_plain, eval_data, train_info, eval_info)


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` (wall time of the epoch) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = round(time.perf_counter() - self._start, 2)


def read_history(path):
    """The rows of a `history.csv`, one per epoch, as dicts of floats.

    An epoch logged twice (its run was killed after the log row and before
    the checkpoint, so it ran again) keeps its last row.
    """
    if not os.path.exists(path):
        return []
    with open(path) as file:
        rows = [
            {key: float(value) for key, value in row.items() if value not in ("", "NA")}
            for row in csv.DictReader(file)
        ]
    by_epoch = {int(row["epoch"]): row for row in rows}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


class HistoryLog(keras.callbacks.Callback):
    """Adds each epoch's logs as a row of `history.csv`.

    Unlike `keras.callbacks.CSVLogger`, a resumed run whose logs have other
    columns (a metric added, validation every N epochs) stays aligned: the
    file is rewritten with the union of the columns.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        # An epoch run again after an interruption replaces its old row.
        rows = [row for row in read_history(self.path) if row["epoch"] != epoch]
        rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        # Written whole, then renamed: a kill mid-write leaves the old file.
        write_history(rows, self.path + ".tmp")
        os.replace(self.path + ".tmp", self.path)


def write_history(rows, path):
    """Writes `read_history` rows back as a CSV."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "epoch": int(row["epoch"])})


def _evaluate_classifier_method(model, eval_data, evaluation):
    metrics = {}
    for metric in evaluation:
        if metric == "accuracy":
            results = model.evaluate(eval_data, return_dict=True, verbose=0)
        else:
            inference = metric.removeprefix("accuracy_")
            if not isinstance(model, methods.JointLabelMethod):
                raise ValueError(
                    f"Evaluation '{metric}' is for joint-label methods (SFE, "
                    f"SLA); {type(model).__name__} has only 'accuracy'."
                )
            results = model.evaluate(
                eval_data, inference=inference, return_dict=True, verbose=0
            )
        metrics[metric] = float(results["accuracy"])
    return metrics


def _evaluate_backbone(backbone, train_data, eval_data, evaluation, seed):
    from keras_ssl import evaluation as protocols

    train_features, train_labels = protocols.extract_features(backbone, train_data)
    eval_features, eval_labels = protocols.extract_features(backbone, eval_data)
    metrics = {}
    if "knn" in evaluation:
        predictions = protocols.knn_classify(
            train_features, train_labels, eval_features, k=20, temperature=0.07
        )
        metrics["knn"] = float(np.mean(predictions == eval_labels))
    if "linear" in evaluation:
        metrics["linear"] = protocols.linear_probe(
            train_features, train_labels, eval_features, eval_labels,
            epochs=100, seed=seed,
        ).accuracy
    return metrics


def _export(model, recipe, preset_dir):
    if is_pretext(recipe):
        model.backbone.save_to_preset(preset_dir)
    elif isinstance(model, methods.JointLabelMethod):
        # SI: the joint classifier's untransformed columns as a plain head.
        model.export_classifier(preset_dir, inference="si")
    else:
        model.export_classifier(preset_dir)


def _check_exported_classifier(preset_dir, eval_data):
    """Accuracy of the preset as a user loads it (catches export bugs)."""
    classifier = keras_hub.models.ImageClassifier.from_preset(preset_dir)
    classifier.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
    )
    return float(
        classifier.evaluate(eval_data, return_dict=True, verbose=0)["accuracy"]
    )


def train_recipe(
    recipe, preset_dir, run_dir=None, dataset=None, verbose=2
):
    """Trains a recipe (resuming an interrupted run) and writes its preset.

    The run folder keeps the checkpoint (`backup/`, written at the end of
    every epoch) and `history.csv`; running the same recipe with the same
    `run_dir` again continues from the last finished epoch, in a new
    process. The preset folder gets the model (config, weights,
    preprocessor), `metrics.json`, the recipe, `history.csv`, the training
    curve and a model card.

    Args:
        recipe: a `Recipe` (see `load_recipe`).
        preset_dir: str. The preset folder to write.
        run_dir: str or None. Checkpoints and logs; default
            `runs/presets/<name>`.
        dataset: optional override of the recipe's dataset spec.
        verbose: int. Keras progress output.

    Returns:
        The metrics dict written to `metrics.json`.

    Example:
    ```python
    recipe = keras_ssl.recipes.load_recipe("recipes/resnet20_cifar10.yaml")
    keras_ssl.recipes.train_recipe(recipe, "weights/resnet20_cifar10")
    ```
    """
    run_dir = run_dir or os.path.join("runs", "presets", recipe.name)
    os.makedirs(run_dir, exist_ok=True)
    _check_run_matches(recipe, run_dir)
    keras.utils.set_random_seed(recipe.seed)
    data = load_recipe_data(recipe, dataset)
    train_info, eval_data = data.train_info, data.eval
    num_classes = train_info.num_classes
    backbone = build_backbone(recipe)
    model = build_method(recipe, backbone, num_classes)
    steps_per_epoch = -(-train_info.num_examples // recipe.training["batch_size"])
    model.compile(optimizer=build_optimizer(recipe, steps_per_epoch))
    image_shape = tuple(recipe.backbone["arguments"].get("image_shape", (32, 32, 3)))
    model(keras.ops.zeros((1, *image_shape)))  # BackupAndRestore restores into it.

    history_path = os.path.join(run_dir, HISTORY_FILE)
    backup_dir = os.path.join(run_dir, "backup")
    resumed = os.path.exists(os.path.join(backup_dir, "training_metadata.json"))
    if resumed:
        print(f"Resuming {recipe.name} from the checkpoint in {backup_dir}")
    validation = {}
    if not is_pretext(recipe) and recipe.training["validate_every"]:
        validation = {
            "validation_data": eval_data,
            "validation_freq": recipe.training["validate_every"],
        }
    model.fit(
        data.train,
        epochs=recipe.training["epochs"],
        # The log row is written before the checkpoint: a run killed in
        # between repeats that epoch, and `read_history` keeps its last row.
        callbacks=[
            EpochTimer(),
            HistoryLog(history_path),
            keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
        ],
        verbose=verbose,
        **validation,
    )
    history = read_history(history_path)

    if is_pretext(recipe):
        metrics = _evaluate_backbone(
            model.backbone, data.train_plain, eval_data, [m for m in recipe.evaluation if m in BACKBONE_EVALUATIONS],
            recipe.seed,
        )
    else:
        metrics = _evaluate_classifier_method(
            model, eval_data,
            [m for m in recipe.evaluation if m in CLASSIFIER_EVALUATIONS],
        )
    if os.path.exists(preset_dir):
        shutil.rmtree(preset_dir)
    _export(model, recipe, preset_dir)
    if not is_pretext(recipe):
        metrics["preset_accuracy"] = _check_exported_classifier(preset_dir, eval_data)

    summary = {
        "name": recipe.name,
        "metrics": metrics,
        "dataset": str(dataset or recipe.data["dataset"]),
        "eval_split": recipe.data["eval_split"],
        "train_examples": train_info.num_examples,
        "eval_examples": data.eval_info.num_examples,
        "epochs": len(history),
        "train_seconds": round(sum(row.get("epoch_seconds", 0.0) for row in history), 1),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "parameters": int(model.backbone.count_params()),
        "seeds": 1,
    }
    with open(os.path.join(preset_dir, METRICS_FILE), "w") as file:
        json.dump(summary, file, indent=2)
    with open(os.path.join(preset_dir, RECIPE_FILE), "w") as file:
        file.write(recipe.text or _dump_yaml(recipe.to_dict()))
    write_history(history, os.path.join(preset_dir, HISTORY_FILE))
    model_card.plot_training_curve(history, os.path.join(preset_dir, CURVE_FILE))
    model_card.write_recipe_card(preset_dir, recipe, summary)
    return summary


def rewrite_card(recipe, preset_dir):
    """Writes card, recipe and curve of a trained preset from its own files.

    For a card that should state a comparison made after training (the
    supervised twin's preset or the PyTorch reference run finished later).
    """
    path = os.path.join(preset_dir, METRICS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"'{path}' does not exist: train the recipe first "
            f"(python scripts/train_preset.py {recipe.path or 'RECIPE'})."
        )
    with open(path) as file:
        summary = json.load(file)
    with open(os.path.join(preset_dir, RECIPE_FILE), "w") as file:
        file.write(recipe.text or _dump_yaml(recipe.to_dict()))
    history = read_history(os.path.join(preset_dir, HISTORY_FILE))
    model_card.plot_training_curve(history, os.path.join(preset_dir, CURVE_FILE))
    return model_card.write_recipe_card(preset_dir, recipe, summary)


def _dump_yaml(config):
    return yaml.safe_dump(config, sort_keys=False)


# What a checkpoint depends on; the name, card text and links may change.
TRAINING_SECTIONS = ("backbone", "method", "data", "training", "seed")


def _check_run_matches(recipe, run_dir):
    """Refuses to resume a run folder that holds another recipe's run."""
    marker = os.path.join(run_dir, RECIPE_FILE)
    current = {key: recipe.to_dict()[key] for key in TRAINING_SECTIONS}
    if os.path.exists(marker):
        with open(marker) as file:
            previous = yaml.safe_load(file) or {}
        previous = {key: previous.get(key) for key in TRAINING_SECTIONS}
        if previous != current:
            changed = [key for key in TRAINING_SECTIONS if previous[key] != current[key]]
            raise ValueError(
                f"The run folder '{run_dir}' holds a run of a different "
                f"recipe ({', '.join(changed)} differ; see {marker}). Pass "
                "another run folder, or delete this one to start over."
            )
    else:
        with open(marker, "w") as file:
            file.write(_dump_yaml(recipe.to_dict()))
