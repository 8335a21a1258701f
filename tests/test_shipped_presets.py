"""Every preset shipped in weights/ loads by name, offline, on every backend."""

import json
import os

import huggingface_hub
import keras
import keras_hub
import numpy as np
import pytest

import keras_ssl
from keras_ssl.data import load_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(
    name
    for name in os.listdir(os.path.join(REPO, "weights"))
    if os.path.isdir(os.path.join(REPO, "weights", name))
)


def test_every_shipped_folder_is_registered_with_its_hub_handle():
    registered = {row["name"]: row for row in keras_ssl.models.list_presets()}
    assert SHIPPED, "weights/ holds no preset"
    for name in SHIPPED:
        assert name in registered, f"weights/{name} is not in a *_presets.py"
        assert registered[name]["local_path"] == os.path.join(REPO, "weights", name)
        assert registered[name]["handle"] == f"hf://keras-ssl/{name}"


@pytest.mark.multibackend
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_loads_by_name_offline(name, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    folder = os.path.join(REPO, "weights", name)
    with open(os.path.join(folder, "metrics.json")) as file:
        summary = json.load(file)
    images, labels = next(iter(load_dataset("sample", split="test", batch_size=300)))
    labels = keras.ops.convert_to_numpy(labels)
    if os.path.exists(os.path.join(folder, "task.json")):
        model = keras_hub.models.ImageClassifier.from_preset(name)
        logits = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
        accuracy = float(np.mean(np.argmax(logits, -1) == labels))
        # 300 of the 10,000 test images the card reports on: binomial
        # noise is about 1.7 points at 90 %, so 5 points is > 2.5 sigma.
        assert abs(accuracy - summary["metrics"]["preset_accuracy"]) < 0.05
    else:
        backbone = keras_hub.models.Backbone.from_preset(name)
        features = keras.ops.convert_to_numpy(backbone.predict(images[:8], verbose=0))
        assert np.all(np.isfinite(features))
