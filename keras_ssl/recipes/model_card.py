"""Model cards and training curves for presets trained from a recipe."""

import csv
import json
import os

import yaml

from keras_ssl.hub.model_card import card_front_matter

# Card metric names, as the model-index `name` of each measured metric.
METRIC_NAMES = {
    "accuracy": "Top-1 accuracy",
    "accuracy_si": "Top-1 accuracy, single inference (SI)",
    "accuracy_ag": "Top-1 accuracy, aggregated inference (AG)",
    "accuracy_sd": "Top-1 accuracy, self-distilled head (SD)",
    "preset_accuracy": "Top-1 accuracy of the exported preset",
    "knn": "k-NN top-1 accuracy (k=20, T=0.07)",
    "linear": "Linear-probe top-1 accuracy",
}
DATASET_NAMES = {"cifar10": "CIFAR-10"}


def plot_training_curve(history, path):
    """Writes loss and accuracy per epoch (train and validation) as a PNG.

    Args:
        history: list of dicts, the rows of `history.csv`.
        path: str, the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [int(row["epoch"]) + 1 for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("loss", "train"), ("val_loss", "test")):
        if any(key in row for row in history):
            points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
            loss_axis.plot(*zip(*points), marker=".", label=label)
    accuracy_keys = [k for k in history[0] if k.endswith("accuracy")] if history else []
    for key in accuracy_keys:
        points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
        label = key.replace("val_", "test ") if key.startswith("val_") else f"train {key}"
        accuracy_axis.plot(*zip(*points), marker=".", label=label)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _dataset_tag(recipe):
    spec = os.path.basename(os.path.normpath(str(recipe.data["dataset"])))
    return spec.lower().replace("-", "")


def _twin_summary(preset_dir, twin):
    path = os.path.join(os.path.dirname(os.path.abspath(preset_dir)), twin, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def write_recipe_card(preset_dir, recipe, summary):
    """Writes the `README.md` model card of a preset trained from a recipe.

    The card's YAML front matter carries `library_name: keras-hub`, tags for
    method, backbone and dataset, and a `model-index` block with the
    measured metrics; its body says how to load the preset, what was
    measured, how it was trained and how to reproduce it.

    Args:
        preset_dir: str. The preset folder.
        recipe: the `Recipe` that trained it.
        summary: dict, the preset's `metrics.json`.

    Returns:
        The path of the card.
    """
    dataset_tag = _dataset_tag(recipe)
    dataset_name = DATASET_NAMES.get(dataset_tag, dataset_tag)
    method = recipe.method["class"].lower()
    backbone = recipe.backbone["constructor"].split(".")[0].lower()
    front_matter = card_front_matter(
        recipe.name,
        metrics=[
            {
                "type": "accuracy",
                "name": METRIC_NAMES.get(key, key),
                "value": round(100 * value, 2),
            }
            for key, value in summary["metrics"].items()
        ],
        dataset={
            "name": dataset_name,
            "type": dataset_tag,
            "split": summary["eval_split"],
        },
        tags=[
            "keras-ssl",
            "keras",
            f"method:{method}",
            f"backbone:{backbone}",
            f"dataset:{dataset_tag}",
        ],
        license="apache-2.0",
        pipeline_tag="image-classification",
    )
    pretext = "knn" in summary["metrics"] or "linear" in summary["metrics"]
    loader = "Backbone" if pretext else "ImageClassifier"
    handle = recipe.hf_handle or f"hf://keras-ssl/{recipe.name}"
    recipe_file = recipe.path or f"recipes/{recipe.name}.yaml"
    training = recipe.training
    optimizer = training["optimizer"]
    lines = [
        "---\n" + yaml.safe_dump(front_matter, sort_keys=False) + "---\n",
        f"# {recipe.name}",
        "",
        recipe.description,
        "",
        "## Use",
        "",
        "```python",
        "import keras_hub",
        "import keras_ssl  # registers the keras_ssl classes and presets",
        "",
        f'model = keras_hub.models.{loader}.from_preset("{recipe.name}")',
        f'# or, from the Hub: keras_hub.models.{loader}.from_preset("{handle}")',
        "```",
        "",
        "Inputs are raw RGB images with values in [0, 255]; the preset's "
        "preprocessor resizes and normalises them.",
        "",
        "## Measured",
        "",
        f"On the {summary['eval_examples']:,} images of the "
        f"`{summary['eval_split']}` split of {dataset_name}, "
        f"after training on {summary['train_examples']:,} images "
        f"({summary['seeds']} seed):",
        "",
        "| Metric | Value |",
        "|---|--:|",
    ]
    lines += [
        f"| {METRIC_NAMES.get(key, key)} | {100 * value:.2f} % |"
        for key, value in summary["metrics"].items()
    ]
    if recipe.compare_with:
        twin = _twin_summary(preset_dir, recipe.compare_with)
        lines.append("")
        if twin:
            ours = _headline(summary["metrics"])
            theirs = _headline(twin["metrics"])
            lines.append(
                f"Against its supervised twin `{recipe.compare_with}` (same "
                f"recipe without the method): {100 * ours:.2f} % vs "
                f"{100 * theirs:.2f} %, a difference of "
                f"{100 * (ours - theirs):+.2f} points, from one seed each; "
                "seed-to-seed spread is not measured, so a difference under "
                "about half a point is within noise."
            )
        else:
            lines.append(
                f"Its supervised twin `{recipe.compare_with}` has no metrics "
                "next to this preset, so no difference is stated."
            )
    lines += _reference_lines(recipe, summary)
    lines += [
        "",
        "## Training",
        "",
        f"- Backbone: `{recipe.backbone['constructor']}"
        f"({_arguments(recipe.backbone['arguments'])})`, "
        f"{summary['parameters']:,} parameters.",
        f"- Method: `{recipe.method['class']}({_arguments(recipe.method['arguments'])})`.",
        f"- Data: `{recipe.data['dataset']}`, augmentation `{recipe.data['augment']}`, "
        f"{recipe.data['normalization']} normalisation.",
        f"- {training['epochs']} epochs, batch {training['batch_size']}, "
        f"{_optimizer_text(optimizer)}, {training['schedule']['name']} schedule"
        f" with {training['schedule']['warmup_epochs']} warm-up epochs, "
        f"seed {recipe.seed}.",
        f"- Trained with Keras {summary['keras_version']} on the "
        f"{summary['backend']} backend: {summary['train_seconds'] / 60:.1f} min "
        f"of training on a 2-core CPU{_epoch_time_range(preset_dir)}.",
        "- The test split is evaluated after every epoch for the curve "
        "below only; the final epoch's weights are the preset (no model "
        "selection on the test split).",
        "",
        f"![training curve]({os.path.basename('training_curve.png')})",
        "",
        "`history.csv` holds the per-epoch log and `recipe.yaml` the recipe.",
        "",
        "## Reproduce",
        "",
        "```shell",
        f"python scripts/train_preset.py {recipe_file}",
        "```",
        "",
        "An interrupted run continues from its last finished epoch when the "
        "same command is run again.",
        "",
    ]
    path = os.path.join(preset_dir, "README.md")
    with open(path, "w") as file:
        file.write("\n".join(lines))
    return path


def _reference_lines(recipe, summary):
    """The comparison with the plain PyTorch run of the same recipe."""
    if not recipe.reference:
        return []
    if not os.path.exists(recipe.reference):
        return [
            "",
            f"The plain PyTorch run of this recipe (`{recipe.reference}`) "
            "has not finished, so no fidelity figure is stated yet.",
        ]
    with open(recipe.reference) as file:
        reference = json.load(file)
    ours = _headline(summary["metrics"])
    theirs = reference["test_accuracy"]
    return [
        "",
        "Fidelity check: the same recipe (architecture, optimiser, schedule, "
        f"augmentation, {len(reference['epochs'])} epochs, data) in plain "
        f"PyTorch {reference['torch']} reaches {100 * theirs:.2f} % "
        f"(`{recipe.reference}`, seed {reference['seed']}); this preset "
        f"{100 * ours:.2f} %, a difference of {100 * (ours - theirs):+.2f} "
        "points from one seed each.",
    ]


def _epoch_time_range(preset_dir):
    path = os.path.join(preset_dir, "history.csv")
    if not os.path.exists(path):
        return ""
    with open(path) as file:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(file)]
    if not seconds:
        return ""
    return (
        f", {min(seconds):.0f} to {max(seconds):.0f} s an epoch (the slower "
        "ones while other jobs shared the CPU)"
        if max(seconds) > 1.3 * min(seconds)
        else f", {min(seconds):.0f} to {max(seconds):.0f} s an epoch"
    )


def _headline(metrics):
    for key in ("accuracy", "accuracy_si", "linear", "knn"):
        if key in metrics:
            return metrics[key]
    raise ValueError(f"No headline metric among {sorted(metrics)}.")


def _arguments(arguments):
    return ", ".join(f"{key}={value!r}" for key, value in arguments.items())


def _optimizer_text(optimizer):
    if optimizer["name"] == "adamw":
        return (
            f"AdamW (lr {optimizer['learning_rate']}, decoupled weight decay "
            f"{optimizer['weight_decay']})"
        )
    decay = (
        f"L2 weight decay {optimizer['l2_decay']} added to the gradient as "
        "in PyTorch's SGD"
        if optimizer["l2_decay"]
        else f"decoupled weight decay {optimizer['weight_decay']}"
    )
    nesterov = "Nesterov " if optimizer["nesterov"] else ""
    return (
        f"SGD with {nesterov}momentum {optimizer['momentum']} (lr "
        f"{optimizer['learning_rate']}, {decay})"
    )
