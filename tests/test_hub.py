"""Tests for keras_ssl.hub: preset registry, resolution and loading."""

import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys

import huggingface_hub
import keras
import keras_hub
import numpy as np
import pytest
from keras_hub.src.utils import preset_utils

import keras_ssl
from keras_ssl import hub
from keras_ssl.hub import registry as registry_module

REPO_ID = "keras-ssl-test/tiny"
MAIN_COMMIT = "a" * 40
V1_COMMIT = "b" * 40
INPUTS = np.linspace(-1.0, 1.0, 6, dtype="float32").reshape(2, 3)


@keras.saving.register_keras_serializable(package="keras_ssl_test")
class TinyBackbone(hub.PresetMixin, keras_hub.models.Backbone):
    """A one-layer backbone, enough to round-trip a preset."""

    def __init__(self, hidden_dim=4, **kwargs):
        inputs = keras.Input(shape=(3,))
        outputs = keras.layers.Dense(hidden_dim, name="dense")(inputs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.hidden_dim = hidden_dim

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


def _save_preset(path, seed):
    keras.utils.set_random_seed(seed)
    backbone = TinyBackbone()
    backbone.save_to_preset(str(path))
    return backbone.predict(INPUTS, verbose=0)


@pytest.fixture(scope="module")
def saved_presets(tmp_path_factory):
    """Two presets with different weights: {"a": (dir, outputs), "b": ...}."""
    root = tmp_path_factory.mktemp("presets")
    return {
        key: (str(root / key), _save_preset(root / key, seed))
        for key, seed in (("a", 1), ("b", 2))
    }


def _add_snapshot(repo_cache, commit, files):
    """Store `files` ({path_in_repo: source}) as huggingface_hub does."""
    for path_in_repo, source in files.items():
        with open(source, "rb") as f:
            content = f.read()
        blob_name = hashlib.sha256(content).hexdigest()
        blob = os.path.join(repo_cache, "blobs", blob_name)
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(content)
        link = os.path.join(repo_cache, "snapshots", commit, path_in_repo)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)


def _preset_files(preset_dir, prefix=""):
    return {
        prefix + f: os.path.join(preset_dir, f) for f in os.listdir(preset_dir)
    }


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, saved_presets):
    """A Hugging Face cache holding REPO_ID.

    `main` is preset "a"; tag `v1` is preset "b" at the root and preset "a"
    in the subfolder `tiny_a/`.
    """
    cache = str(tmp_path_factory.mktemp("hf_home") / "hub")
    repo_cache = os.path.join(cache, "models--" + REPO_ID.replace("/", "--"))
    dir_a, dir_b = saved_presets["a"][0], saved_presets["b"][0]
    _add_snapshot(repo_cache, MAIN_COMMIT, _preset_files(dir_a))
    _add_snapshot(
        repo_cache,
        V1_COMMIT,
        {**_preset_files(dir_b), **_preset_files(dir_a, prefix="tiny_a/")},
    )
    os.makedirs(os.path.join(repo_cache, "refs"))
    for ref, commit in (("main", MAIN_COMMIT), ("v1", V1_COMMIT)):
        with open(os.path.join(repo_cache, "refs", ref), "w") as f:
            f.write(commit)
    return cache


def _load_each(handles):
    """Subprocess entry point: load each handle, report outputs or errors."""
    results = {}
    for handle in handles:
        try:
            backbone = TinyBackbone.from_preset(handle)
            results[handle] = backbone.predict(INPUTS, verbose=0).tolist()
        except Exception as e:
            results[handle] = f"{type(e).__name__}: {e}"
    print(json.dumps(results))


@pytest.fixture(scope="module")
def offline_loads(hf_cache):
    """Load handles in a fresh process with HF_HUB_OFFLINE=1.

    huggingface_hub reads its environment variables at import time, so a
    subprocess is the faithful way to exercise HF_HUB_CACHE and offline mode.
    """
    handles = [
        f"hf://{REPO_ID}",
        f"hf://{REPO_ID}@v1",
        f"hf://{REPO_ID}@{MAIN_COMMIT}",
        f"hf://{REPO_ID}@v1/tiny_a",
        "hf://keras-ssl-test/absent",
    ]
    # The child imports this module (for TinyBackbone) and keras_ssl from
    # wherever this process found them.
    python_path = [
        os.path.dirname(os.path.abspath(__file__)),
        os.path.dirname(os.path.dirname(os.path.abspath(keras_ssl.__file__))),
        os.environ.get("PYTHONPATH", ""),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(python_path),
        "HF_HOME": os.path.dirname(hf_cache),
        "HF_HUB_CACHE": hf_cache,
        "HF_HUB_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    code = "import sys, test_hub; test_hub._load_each(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", code, *handles],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hf_handle_loads_from_offline_cache(offline_loads, saved_presets):
    np.testing.assert_allclose(
        offline_loads[f"hf://{REPO_ID}"], saved_presets["a"][1], rtol=1e-6
    )


def test_hf_revision_tag_and_commit(offline_loads, saved_presets):
    np.testing.assert_allclose(
        offline_loads[f"hf://{REPO_ID}@v1"], saved_presets["b"][1], rtol=1e-6
    )
    np.testing.assert_allclose(
        offline_loads[f"hf://{REPO_ID}@{MAIN_COMMIT}"],
        saved_presets["a"][1],
        rtol=1e-6,
    )


def test_hf_subfolder(offline_loads, saved_presets):
    np.testing.assert_allclose(
        offline_loads[f"hf://{REPO_ID}@v1/tiny_a"],
        saved_presets["a"][1],
        rtol=1e-6,
    )


def test_hf_not_cached_offline_error(offline_loads, hf_cache):
    message = offline_loads["hf://keras-ssl-test/absent"]
    assert message.startswith("FileNotFoundError")
    assert "not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert f"Looked in: {hf_cache}/models--keras-ssl-test--absent" in message
    assert "hf download keras-ssl-test/absent" in message
    assert "HF_HOME" in message


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """Isolate the keras_ssl and keras-hub registries and the weights dir."""
    monkeypatch.setattr(registry_module, "_PRESETS", {})
    monkeypatch.setattr(
        preset_utils, "BUILTIN_PRESETS", dict(preset_utils.BUILTIN_PRESETS)
    )
    monkeypatch.setattr(
        preset_utils,
        "BUILTIN_PRESETS_FOR_BACKBONE",
        collections.defaultdict(
            dict, preset_utils.BUILTIN_PRESETS_FOR_BACKBONE
        ),
    )
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv(registry_module.WEIGHTS_DIR_ENV, str(weights))
    return str(weights)


def _tiny_presets(*names):
    return {
        name: {
            "metadata": {
                "description": f"Tiny test preset {name}.",
                "params": 16,
                "path": "tiny",
            },
            "kaggle_handle": f"hf://keras-ssl-test/{name}",
        }
        for name in names
    }


def test_registered_name_loads_from_weights_dir(registry, saved_presets, caplog):
    dir_a, outputs_a = saved_presets["a"]
    shutil.copytree(dir_a, os.path.join(registry, "tiny_cifar10"))
    hub.register_presets(_tiny_presets("tiny_cifar10"), TinyBackbone)
    with caplog.at_level("INFO", logger="keras_ssl"):
        hub.resolve_preset("tiny_cifar10")
    local = os.path.join(registry, "tiny_cifar10")
    assert f"Preset 'tiny_cifar10': the local copy in {local}" in caplog.text

    assert "tiny_cifar10" in TinyBackbone.presets
    for cls in (TinyBackbone, keras_hub.models.Backbone):
        backbone = cls.from_preset("tiny_cifar10")
        np.testing.assert_allclose(
            backbone.predict(INPUTS, verbose=0), outputs_a, rtol=1e-6
        )


def test_registered_name_falls_back_to_hf_handle(
    registry, monkeypatch, tmp_path, caplog
):
    # huggingface_hub read its environment at import; patch what it read.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache")
    )
    hub.register_presets(_tiny_presets("tiny_cifar10"), TinyBackbone)
    with pytest.raises(FileNotFoundError) as info, caplog.at_level(
        "INFO", logger="keras_ssl"
    ):
        hub.resolve_preset("tiny_cifar10")
    assert "no local copy in" in caplog.text
    assert "loading hf://keras-ssl-test/tiny_cifar10" in caplog.text
    message = str(info.value)
    assert "'tiny_cifar10' (hf://keras-ssl-test/tiny_cifar10;" in message
    assert os.path.join(registry, "tiny_cifar10") in message
    assert "not in the local Hugging Face cache" in message


def test_unknown_name_suggests_close_names(registry):
    presets = _tiny_presets("tiny_cifar10", "tiny_stl10")
    hub.register_presets(presets, TinyBackbone)
    with pytest.raises(ValueError, match="Unknown preset") as info:
        TinyBackbone.from_preset("tiny_cifar1")
    message = str(info.value)
    # The closest name comes first; shipped presets may follow it.
    assert "'tiny_cifar1'. Did you mean: tiny_cifar10" in message
    assert "tiny_stl10" not in message
    assert "keras_ssl.models.list_presets()" in message


def test_registered_handle_must_be_plain_repo(registry):
    presets = _tiny_presets("tiny_cifar10")
    presets["tiny_cifar10"]["kaggle_handle"] = "hf://keras-ssl-test/tiny@v1"
    with pytest.raises(ValueError, match="must be plain 'hf://owner/repo'"):
        hub.register_presets(presets, TinyBackbone)


def test_keras_hub_preset_name_cannot_be_shadowed(registry):
    name = next(iter(preset_utils.BUILTIN_PRESETS))
    with pytest.raises(ValueError, match="already a keras-hub preset"):
        hub.register_presets(_tiny_presets(name), TinyBackbone)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not a keras-hub preset folder"):
        hub.resolve_preset(str(tmp_path))


def test_malformed_hf_handle():
    with pytest.raises(ValueError, match="Invalid Hugging Face preset handle"):
        hub.resolve_preset("hf://just-a-name")


def test_corrupt_weights_error(saved_presets, tmp_path):
    preset_dir = str(tmp_path / "corrupt")
    shutil.copytree(saved_presets["a"][0], preset_dir)
    weights_file = os.path.join(preset_dir, "model.weights.h5")
    with open(weights_file, "rb") as f:
        content = f.read()
    with open(weights_file, "wb") as f:
        f.write(content[: len(content) // 2])

    with pytest.raises(OSError) as info:
        TinyBackbone.from_preset(preset_dir)
    message = str(info.value)
    assert weights_file in message
    assert "truncated or corrupt" in message
    assert "download the preset again" in message


def test_list_and_print_presets(registry, saved_presets, capsys):
    local_dir = os.path.join(registry, "tiny_cifar10")
    shutil.copytree(saved_presets["a"][0], local_dir)
    presets = _tiny_presets("tiny_cifar10", "tiny_stl10")
    hub.register_presets(presets, TinyBackbone)

    rows = {row["name"]: row for row in hub.list_presets("tiny")}
    assert rows["tiny_cifar10"] == {
        "name": "tiny_cifar10",
        "family": "tiny",
        "class_name": "TinyBackbone",
        "description": "Tiny test preset tiny_cifar10.",
        "params": 16,
        "handle": "hf://keras-ssl-test/tiny_cifar10",
        "local_path": local_dir,
    }
    assert rows["tiny_stl10"]["local_path"] is None
    with pytest.raises(ValueError, match="Families with presets: tiny"):
        hub.list_presets("crate")

    hub.print_presets()
    lines = capsys.readouterr().out.splitlines()
    header = ["Name", "Family", "Params", "Local", "Description"]
    assert lines[0].split() == header
    assert lines[1].split()[:4] == ["tiny_cifar10", "tiny", "16", "yes"]
    assert lines[2].split()[:4] == ["tiny_stl10", "tiny", "16", "no"]


def test_write_model_card(saved_presets, tmp_path):
    preset_dir = str(tmp_path / "card")
    shutil.copytree(saved_presets["a"][0], preset_dir)
    path = hub.write_model_card(preset_dir, REPO_ID, "A tiny model.")
    with open(path) as f:
        card = f.read()
    assert card.startswith("---\nlibrary_name: keras-hub\n")
    assert "A tiny model." in card
    assert "`TinyBackbone`" in card
    assert f'"hf://{REPO_ID}"' in card
    assert "* **hidden_dim:** 4" in card
