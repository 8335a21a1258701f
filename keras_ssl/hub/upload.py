"""Upload presets to the Hugging Face Hub with a model card."""

import json
import os

import huggingface_hub
from keras_hub.src.utils import preset_utils

from keras_ssl.hub.presets import HF_PREFIX
from keras_ssl.hub.presets import _check_preset_dir
from keras_ssl.hub.presets import _parse_hf_handle


def write_model_card(preset_dir, repo_id, description=""):
    """Write a `README.md` model card into a preset folder.

    The card carries the Hub metadata (library, tags), the model class and
    its config, the parameter count and the code to load the preset.

    Args:
        preset_dir: a folder written by `save_to_preset`.
        repo_id: the `"owner/repo"` the preset will be loaded from.
        description: optional free text placed under the title.

    Returns:
        The path of the written card.

    Example:
    ```python
    write_model_card("weights/crate_tiny_cifar10", "keras-ssl/crate_tiny")
    ```
    """
    with open(os.path.join(preset_dir, preset_utils.CONFIG_FILE)) as f:
        config = json.load(f)
    metadata_path = os.path.join(preset_dir, preset_utils.METADATA_FILE)
    metadata = {}
    if os.path.exists(metadata_path):
        with open(metadata_path) as f:
            metadata = json.load(f)
    class_name = config["class_name"]
    lines = [
        "---",
        "library_name: keras-hub",
        "tags:",
        "- keras-ssl",
        "- self-supervised-learning",
        "---",
        f"# {repo_id.split('/')[-1]}",
        "",
    ]
    if description:
        lines += [description, ""]
    lines += [
        f"A `{class_name}` preset for keras_ssl, usable with the "
        "TensorFlow, JAX and PyTorch backends of Keras 3.",
        "",
        "```python",
        "import keras_hub",
        "import keras_ssl  # registers the keras_ssl model classes",
        "",
        "model = keras_hub.models.Backbone.from_preset(",
        f'    "hf://{repo_id}"',
        ")",
        "```",
        "",
    ]
    if "parameter_count" in metadata:
        lines += [f"Parameters: {metadata['parameter_count']:,}", ""]
    lines.append("Model config:")
    lines += [f"* **{k}:** {v}" for k, v in config["config"].items()]
    path = os.path.join(preset_dir, preset_utils.README_FILE)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def upload_preset(preset_dir, uri, description=""):
    """Upload a preset folder to a Hugging Face model repository.

    Unlike `keras_hub.upload_preset`, which writes a generic card and deletes
    it again after the upload, this writes a keras_ssl model card into
    `preset_dir` (where it stays, ready to edit) when neither the folder nor
    the remote repository has one.

    Args:
        preset_dir: a folder written by `save_to_preset`.
        uri: the target, `"hf://owner/repo"`. The repository is created if
            needed; log in first with `hf auth login` or set HF_TOKEN.
        description: optional free text for a newly written model card.

    Returns:
        The URL of the repository.

    Example:
    ```python
    backbone.save_to_preset("crate_tiny_cifar10")
    keras_ssl.hub.upload_preset(
        "crate_tiny_cifar10", "hf://keras-ssl/crate_tiny_cifar10"
    )
    ```
    """
    _check_preset_dir(preset_dir)
    if not uri.startswith(HF_PREFIX):
        raise ValueError(
            f"Expected an 'hf://owner/repo' target. Received: uri='{uri}'. "
            "For Kaggle, use `keras_hub.upload_preset`."
        )
    hf_uri = _parse_hf_handle(uri)
    if hf_uri.revision or hf_uri.path_in_repo:
        raise ValueError(
            "Upload targets are plain 'hf://owner/repo'. Received: "
            f"uri='{uri}'."
        )
    repo_url = huggingface_hub.create_repo(hf_uri.id, exist_ok=True)
    has_card = os.path.exists(
        os.path.join(preset_dir, preset_utils.README_FILE)
    ) or huggingface_hub.file_exists(repo_url.repo_id, preset_utils.README_FILE)
    if not has_card:
        write_model_card(preset_dir, repo_url.repo_id, description)
    huggingface_hub.upload_folder(
        repo_id=repo_url.repo_id, folder_path=preset_dir
    )
    return str(repo_url)
