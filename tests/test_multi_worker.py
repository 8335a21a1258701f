"""Scale-out through the CLI: two JAX processes on 127.0.0.1 train one model
and end with the same weights; MirroredStrategy over two logical CPUs; a
worker that cannot reach its coordinator says so."""

import json
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from keras_ssl import cli
from keras_ssl.distribute import launch_local


def _weights(path):
    arrays = {}
    with h5py.File(path) as file:
        file.visititems(
            lambda name, item: arrays.__setitem__(name, item[()])
            if isinstance(item, h5py.Dataset) else None
        )
    return arrays


def test_two_processes_end_with_identical_weights(tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_ssl.cli", "train", "--backbone", "resnet8",
        "--dataset", "sample", "--epochs", "1", "--batch-size", "64",
        "--validation-fraction", "0.1", "--distribute", "multi-worker",
        "--output", str(output), "--verbose", "0",
    ]
    env = dict(os.environ, KERAS_BACKEND="jax")
    results = launch_local(command, 2, timeout=300, env=env)
    for process_id, (code, log) in enumerate(results):
        assert code == 0, f"process {process_id}:\n{log[-3000:]}"
        assert (
            f"JAX DataParallel over 2 devices in 2 processes (this is process "
            f"{process_id}); global batch 64 = 2 x 32 per replica" in log
        )
    chief = _weights(output / "classifier" / "model.weights.h5")
    worker = _weights(output / "worker_1" / "classifier" / "model.weights.h5")
    assert chief.keys() == worker.keys() and len(chief) > 10
    for name in chief:
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)
    metrics = json.loads((output / "metrics.json").read_text())
    assert 0 < metrics["train_accuracy"] <= 1
    assert "2 processes" in metrics["distribution"]

    # The 300 test images do not fill the last global batch of 64: both
    # processes still report the accuracy one process measures on all 300.
    worker_metrics = json.loads((output / "worker_1" / "metrics.json").read_text())
    assert cli.main(["evaluate", "--model", str(output / "classifier"),
                     "--dataset", "sample", "--batch-size", "64",
                     "--output", str(tmp_path / "one"), "--verbose", "0"]) == 0
    one_process = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    assert one_process["examples"] == 300
    for reported in (metrics, worker_metrics):
        assert reported["test_accuracy"] == pytest.approx(
            one_process["accuracy"], abs=1e-6
        )
        assert reported["test_loss"] == pytest.approx(one_process["loss"], rel=1e-4)
    results = launch_local(
        [sys.executable, "-m", "keras_ssl.cli", "evaluate", "--model",
         str(output / "classifier"), "--dataset", "sample", "--batch-size", "64",
         "--distribute", "multi-worker", "--output", str(tmp_path / "two"),
         "--verbose", "0"],
        2, timeout=300, env=env,
    )
    expected = f"test accuracy: {one_process['accuracy']:.4f} on 300 images"
    for process_id, (code, log) in enumerate(results):
        assert code == 0, f"process {process_id}:\n{log[-3000:]}"
        assert expected in log, log[-2000:]


def test_a_worker_without_coordinator_names_the_address():
    script = (
        "from keras_ssl.distribute import ClusterSpec, initialize_workers\n"
        "initialize_workers(ClusterSpec('127.0.0.1:9', 2, 1, "
        "initialization_timeout=2))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        env=dict(os.environ, KERAS_BACKEND="jax"), timeout=120,
    )
    assert result.returncode != 0
    assert "could not reach the coordinator at 127.0.0.1:9 within 2 s" in result.stderr


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="MirroredStrategy is TensorFlow's")
def test_cli_trains_and_pretrains_under_mirrored_strategy(tmp_path, capsys):
    common = ["--dataset", "sample", "--epochs", "1", "--batch-size", "32",
              "--distribute", "mirrored", "--cpu-devices", "2", "--verbose", "0"]
    assert cli.main(["train", "--backbone", "resnet8", "--output",
                     str(tmp_path / "train"), "--learning-rate", "0.05",
                     "--lr-scaling", "linear", "--reference-batch-size", "64",
                     *common]) == 0
    printed = capsys.readouterr().out
    assert ("MirroredStrategy over 2 replicas; global batch 32 = 2 x 16 per "
            "replica; learning rate 0.025 = 0.05 x (32 / 64) (linear scaling)"
            in printed)
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    # The preset was saved with plain BatchNorm, so it loads on any backend.
    config = json.loads((tmp_path / "train" / "classifier" / "config.json").read_text())
    assert '"synchronized": true' not in json.dumps(config)
    # Evaluation over 2 replicas, the last batch of 300 images padded,
    # matches one device.
    for mode in ("mirrored", "none"):
        assert cli.main(["evaluate", "--model", str(tmp_path / "train" / "classifier"),
                         "--dataset", "sample", "--batch-size", "32",
                         "--distribute", mode, "--cpu-devices", "2",
                         "--output", str(tmp_path / mode), "--verbose", "0"]) == 0
    evaluations = [json.loads((tmp_path / mode / "evaluation.json").read_text())
                   for mode in ("mirrored", "none")]
    assert evaluations[0]["examples"] == 300
    assert evaluations[0]["accuracy"] == pytest.approx(evaluations[1]["accuracy"], abs=1e-6)
    assert evaluations[0]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert cli.main(["pretrain", "--method", "moco_v2", "--backbone", "resnet8",
                     "--queue-size", "64", "--output", str(tmp_path / "moco"),
                     *common]) == 0
    assert (tmp_path / "moco" / "backbone" / "model.weights.h5").exists()
    assert cli.main(["train", "--backbone", "resnet8", *common[:-6],
                     "--batch-size", "33", "--distribute", "mirrored",
                     "--cpu-devices", "2", "--output", str(tmp_path / "odd")]) == 2
    assert "does not split evenly over 2 replicas" in capsys.readouterr().err
