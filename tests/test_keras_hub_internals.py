"""The keras-hub internals keras_ssl uses still exist and behave as relied on.

If one of these fails after a keras-hub upgrade, the failure names the
internal; update `keras_ssl/hub/keras_hub_internals.py`.
"""

import json

import keras_hub
import pytest

from keras_ssl.hub import keras_hub_internals
from keras_ssl.models import ResNetImageClassifier
from keras_ssl.models import ViTImageClassifier


def test_preset_file_names():
    assert keras_hub_internals.CONFIG_FILE == "config.json"
    assert keras_hub_internals.TASK_CONFIG_FILE == "task.json"
    assert keras_hub_internals.PREPROCESSOR_CONFIG_FILE == "preprocessor.json"
    assert keras_hub_internals.METADATA_FILE == "metadata.json"
    assert keras_hub_internals.README_FILE == "README.md"
    assert keras_hub_internals.MODEL_WEIGHTS_FILE == "model.weights.h5"


def test_registry_and_registration():
    presets = keras_hub_internals.builtin_presets()
    assert isinstance(presets, dict) and "resnet_50_imagenet" in presets
    # keras_ssl's shipped presets were registered into keras-hub's registry.
    assert "resnet20_cifar10" in presets


def test_preset_file_helpers(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps({"class_name": "X"}))
    assert keras_hub_internals.check_file_exists(str(tmp_path), "task.json")
    assert not keras_hub_internals.check_file_exists(str(tmp_path), "absent.json")
    assert keras_hub_internals.load_json(str(tmp_path), "task.json") == {
        "class_name": "X"
    }


def test_list_subclasses_finds_our_classifiers():
    classes = keras_hub_internals.list_subclasses(keras_hub.models.ImageClassifier)
    assert ResNetImageClassifier in classes and ViTImageClassifier in classes


def test_a_moved_internal_is_named(monkeypatch):
    monkeypatch.delattr(keras_hub_internals.preset_utils, "register_presets")
    with pytest.raises(ImportError, match=r"preset_utils\.register_presets.*keras-hub 0\.32\.0"):
        keras_hub_internals.register_presets({}, object)
