"""Recipes: parsing, a resumable run, and the preset folder it writes."""

import copy
import csv
import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest
import yaml

from keras_ssl.data import load_dataset
from keras_ssl.recipes import load_recipe
from keras_ssl.recipes import parse_recipe
from keras_ssl.recipes import train_recipe
from keras_ssl.recipes.runner import HistoryLog
from keras_ssl.recipes.runner import read_history
from keras_ssl.recipes.runner import rewrite_card

from tests.conftest import kill_after_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {
    "name": "tiny_resnet8",
    "description": "A ResNet-8 trained for two epochs on the bundled sample.",
    "backbone": {
        "constructor": "ResNetBackbone.cifar",
        "arguments": {"depth": 8, "image_shape": [32, 32, 3]},
    },
    "method": {"class": "Supervised", "arguments": {}},
    "data": {"dataset": "sample", "augment": "cifar",
             "normalization": "cifar10", "in_memory": True},
    "training": {
        "epochs": 2,
        "batch_size": 100,
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "l2_decay": 5e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
    },
    "evaluation": ["accuracy"],
    "seed": 0,
}


def write_recipe(folder, config):
    path = os.path.join(folder, f"{config['name']}.yaml")
    with open(path, "w") as file:
        yaml.safe_dump(config, file, sort_keys=False)
    return path


def front_matter(card_path):
    with open(card_path) as file:
        text = file.read()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_shipped_recipes_parse():
    names = sorted(os.listdir(os.path.join(REPO, "recipes")))
    assert "resnet20_cifar10.yaml" in names
    for name in names:
        recipe = load_recipe(os.path.join(REPO, "recipes", name))
        assert recipe.name == name.removesuffix(".yaml")
        assert recipe.data["eval_split"] == "test"


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c.update(optimiser={}), "unknown sections"),
        (lambda c: c["training"].pop("epochs"), "`training` needs `epochs`"),
        (lambda c: c["training"]["optimizer"].update(name="lamb"),
         "training.optimizer.name must be one of sgd, adamw"),
        (lambda c: c["training"].update(batch_size=0), "positive int"),
        (lambda c: c["training"]["schedule"].update(warmup_epochs=2),
         "must be below epochs"),
        (lambda c: c.update(evaluation=["top5"]), "each evaluation entry"),
        (lambda c: c["training"]["optimizer"].update(name="adamw"),
         "`l2_decay` (decay in the gradient) is for SGD"),
        (lambda c: c["data"].update(normalization="mnist"),
         "data.normalization must be one of"),
    ],
)
def test_bad_recipes_name_the_problem(change, message):
    config = copy.deepcopy(TINY)
    change(config)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_recipe(config, path="bad.yaml")


def test_unknown_classes_name_the_problem(tmp_path):
    config = copy.deepcopy(TINY)
    config["method"]["class"] = "SuperVised"
    with pytest.raises(ValueError, match="Unknown method 'SuperVised'"):
        train_recipe(parse_recipe(config), str(tmp_path / "out"),
                     run_dir=str(tmp_path / "run"))


@pytest.mark.multibackend
def test_a_recipe_writes_a_complete_preset_folder(tmp_path):
    recipe = load_recipe(write_recipe(str(tmp_path), TINY))
    preset = str(tmp_path / "tiny_resnet8")
    summary = train_recipe(recipe, preset, run_dir=str(tmp_path / "run"), verbose=0)

    for name in ("config.json", "model.weights.h5", "task.json",
                 "preprocessor.json", "metadata.json", "README.md",
                 "metrics.json", "recipe.yaml", "history.csv",
                 "training_curve.png"):
        assert os.path.exists(os.path.join(preset, name)), name
    with open(os.path.join(preset, "history.csv")) as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert all(float(row["epoch_seconds"]) > 0 for row in rows)
    assert "val_accuracy" in rows[0]

    # The card's metrics are the measured ones, in the Hub's format.
    meta, text = front_matter(os.path.join(preset, "README.md"))
    assert meta["library_name"] == "keras-hub"
    assert {"method:supervised", "backbone:resnetbackbone", "dataset:sample"} <= set(meta["tags"])
    card_metrics = meta["model-index"][0]["results"][0]["metrics"]
    values = {metric["name"]: metric["value"] for metric in card_metrics}
    assert values["Top-1 accuracy"] == round(100 * summary["metrics"]["accuracy"], 2)
    with open(os.path.join(preset, "metrics.json")) as file:
        assert json.load(file)["metrics"] == summary["metrics"]
    assert "python scripts/train_preset.py" in text

    # The preset, loaded as a user would, scores what the card says.
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    images, labels = next(iter(load_dataset("sample", split="test", batch_size=300)))
    predictions = np.argmax(keras.ops.convert_to_numpy(classifier.predict(images, verbose=0)), -1)
    accuracy = float(np.mean(predictions == keras.ops.convert_to_numpy(labels)))
    assert accuracy == pytest.approx(summary["metrics"]["preset_accuracy"], abs=1e-6)
    # ... and training learned something in two epochs (chance is 0.10).
    # Held-out accuracy is no test of that here: after 30 steps at learning
    # rate 0.1 it swings from epoch to epoch (0.22 then 0.13 on PyTorch on an
    # AVX-512 CPU), so whether it clears chance depends on the CPU's rounding.
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[1]["accuracy"]) > 0.15


def test_a_method_card_states_the_difference_to_its_twin(tmp_path):
    weights = tmp_path / "weights"
    twin = load_recipe(write_recipe(str(tmp_path), TINY))
    train_recipe(twin, str(weights / twin.name), run_dir=str(tmp_path / "run_twin"), verbose=0)
    config = copy.deepcopy(TINY)
    config.update(
        name="tiny_resnet8_sfe",
        method={"class": "SFE", "arguments": {"num_transforms": 9}},
        evaluation=["accuracy_si", "accuracy_ag", "accuracy_sd"],
        compare_with=twin.name,
    )
    recipe = load_recipe(write_recipe(str(tmp_path), config))
    summary = train_recipe(recipe, str(weights / recipe.name),
                           run_dir=str(tmp_path / "run_sfe"), verbose=0)
    assert set(summary["metrics"]) == {"accuracy_si", "accuracy_ag", "accuracy_sd", "preset_accuracy"}
    # The exported classifier is the SI prediction.
    assert summary["metrics"]["preset_accuracy"] == pytest.approx(summary["metrics"]["accuracy_si"], abs=1e-6)
    with open(weights / recipe.name / "README.md") as file:
        card = file.read()
    with open(weights / twin.name / "metrics.json") as file:
        twin_accuracy = json.load(file)["metrics"]["accuracy"]
    difference = 100 * (summary["metrics"]["accuracy_si"] - twin_accuracy)
    assert f"a difference of {difference:+.2f} points, from one seed each" in card

    # A PyTorch reference run that finished after training: the card is
    # rewritten from metrics.json and states the fidelity figure.
    reference = tmp_path / "twin_torch.json"
    twin_config = {**TINY, "reference": str(reference)}
    twin = load_recipe(write_recipe(str(tmp_path), twin_config))
    rewrite_card(twin, str(weights / twin.name))
    with open(weights / twin.name / "README.md") as file:
        assert "has not finished, so no fidelity figure is stated yet" in file.read()
    reference.write_text(json.dumps(
        {"test_accuracy": 0.25, "torch": "2.14.1", "seed": 0, "epochs": [{}, {}]}
    ))
    rewrite_card(twin, str(weights / twin.name))
    with open(weights / twin.name / "README.md") as file:
        card = file.read()
    assert f"{100 * twin_accuracy:.2f} %, a difference of {100 * (twin_accuracy - 0.25):+.2f}" in card
    assert "reaches 25.00 %" in card
    with open(weights / twin.name / "recipe.yaml") as file:
        assert str(reference) in file.read()


def test_a_pretext_recipe_reports_knn_and_linear(tmp_path):
    config = copy.deepcopy(TINY)
    config.update(
        name="tiny_patch_rotnet",
        method={"class": "PatchRotNet", "arguments": {"patch_ratio": 0.4}},
        evaluation=["knn", "linear"],
    )
    config["training"]["epochs"] = 1
    config["training"]["schedule"]["warmup_epochs"] = 0
    recipe = load_recipe(write_recipe(str(tmp_path), config))
    preset = str(tmp_path / recipe.name)
    summary = train_recipe(recipe, preset, run_dir=str(tmp_path / "run"), verbose=0)
    assert set(summary["metrics"]) == {"knn", "linear"}
    assert all(0.1 < value <= 1.0 for value in summary["metrics"].values())
    backbone = keras_hub.models.Backbone.from_preset(preset)
    assert not os.path.exists(os.path.join(preset, "task.json"))
    assert backbone.count_params() == summary["parameters"]
    meta, _ = front_matter(os.path.join(preset, "README.md"))
    names = [m["name"] for m in meta["model-index"][0]["results"][0]["metrics"]]
    assert names == ["k-NN top-1 accuracy (k=20, T=0.07)", "Linear-probe top-1 accuracy"]


def test_a_run_folder_of_another_recipe_is_refused(tmp_path):
    recipe = load_recipe(write_recipe(str(tmp_path), TINY))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text("name: something_else\n")
    with pytest.raises(ValueError, match="holds a run of a different recipe"):
        train_recipe(recipe, str(tmp_path / "out"), run_dir=str(run_dir))


def test_a_run_folder_resumes_after_card_only_edits(tmp_path):
    from keras_ssl.recipes.runner import _check_run_matches

    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    _check_run_matches(parse_recipe(copy.deepcopy(TINY)), run_dir)
    edited = {**copy.deepcopy(TINY), "description": "New words.",
              "reference": "docs/x.json", "hf_handle": "hf://a/b"}
    _check_run_matches(parse_recipe(edited), run_dir)  # accepted
    changed = copy.deepcopy(TINY)
    changed["training"]["epochs"] = 5
    with pytest.raises(ValueError, match=r"\(training differ"):
        _check_run_matches(parse_recipe(changed), run_dir)


def test_a_killed_recipe_run_resumes_from_its_checkpoint(tmp_path):
    config = copy.deepcopy(TINY)
    config["training"]["epochs"] = 3
    recipe_path = write_recipe(str(tmp_path), config)
    run_dir = str(tmp_path / "run")
    command = [
        sys.executable, os.path.join(REPO, "scripts", "train_preset.py"),
        recipe_path, "--output", str(tmp_path / "preset"), "--run-dir",
        run_dir, "--verbose", "0",
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    metadata = os.path.join(run_dir, "backup", "training_metadata.json")
    kill_after_checkpoint(command, env, metadata, epoch=0)
    assert not os.path.exists(tmp_path / "preset")

    second = subprocess.run(command, env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming tiny_resnet8 from the checkpoint" in second.stdout
    with open(tmp_path / "preset" / "history.csv") as file:
        epochs = [int(row["epoch"]) for row in csv.DictReader(file)]
    assert epochs == [0, 1, 2]


def test_history_log_stays_aligned_when_a_resumed_run_logs_other_columns(tmp_path):
    path = str(tmp_path / "history.csv")
    first = HistoryLog(path)
    first.on_epoch_end(0, {"loss": 2.0, "val_loss": 2.5, "val_extra": 0.0})
    first.on_epoch_end(1, {"loss": 1.5, "val_loss": 2.0, "val_extra": 0.0})
    # A new process: one column gone, epoch 1 repeated (killed before its
    # checkpoint), one column new.
    resumed = HistoryLog(path)
    resumed.on_epoch_end(1, {"loss": 1.4, "val_loss": 1.9, "accuracy": 0.5})
    resumed.on_epoch_end(2, {"loss": 1.2, "accuracy": 0.6})
    rows = read_history(path)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[0] == {"epoch": 0, "loss": 2.0, "val_loss": 2.5, "val_extra": 0.0}
    assert rows[1] == {"epoch": 1, "loss": 1.4, "val_loss": 1.9, "accuracy": 0.5}
    assert rows[2] == {"epoch": 2, "loss": 1.2, "accuracy": 0.6}


def test_cli_train_recipe_errors_clearly(tmp_path, capsys):
    from keras_ssl import cli

    assert cli.main(["train", "--recipe", str(tmp_path / "missing.yaml")]) == 2
    assert "Recipe file" in capsys.readouterr().err
    # Model and schedule flags would be silently overridden by the recipe.
    recipe = os.path.join(REPO, "recipes", "resnet20_cifar10.yaml")
    assert cli.main(["train", "--recipe", recipe, "--epochs", "3",
                     "--backbone", "vit_tiny"]) == 2
    error = capsys.readouterr().err
    assert "--backbone, --epochs would be ignored" in error
    assert "Edit the recipe file" in error
