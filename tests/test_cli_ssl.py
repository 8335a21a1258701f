"""`keras-ssl pretrain` and `keras-ssl evaluate --protocol knn|linear|finetune`."""

import json
import os

import pytest

from keras_ssl import cli


def test_pretrain_then_evaluate_with_each_protocol(tmp_path, capsys):
    output = str(tmp_path / "pretrain")
    status = cli.main([
        "pretrain", "--method", "patch_relnet", "--backbone", "resnet8",
        "--epochs", "1", "--batch-size", "100", "--output", output,
        "--verbose", "0",
    ])
    assert status == 0
    with open(os.path.join(output, "metrics.json")) as file:
        metrics = json.load(file)
    assert metrics["method"] == "patch_relnet"
    assert metrics["train_examples"] == 1500
    assert 0.0 <= metrics["pretext_accuracy"] <= 1.0
    assert "backbone preset in" in capsys.readouterr().out

    backbone = os.path.join(output, "backbone")
    for protocol, extra in (
        ("knn", ["--k", "10"]),
        ("linear", ["--epochs", "2", "--head", "two_fc"]),
        ("finetune", ["--epochs", "1"]),
    ):
        folder = str(tmp_path / protocol)
        status = cli.main([
            "evaluate", "--protocol", protocol, "--model", backbone,
            "--batch-size", "100", "--output", folder, "--verbose", "0", *extra,
        ])
        assert status == 0, protocol
        with open(os.path.join(folder, "evaluation.json")) as file:
            evaluation = json.load(file)
        assert evaluation["protocol"] == protocol
        assert evaluation["examples"] == 300
        assert 0.0 <= evaluation["accuracy"] <= 1.0
        assert f"accuracy ({protocol})" in capsys.readouterr().out


def test_bad_pretrain_arguments_are_reported(capsys):
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--method", "simclr"])
    assert "invalid choice: 'simclr'" in capsys.readouterr().err
    status = cli.main([
        "pretrain", "--method", "patch_rotnet", "--patch-ratio", "1.2",
        "--epochs", "1",
    ])
    assert status == 2
    assert "`patch_ratio`" in capsys.readouterr().err
