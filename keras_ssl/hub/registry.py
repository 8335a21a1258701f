"""The registry of named presets, and listing what it holds.

Each model family declares its presets in keras-hub's format and registers
them here and with keras-hub, so that names appear in `SomeBackbone.presets`
and load through keras-hub's own classes too. A named preset loads from
`<weights_dir>/<name>/` when that folder exists, else from its handle.
"""

import os

import huggingface_hub

from keras_ssl.hub import keras_hub_internals
from keras_ssl.hub.hf_handles import HF_PREFIX
from keras_ssl.hub.hf_handles import parse_hf_handle

WEIGHTS_DIR_ENV = "KERAS_SSL_WEIGHTS_DIR"

# Name -> the family's preset entry plus the `backbone_cls` it was registered
# for. Entries keep their declared `kaggle_handle`; keras-hub gets a copy that
# may point at a local folder instead (see `register_presets`).
_PRESETS = {}


def registered_preset(name):
    """The registry entry of a named preset (with its `backbone_cls`), or None."""
    return _PRESETS.get(name)


def registered_names():
    """The names of all registered presets, in registration order."""
    return list(_PRESETS)


def weights_dir():
    """Return the folder that holds locally available named presets.

    Named presets load from `<weights_dir>/<name>/` when that folder exists,
    before falling back to their Hugging Face handle. The default is the
    `weights/` folder of a source checkout (next to the `keras_ssl`
    package); set the `KERAS_SSL_WEIGHTS_DIR` environment variable to use
    another folder.

    Returns:
        The absolute path of the weights folder (it may not exist).

    Example:
    ```python
    backbone.save_to_preset(
        os.path.join(keras_ssl.hub.weights_dir(), "crate_tiny_cifar10")
    )
    ```
    """
    path = os.environ.get(WEIGHTS_DIR_ENV)
    if not path:
        package_dir = os.path.dirname(os.path.dirname(__file__))
        path = os.path.join(os.path.dirname(package_dir), "weights")
    return os.path.abspath(os.path.expanduser(path))


def local_preset_dir(name):
    path = os.path.join(weights_dir(), name)
    return path if os.path.isdir(path) else None


def register_presets(presets, backbone_cls):
    """Register a family's named presets with keras_ssl and keras-hub.

    `presets` uses keras-hub's format, so a family's `<family>_presets.py`
    looks exactly like one in keras-hub. The `kaggle_handle` of each entry
    must be a handle keras-hub loads by itself (`hf://owner/repo` or a
    Kaggle handle), because `keras_hub.models.ImageClassifier.from_preset`
    and friends bypass keras_ssl. When `<weights_dir>/<name>/` exists at
    registration time, keras-hub is pointed at that folder instead.

    Args:
        presets: dict mapping preset names to
            `{"metadata": {"description": ..., "params": ..., "path": ...},
            "kaggle_handle": ...}`. `metadata["path"]` is the family name.
        backbone_cls: the `keras_hub.models.Backbone` subclass the presets
            are for; names then appear in `backbone_cls.presets`.

    Example:
    ```python
    backbone_presets = {
        "crate_tiny_cifar10": {
            "metadata": {
                "description": "CRATE-T trained on CIFAR-10.",
                "params": 5_400_000,
                "path": "crate",
            },
            "kaggle_handle": "hf://keras-ssl/crate_tiny_cifar10",
        },
    }
    register_presets(backbone_presets, CRATEBackbone)
    ```
    """
    # Validate everything first so a bad entry registers nothing.
    for name, preset in presets.items():
        _check_registry_handle(name, preset["kaggle_handle"])
        if name in keras_hub_internals.builtin_presets() and name not in _PRESETS:
            raise ValueError(
                f"Preset name '{name}' is already a keras-hub preset. Choose "
                "another name so that both libraries keep loading their own "
                "weights."
            )
    keras_hub_presets = {}
    for name, preset in presets.items():
        _PRESETS[name] = {**preset, "backbone_cls": backbone_cls}
        local_dir = local_preset_dir(name)
        keras_hub_presets[name] = {
            **preset,
            "kaggle_handle": local_dir or preset["kaggle_handle"],
        }
    keras_hub_internals.register_presets(keras_hub_presets, backbone_cls)


def _check_registry_handle(name, handle):
    if not handle.startswith(HF_PREFIX):
        return
    uri = parse_hf_handle(handle)
    if uri.revision or uri.path_in_repo:
        raise ValueError(
            f"Preset '{name}' has handle '{handle}', but registered handles "
            "must be plain 'hf://owner/repo' so that keras-hub's own "
            "`from_preset` can load them too. Put the preset at the root of "
            "its own repository."
        )


def list_presets(family=None):
    """List the registered named presets.

    Args:
        family: optional family name (the preset's `metadata["path"]`, e.g.
            `"crate"`) to list only that family.

    Returns:
        A list of dicts, one per preset, with keys `name`, `family`,
        `class_name`, `description`, `params`, `handle` and `local_path`:
        the folder it would load from without network access (the weights
        folder or the Hugging Face cache), or `None`.

    Example:
    ```python
    for preset in keras_ssl.hub.list_presets("crate"):
        print(preset["name"], preset["local_path"])
    ```
    """
    rows = []
    for name, preset in _PRESETS.items():
        metadata = preset.get("metadata", {})
        row_family = metadata.get("path", preset["backbone_cls"].__name__)
        if family is not None and row_family != family:
            continue
        rows.append(
            {
                "name": name,
                "family": row_family,
                "class_name": preset["backbone_cls"].__name__,
                "description": metadata.get("description", ""),
                "params": metadata.get("params"),
                "handle": preset["kaggle_handle"],
                "local_path": _available_locally(name, preset["kaggle_handle"]),
            }
        )
    if family is not None and not rows:
        families = sorted({r["family"] for r in list_presets()})
        raise ValueError(
            f"No presets for family '{family}'. Families with presets: "
            f"{', '.join(families) or 'none'}."
        )
    return rows


def _available_locally(name, handle):
    local_dir = local_preset_dir(name)
    if local_dir:
        return local_dir
    if not handle.startswith(HF_PREFIX):
        return None
    config_path = huggingface_hub.try_to_load_from_cache(
        parse_hf_handle(handle).id, keras_hub_internals.CONFIG_FILE
    )
    if isinstance(config_path, str):
        return os.path.dirname(config_path)
    return None


def print_presets(family=None):
    """Print the registered named presets as a table.

    Args:
        family: optional family name to print only that family.

    Example:
    ```python
    keras_ssl.hub.print_presets()
    ```
    """
    rows = list_presets(family)
    header = ("Name", "Family", "Params", "Local", "Description")
    table = [header] + [
        (
            row["name"],
            row["family"],
            _format_params(row["params"]),
            "yes" if row["local_path"] else "no",
            row["description"],
        )
        for row in rows
    ]
    # The description is last and left unpadded so long ones do not widen
    # every line.
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)]
        print("  ".join(cells + [line[4]]).rstrip())


def _format_params(params):
    if params is None:
        return "-"
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= divisor:
            return f"{params / divisor:.1f}{suffix}"
    return str(params)
