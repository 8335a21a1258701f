"""`resolve_preset`: a name, folder, file or `hf://` handle to a local preset."""

import difflib
import logging
import os

from keras_ssl.hub import keras_hub_internals
from keras_ssl.hub import registry
from keras_ssl.hub.hf_handles import HF_PREFIX
from keras_ssl.hub.hf_handles import download_hf_preset
from keras_ssl.utils.checkpoint_files import is_checkpoint_file

# Says at INFO level where each named preset loads from
# (`logging.basicConfig(level=logging.INFO)` shows it).
logger = logging.getLogger("keras_ssl.hub")


def resolve_preset(preset):
    """Turn a preset identifier into something keras-hub can load.

    Hugging Face handles are downloaded (or found in the local Hugging Face
    cache when offline) with `huggingface_hub.snapshot_download`, which
    honours `HF_HUB_OFFLINE`, `HF_HOME` and `HF_HUB_CACHE`.

    Args:
        preset: one of
            - a registered preset name like `"crate_tiny_cifar10"`; it loads
              from `<weights_dir>/<name>/` when that folder exists, otherwise
              from its Hugging Face handle;
            - a local preset folder, or a local weights file
              (`.safetensors`, `.pth`, ...) to convert;
            - `"hf://owner/repo"`, optionally with a revision (branch, tag or
              commit) `"hf://owner/repo@v1.0"` and a subfolder
              `"hf://owner/repo@main/crate_tiny"` or a weights file
              `"hf://owner/repo/torch/model.pth"`;
            - any other keras-hub identifier (a keras-hub preset name or a
              `kaggle://` handle), returned unchanged.

    Returns:
        A local preset folder or weights file, or the unchanged keras-hub
        identifier.

    Example:
    ```python
    path = keras_ssl.hub.resolve_preset("hf://keras-ssl/crate_tiny_cifar10")
    backbone = keras_hub.models.Backbone.from_preset(path)
    ```
    """
    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(
            "A preset must be a string (a name, a folder or an 'hf://' "
            f"handle). Received: preset={preset!r}"
        )
    preset = os.fspath(preset)
    entry = registry.registered_preset(preset)
    if entry is not None:
        local_dir = registry.local_preset_dir(preset)
        if local_dir:
            logger.info("Preset '%s': the local copy in %s", preset, local_dir)
            return _check_preset_dir(local_dir, source=f"Preset '{preset}'")
        handle = entry["kaggle_handle"]
        local_dir = os.path.join(registry.weights_dir(), preset)
        logger.info(
            "Preset '%s': no local copy in %s, loading %s", preset, local_dir, handle
        )
        if handle.startswith(HF_PREFIX):
            source = f"Preset '{preset}' ({handle}; no folder {local_dir})"
            return _resolve_hf(handle, source=source)
        return handle
    if preset.startswith(HF_PREFIX):
        return _resolve_hf(preset, source=f"Preset '{preset}'")
    if "://" in preset:
        # kaggle://, gs://, modelscope://: keras-hub resolves these itself.
        return preset
    if os.path.isdir(preset):
        return _check_preset_dir(preset)
    if os.path.exists(preset):
        if is_checkpoint_file(preset):
            return preset
        raise ValueError(
            f"'{preset}' is a file, but a preset is a folder holding "
            "config.json and the weights. Pass the folder instead."
        )
    if preset in keras_hub_internals.builtin_presets():
        return preset
    raise _unknown_preset_error(preset)


def _unknown_preset_error(preset):
    if os.sep in preset or preset.startswith("."):
        return FileNotFoundError(
            f"Preset folder '{preset}' does not exist (absolute path: "
            f"{os.path.abspath(preset)})."
        )
    # Ours are registered with keras-hub too; dict.fromkeys dedupes in order.
    candidates = dict.fromkeys([*registry.registered_names(), *keras_hub_internals.builtin_presets()])
    close = difflib.get_close_matches(preset, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown preset '{preset}'.{hint} Run "
        "`keras_ssl.models.list_presets()` to see all named presets. A "
        "preset can also be a local preset folder or a Hugging Face handle "
        "'hf://owner/repo[@revision]'."
    )


def _check_preset_dir(path, source=None):
    if not os.path.isfile(os.path.join(path, keras_hub_internals.CONFIG_FILE)):
        where = f"'{path}'"
        if source:
            where = f"{source} resolves to '{path}', which"
        raise ValueError(
            f"{where} is not a keras-hub preset folder: it has no "
            "config.json. Preset folders are written by "
            "`model.save_to_preset(folder)`."
        )
    return path


def _resolve_hf(handle, source):
    path = download_hf_preset(handle, source)
    if os.path.isfile(path):
        return path  # a weights file to convert
    return _check_preset_dir(path, source=source)
