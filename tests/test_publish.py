"""Tests for publishing presets: model cards, the pre-flight check, and an
upload then download through the real huggingface_hub client against the
local Hub of `tests/hub_server.py`."""

import hashlib
import importlib.util
import json
import os
import shutil
import socket

import h5py
import huggingface_hub
import keras_hub
import numpy as np
import pytest
from huggingface_hub import constants

from keras_ssl import cli
from keras_ssl import hub
from keras_ssl.models.resnet import ResNetBackbone
from keras_ssl.models.resnet import ResNetImageClassifier
from keras_ssl.models.resnet import ResNetImageClassifierPreprocessor
from keras_ssl.models.resnet import ResNetImageConverter
from tests.hub_server import HubServer
from tests.hub_server import point_client_at

REPO_ID = "keras-ssl-test/resnet8_tiny"
# What a training run writes; the card reports part of it.
METRICS = {"dataset": "cifar10", "test_accuracy": 0.3125, "test_loss": 1.5}
CARD_METRICS = [{"type": "accuracy", "name": "test_accuracy", "value": 0.3125}]
DATASET = {"name": "CIFAR-10", "type": "cifar10", "split": "test"}
IMAGES = (
    np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
)
SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "scripts",
    "publish_presets.py",
)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A complete classifier preset folder and its outputs on IMAGES."""
    path = str(tmp_path_factory.mktemp("presets") / "resnet8_tiny")
    preprocessor = ResNetImageClassifierPreprocessor(
        image_converter=ResNetImageConverter(image_size=(32, 32))
    )
    classifier = ResNetImageClassifier(
        backbone=ResNetBackbone.cifar(depth=8),
        num_classes=4,
        preprocessor=preprocessor,
    )
    classifier.save_to_preset(path)
    with open(os.path.join(path, hub.preflight.METRICS_FILE), "w") as f:
        json.dump(METRICS, f)
    hub.write_model_card(
        path,
        REPO_ID,
        "A tiny test model.",
        metrics=CARD_METRICS,
        dataset=DATASET,
        tags=("image-classification",),
    )
    return path, classifier.predict(IMAGES, verbose=0)


@pytest.fixture
def folder(preset, tmp_path):
    """A copy of the preset folder that a test may break."""
    path = str(tmp_path / "resnet8_tiny")
    shutil.copytree(preset[0], path)
    return path


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A local Hub the client points at, with HF_TOKEN set."""
    with HubServer() as hub_server:
        point_client_at(monkeypatch, hub_server.url, str(tmp_path / "hf_home"))
        yield hub_server
    assert not hub_server.unhandled


def _edit_json(path, **changes):
    with open(path) as f:
        content = json.load(f)
    content.update(changes)
    with open(path, "w") as f:
        json.dump(content, f)


def test_model_card_has_model_index(preset):
    card = os.path.join(preset[0], "README.md")
    metadata = hub.read_card_metadata(card)
    assert metadata["library_name"] == "keras-hub"
    assert metadata["tags"] == [
        "keras-ssl",
        "self-supervised-learning",
        "image-classification",
    ]
    assert metadata["pipeline_tag"] == "image-classification"
    assert metadata["datasets"] == ["cifar10"]
    assert metadata["model-index"] == [
        {
            "name": "resnet8_tiny",
            "results": [
                {
                    "task": {"type": "image-classification"},
                    "dataset": DATASET,
                    "metrics": [
                        {
                            "type": "accuracy",
                            "value": 0.3125,
                            "name": "test_accuracy",
                        }
                    ],
                }
            ],
        }
    ]
    with open(card) as f:
        text = f.read()
    assert "| CIFAR-10 | test_accuracy | 0.3125 |" in text
    assert f'"hf://{REPO_ID}"' in text


def test_model_card_metric_arguments(folder):
    hub.write_model_card(
        folder, REPO_ID, metrics={"accuracy": 0.5}, dataset="cifar10"
    )
    metadata = hub.read_card_metadata(os.path.join(folder, "README.md"))
    (result,) = metadata["model-index"][0]["results"]
    assert result["dataset"] == {"name": "cifar10", "type": "cifar10"}
    assert result["metrics"] == [
        {"type": "accuracy", "value": 0.5, "name": "accuracy"}
    ]

    with pytest.raises(ValueError, match="need the dataset they were measured"):
        hub.write_model_card(folder, REPO_ID, metrics={"accuracy": 0.5})
    with pytest.raises(ValueError, match="numeric `value`"):
        hub.write_model_card(
            folder,
            REPO_ID,
            metrics=[{"type": "accuracy", "value": "high"}],
            dataset="cifar10",
        )


@pytest.mark.multibackend
def test_check_preset_folder_report(preset):
    report = hub.check_preset_folder(preset[0])
    assert report.registered_name == "keras_ssl>ResNetBackbone"
    assert report.task_name == "keras_ssl>ResNetImageClassifier"
    # The backbone takes any size; the converter says the trained one.
    assert report.input_shape == (32, 32, 3)
    assert report.parameters > 0
    assert report.metrics == [
        {
            "name": "test_accuracy",
            "type": "accuracy",
            "value": 0.3125,
            "dataset": "cifar10",
        }
    ]
    assert set(report.files) == set(os.listdir(preset[0]))
    assert "test_accuracy=0.3125 (cifar10)" in str(report)


def _remove(*names):
    def mutate(folder):
        for name in names:
            os.remove(os.path.join(folder, name))

    return mutate


def _break_config_and_weights(folder):
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write('{"module": "keras_ssl.models"')
    weights = os.path.join(folder, "model.weights.h5")
    with open(weights, "rb") as f:
        content = f.read()
    with open(weights, "wb") as f:
        f.write(content[: len(content) // 2])
    _edit_json(os.path.join(folder, "metrics.json"), test_accuracy=None)


def _drop_registered_name(folder):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    del config["registered_name"]
    with open(path, "w") as f:
        json.dump(config, f)


# Breakages that stop the check before its load test, so they run fast.
# Each expected problem: how it starts, and the fix it names.
@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            _remove("config.json", "model.weights.h5", "README.md"),
            [
                ("config.json is missing", "save_to_preset(folder)"),
                ("model.weights.h5 is missing", "save_to_preset(folder)"),
                ("README.md (the model card) is missing", "write_model_card("),
            ],
        ),
        (
            _break_config_and_weights,
            [
                ("config.json is not valid JSON", "save_to_preset(folder)"),
                ("model.weights.h5 is not readable HDF5", "save_to_preset("),
                (
                    "the card reports test_accuracy = 0.3125, but no number "
                    "in metrics.json rounds to it, as a fraction or a "
                    "percentage (its numbers: test_loss = 1.5)",
                    "Rewrite the card from metrics.json",
                ),
            ],
        ),
        (
            _drop_registered_name,
            [("config.json has no `registered_name`", "save_to_preset(")],
        ),
    ],
    ids=["missing_files", "corrupt_files", "no_registered_name"],
)
def test_check_reports_file_problems(folder, mutate, expected):
    mutate(folder)
    with pytest.raises(hub.PresetCheckError) as info:
        hub.check_preset_folder(folder)
    assert str(info.value).startswith(
        f"Preset folder '{folder}' is not ready to publish:\n  - "
    )
    problems = info.value.problems
    assert len(problems) == len(expected)
    for problem, (start, fix) in zip(problems, expected):
        assert problem.startswith(start)
        assert fix in problem


def test_check_reports_every_card_problem_with_its_fix(folder, tmp_path):
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("---\nlibrary_name: keras\n---\n# A card without metadata\n")
    # Where `keras-ssl train` leaves it: beside the classifier folder.
    shutil.move(os.path.join(folder, "metrics.json"), tmp_path / "metrics.json")

    with pytest.raises(hub.PresetCheckError) as info:
        hub.check_preset_folder(folder)
    library, tags, model_index, metrics = info.value.problems
    assert "needs `library_name: keras-hub` (found 'keras')" in library
    assert "needs a non-empty `tags` list" in tags
    assert "no `model-index` block" in model_index
    for problem in (library, tags, model_index):
        assert "keras_ssl.hub.write_model_card(" in problem
    assert "metrics.json (the measured results the card reports)" in metrics
    assert f"copy {tmp_path / 'metrics.json'} in" in metrics


def test_check_catches_wrong_metrics_and_broken_weights(folder):
    _edit_json(os.path.join(folder, "metrics.json"), test_accuracy=0.3)
    with h5py.File(os.path.join(folder, "model.weights.h5"), "r+") as f:

        def poison(name, node):
            if isinstance(node, h5py.Dataset) and node.dtype.kind == "f":
                node[...] = np.nan

        f.visititems(poison)

    with pytest.raises(hub.PresetCheckError) as info:
        hub.check_preset_folder(folder)
    metric, backbone, classifier = info.value.problems
    assert metric.startswith(
        "the card reports test_accuracy = 0.3125, but metrics.json has "
        "test_accuracy = 0.3"
    )
    assert backbone.startswith("the Backbone gives NaN or infinite outputs")
    assert classifier.startswith("the ImageClassifier gives NaN")


def test_card_metric_agrees_to_the_precision_it_shows():
    # A card shows what training measured, rounded, maybe in percent.
    assert hub.preflight._agrees(0.3125, 0.312547)
    assert hub.preflight._agrees(31.25, 0.312547)
    assert not hub.preflight._agrees(0.3125, 0.31256)
    assert not hub.preflight._agrees(0.31, 0.316)


def test_card_with_display_names_and_percentages(folder):
    # As `keras_ssl.recipes` writes them: nested metrics.json, percentages
    # under display names on the card.
    _edit_json(
        os.path.join(folder, "metrics.json"),
        metrics={"accuracy": 0.91234, "knn": 0.8561},
    )
    hub.write_model_card(
        folder,
        REPO_ID,
        metrics=[
            {"type": "accuracy", "name": "Top-1 accuracy", "value": 91.23},
            {"type": "accuracy", "name": "k-NN top-1", "value": 85.61},
        ],
        dataset="cifar10",
    )
    assert len(hub.check_preset_folder(folder).metrics) == 2

    hub.write_model_card(
        folder,
        REPO_ID,
        metrics=[{"type": "accuracy", "name": "Top-1", "value": 92.0}],
        dataset="cifar10",
    )
    with pytest.raises(hub.PresetCheckError) as info:
        hub.check_preset_folder(folder)
    (problem,) = info.value.problems
    assert problem.startswith(
        "the card reports Top-1 = 92.0, but no number in metrics.json "
        "rounds to it"
    )
    assert "metrics.accuracy = 0.91234" in problem


def test_check_missing_folder():
    with pytest.raises(hub.PresetCheckError, match="the folder does not exist"):
        hub.check_preset_folder("no/such/folder")


@pytest.mark.multibackend
@pytest.mark.parametrize("use_lfs", [False, True], ids=["inline", "lfs"])
def test_publish_then_load_from_a_fresh_cache(
    preset, monkeypatch, tmp_path, use_lfs
):
    preset_dir, expected = preset
    with HubServer(use_lfs=use_lfs) as server:
        # With Xet available the client sends LFS files through Xet storage,
        # which the test Hub lacks; without, through the LFS batch API.
        point_client_at(
            monkeypatch,
            server.url,
            str(tmp_path / "publisher"),
            xet=not use_lfs,
        )
        commit = hub.publish_preset(preset_dir, f"hf://{REPO_ID}")

        assert commit.oid == server.repos[REPO_ID].refs["main"]
        assert commit.repo_url.repo_id == REPO_ID
        uploaded = server.files(REPO_ID)
        for name in os.listdir(preset_dir):
            with open(os.path.join(preset_dir, name), "rb") as f:
                assert uploaded[name] == f.read(), name
        weights_sha256 = hashlib.sha256(
            uploaded["model.weights.h5"]
        ).hexdigest()
        assert (("PUT", f"/lfs/{weights_sha256}") in server.requests) == use_lfs

        # Someone else, with an empty cache and no token.
        user_home = str(tmp_path / "user")
        point_client_at(monkeypatch, server.url, user_home, token=None)
        classifier = ResNetImageClassifier.from_preset(f"hf://{REPO_ID}")
        np.testing.assert_allclose(
            classifier.predict(IMAGES, verbose=0),
            expected,
            rtol=1e-5,
            atol=1e-6,
        )
        snapshot = os.path.join(
            user_home,
            "hub",
            "models--" + REPO_ID.replace("/", "--"),
            "snapshots",
            commit.oid,
        )
        assert set(os.listdir(snapshot)) == {
            ".gitattributes",
            *os.listdir(preset_dir),
        }
        # keras-hub resolves `hf://` by itself, from the same cache.
        restored = keras_hub.models.ImageClassifier.from_preset(
            f"hf://{REPO_ID}"
        )
        np.testing.assert_allclose(
            restored.predict(IMAGES, verbose=0), expected, rtol=1e-5, atol=1e-6
        )
    assert not server.unhandled


def test_hub_errors_become_clear_preset_errors(server):
    with pytest.raises(FileNotFoundError, match="does not exist, or it is"):
        hub.resolve_preset("hf://keras-ssl-test/absent")
    huggingface_hub.HfApi().create_repo("keras-ssl-test/empty")
    with pytest.raises(FileNotFoundError, match="revision 'v9' does not exist"):
        hub.resolve_preset("hf://keras-ssl-test/empty@v9")
    with pytest.raises(ValueError, match="it has no config.json"):
        hub.resolve_preset("hf://keras-ssl-test/empty")


def test_failing_folder_is_refused_before_any_request(folder, server):
    os.remove(os.path.join(folder, "model.weights.h5"))
    with pytest.raises(
        hub.PresetCheckError, match="model.weights.h5 is missing"
    ):
        hub.publish_preset(folder, f"hf://{REPO_ID}")
    assert server.requests == []


def test_unreachable_endpoint_names_it_and_the_fix(
    preset, monkeypatch, tmp_path
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # Nothing listens there once the socket is closed.
    point_client_at(monkeypatch, url, str(tmp_path / "hf_home"))
    with pytest.raises(ConnectionError) as info:
        hub.publish_preset(preset[0], f"hf://{REPO_ID}")
    message = str(info.value)
    assert (
        f"Could not reach the Hugging Face Hub at {url} to publish" in message
    )
    assert f"HF_ENDPOINT is set to '{url}'" in message
    assert "unset HF_ENDPOINT" in message


def test_offline_mode_refuses(preset, server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        RuntimeError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\)"
    ) as info:
        hub.publish_preset(preset[0], f"hf://{REPO_ID}")
    assert "Unset HF_HUB_OFFLINE" in str(info.value)
    assert server.requests == []


def test_no_token_refuses(preset, server, monkeypatch, tmp_path):
    point_client_at(
        monkeypatch, server.url, str(tmp_path / "no_token"), token=None
    )
    with pytest.raises(PermissionError, match="not logged in.*hf auth login"):
        hub.publish_preset(preset[0], f"hf://{REPO_ID}")
    assert server.requests == []


def test_rejected_token(preset, server, monkeypatch, tmp_path):
    point_client_at(
        monkeypatch, server.url, str(tmp_path / "bad"), token="hf_bad"
    )
    with pytest.raises(PermissionError, match="refused to let you write to"):
        hub.publish_preset(preset[0], f"hf://{REPO_ID}")
    assert server.repos == {}


@pytest.mark.parametrize(
    "uri, message",
    [
        ("kaggle://owner/model/keras/v1", "Expected an 'hf://owner/repo'"),
        ("hf://owner/repo@v1", "plain 'hf://owner/repo'"),
        ("hf://owner/repo/subfolder", "plain 'hf://owner/repo'"),
    ],
)
def test_publish_target_must_be_a_plain_repo(preset, server, uri, message):
    with pytest.raises(ValueError, match=message):
        hub.publish_preset(preset[0], uri)
    assert server.requests == []


def test_cli_publish(preset, server, capsys):
    target = "hf://keras-ssl-test/cli_upload"
    assert cli.main(["publish", preset[0], target, "--dry-run"]) == 0
    assert "pre-flight ok:" in capsys.readouterr().out
    assert server.requests == []

    assert cli.main(["publish", preset[0], target]) == 0
    assert "published" in capsys.readouterr().out
    assert "README.md" in server.files("keras-ssl-test/cli_upload")


def test_cli_publish_refuses_a_failing_folder(folder, server, capsys):
    os.remove(os.path.join(folder, "config.json"))
    assert cli.main(["publish", folder, f"hf://{REPO_ID}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("keras-ssl publish: error: Preset folder")
    assert "config.json is missing" in error
    assert server.requests == []


def _load_script():
    spec = importlib.util.spec_from_file_location("publish_presets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_publishes_every_weights_folder(
    preset, server, tmp_path, capsys
):
    script = _load_script()
    weights = tmp_path / "weights"
    shutil.copytree(preset[0], weights / "tiny_a")
    (weights / "tiny_b").mkdir()  # not a preset: the dry run must say so

    arguments = [
        "--all",
        "--owner",
        "keras-ssl-test",
        "--weights-dir",
        str(weights),
    ]
    assert script.main([*arguments, "--dry-run"]) == 1
    output = capsys.readouterr()
    assert "ok    hf://keras-ssl-test/tiny_a <- " in output.out
    assert "FAIL  hf://keras-ssl-test/tiny_b <- " in output.err
    assert "nothing was published" in output.err
    assert server.requests == []

    shutil.rmtree(weights / "tiny_b")
    assert script.main(arguments) == 0
    assert "published" in capsys.readouterr().out
    assert list(server.repos) == ["keras-ssl-test/tiny_a"]


def test_script_targets():
    script = _load_script()
    assert script.plan(["w/a", "w/b/"], owner="me") == [
        ("w/a", "hf://me/a"),
        ("w/b/", "hf://me/b"),
    ]
    assert script.plan(["w/a"], to=["hf://o/x"]) == [("w/a", "hf://o/x")]
    with pytest.raises(ValueError, match="one --to per folder"):
        script.plan(["w/a", "w/b"], to=["hf://o/x"])
    with pytest.raises(ValueError, match="or --owner OWNER"):
        script.plan(["w/a"])
