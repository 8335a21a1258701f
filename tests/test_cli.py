"""The keras-ssl command: train, evaluate, resume after a kill."""

import csv
import json
import os
import subprocess
import sys

import pytest

from keras_ssl import cli

from tests.conftest import kill_after_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_then_evaluate_on_the_bundled_sample(tmp_path, capsys):
    output = str(tmp_path / "run")
    status = cli.main([
        "train", "--backbone", "vit_tiny", "--num-layers", "1",
        "--epochs", "1", "--batch-size", "100", "--output", output,
        "--verbose", "0",
    ])
    assert status == 0
    with open(os.path.join(output, "metrics.json")) as file:
        metrics = json.load(file)
    assert metrics["eval_split"] == "test"
    assert metrics["train_examples"] == 1500
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert "test accuracy:" in capsys.readouterr().out

    status = cli.main([
        "evaluate", "--model", os.path.join(output, "classifier"),
        "--output", output, "--verbose", "0",
    ])
    assert status == 0
    with open(os.path.join(output, "evaluation.json")) as file:
        evaluation = json.load(file)
    assert evaluation["examples"] == 300
    assert evaluation["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert cli.main(["train", "--backbone", "resnet21", "--output", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "Unknown architecture 'resnet21'. Did you mean" in error
    assert "resnet20" in error
    assert cli.main([
        "train", "--dataset", str(tmp_path / "missing"), "--output", str(tmp_path)
    ]) == 2
    assert "missing" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", "no_such_preset_anywhere"]) == 2
    assert "no_such_preset_anywhere" in capsys.readouterr().err


def _epochs_in(history_path):
    with open(history_path) as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    output = str(tmp_path / "run")
    command = [
        sys.executable, "-m", "keras_ssl.cli", "train", "--backbone",
        "resnet8", "--epochs", "3", "--batch-size", "100",
        "--checkpoint-every", "4", "--output", output, "--verbose", "0",
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    metadata = os.path.join(output, "backup", "training_metadata.json")
    kill_after_checkpoint(command, env, metadata, epoch=1)
    assert not os.path.exists(os.path.join(output, "metrics.json"))
    assert _epochs_in(os.path.join(output, "history.csv")) == [0]

    second = subprocess.run(command, env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming from the checkpoint" in second.stdout
    # Epoch 0 is not trained again: the second run starts at epoch 1.
    assert _epochs_in(os.path.join(output, "history.csv")) == [0, 1, 2]
    assert os.path.exists(os.path.join(output, "metrics.json"))


def test_fine_tune_a_preset_with_a_method(tmp_path, capsys):
    import keras_hub
    import numpy as np

    from keras_ssl.methods import Supervised
    from keras_ssl.methods.supervised import default_preprocessor
    from keras_ssl.models import CIFAR10_MEAN
    from keras_ssl.models import CIFAR10_STD
    from keras_ssl.models import ResNetBackbone

    backbone = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    preprocessor = default_preprocessor(backbone, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    preset = str(tmp_path / "preset")
    Supervised(backbone, 10, preprocessor=preprocessor).export_classifier(preset)

    output = str(tmp_path / "run")
    status = cli.main([
        "train", "--preset", preset, "--method", "sfe", "--epochs", "1",
        "--optimizer", "sgd", "--learning-rate", "0.05",
        "--weight-decay", "0", "--batch-size", "100", "--output", output,
        "--verbose", "0",
    ])
    assert status == 0, capsys.readouterr().err
    with open(os.path.join(output, "metrics.json")) as file:
        metrics = json.load(file)
    assert metrics["method"] == "sfe"
    classifier = keras_hub.models.ImageClassifier.from_preset(
        os.path.join(output, "classifier")
    )
    # The fine-tuned preset keeps the normalisation of the preset it began from.
    converter = classifier.preprocessor.image_converter
    np.testing.assert_allclose(converter.mean, CIFAR10_MEAN)


def test_schedules_count_the_batches_an_epoch_really_has():
    from keras_ssl.data import load_dataset

    # 1,500 images in batches of 64: 23 full ones and a remainder of 28,
    # which distributed runs drop.
    for drop_remainder, steps in ((True, 23), (False, 24)):
        data = load_dataset("sample", batch_size=64, drop_remainder=drop_remainder)
        assert cli._batches_per_epoch(data, 1500, 64) == steps
