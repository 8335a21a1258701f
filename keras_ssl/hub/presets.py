"""Preset registry and handle resolution.

keras_ssl presets are keras-hub presets: folders written by `save_to_preset`
(a `config.json`, a `metadata.json` and `model.weights.h5`). This module adds
three things on top of keras-hub:

1. A registry of named presets, one declarative dict per model family, that
   is also registered with keras-hub so that names appear in
   `SomeBackbone.presets` and load through keras-hub's own classes.
2. `resolve_preset`, which turns a name, a local folder or an
   `hf://owner/repo[@revision][/subfolder]` handle into a local folder, with
   errors that say what went wrong and how to fix it.
3. `PresetMixin`, the first base of every keras_ssl backbone and task, whose
   `from_preset` resolves before handing over to keras-hub, converting
   timm, transformers and keras-hub models and plain weights files on the
   fly (`convert_to_preset`).
"""

import difflib
import json
import logging
import os
import shutil
import tempfile

import huggingface_hub
from huggingface_hub import errors as hf_errors

from keras_ssl.hub import keras_hub_internals
from keras_ssl.utils.checkpoint_files import is_checkpoint_file

# Says at INFO level where each named preset loads from
# (`logging.basicConfig(level=logging.INFO)` shows it).
logger = logging.getLogger("keras_ssl.hub")
WEIGHTS_DIR_ENV = "KERAS_SSL_WEIGHTS_DIR"
HF_PREFIX = "hf://"

# Name -> the family's preset entry plus the `backbone_cls` it was registered
# for. Entries keep their declared `kaggle_handle`; keras-hub gets a copy that
# may point at a local folder instead (see `register_presets`).
_PRESETS = {}


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


def _local_preset_dir(name):
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
        local_dir = _local_preset_dir(name)
        keras_hub_presets[name] = {
            **preset,
            "kaggle_handle": local_dir or preset["kaggle_handle"],
        }
    keras_hub_internals.register_presets(keras_hub_presets, backbone_cls)


def _check_registry_handle(name, handle):
    if not handle.startswith(HF_PREFIX):
        return
    uri = _parse_hf_handle(handle)
    if uri.revision or uri.path_in_repo:
        raise ValueError(
            f"Preset '{name}' has handle '{handle}', but registered handles "
            "must be plain 'hf://owner/repo' so that keras-hub's own "
            "`from_preset` can load them too. Put the preset at the root of "
            "its own repository."
        )


def _parse_hf_handle(handle):
    try:
        uri = huggingface_hub.parse_hf_uri(handle)
    except hf_errors.HfUriError as e:
        raise ValueError(
            f"Invalid Hugging Face preset handle '{handle}': {e.msg} Expected "
            "'hf://owner/repo', 'hf://owner/repo@revision' or "
            "'hf://owner/repo@revision/subfolder'."
        ) from e
    if uri.type != "model":
        raise ValueError(
            f"Preset handle '{handle}' points at a {uri.type} repository; "
            "presets live in model repositories ('hf://owner/repo')."
        )
    return uri


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
    if preset in _PRESETS:
        local_dir = _local_preset_dir(preset)
        if local_dir:
            logger.info("Preset '%s': the local copy in %s", preset, local_dir)
            return _check_preset_dir(local_dir, source=f"Preset '{preset}'")
        handle = _PRESETS[preset]["kaggle_handle"]
        local_dir = os.path.join(weights_dir(), preset)
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
    candidates = dict.fromkeys([*_PRESETS, *keras_hub_internals.builtin_presets()])
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
    uri = _parse_hf_handle(handle)
    subfolder = uri.path_in_repo
    try:
        if subfolder and is_checkpoint_file(subfolder):
            # A plain weights file inside a repository: fetch only it.
            return huggingface_hub.hf_hub_download(
                uri.id, subfolder, revision=uri.revision
            )
        if subfolder:
            patterns = f"{subfolder}/*"
        else:
            patterns = _checkpoint_patterns(uri)
        path = huggingface_hub.snapshot_download(
            uri.id, revision=uri.revision, allow_patterns=patterns
        )
        if patterns == SAFETENSORS_PATTERNS and not _has_safetensors(path):
            path = huggingface_hub.snapshot_download(
                uri.id, revision=uri.revision, allow_patterns=PYTORCH_PATTERNS
            )
    except hf_errors.GatedRepoError as e:
        raise PermissionError(
            f"{source}: Hugging Face repository '{uri.id}' is gated. Accept "
            f"its terms at https://huggingface.co/{uri.id}, then log in "
            "with `hf auth login` or set HF_TOKEN."
        ) from e
    except hf_errors.RepositoryNotFoundError as e:
        raise FileNotFoundError(
            f"{source}: Hugging Face repository '{uri.id}' does not exist, "
            "or it is private and you are not logged in. Check the handle, "
            "or log in with `hf auth login` (or set HF_TOKEN)."
        ) from e
    except hf_errors.RevisionNotFoundError as e:
        raise FileNotFoundError(
            f"{source}: revision '{uri.revision}' does not exist in Hugging "
            f"Face repository '{uri.id}'. Use a branch, tag or commit listed "
            f"at https://huggingface.co/{uri.id}/tree/main."
        ) from e
    except hf_errors.IncompleteSnapshotError as e:
        raise FileNotFoundError(
            f"{source}: the local Hugging Face cache holds only part of "
            f"'{uri.id}' ({e.snapshot_path}) and the Hub cannot be reached. "
            f"Complete it with `{_download_command(uri)}` while online."
        ) from e
    except hf_errors.LocalEntryNotFoundError as e:
        raise FileNotFoundError(_not_cached_message(uri, source, e)) from e
    # After its subclass LocalEntryNotFoundError (offline, not cached).
    except hf_errors.EntryNotFoundError as e:
        raise FileNotFoundError(
            f"{source}: Hugging Face repository '{uri.id}' has no file "
            f"'{subfolder}'. Check the path at "
            f"https://huggingface.co/{uri.id}/tree/{uri.revision or 'main'}."
        ) from e
    if subfolder:
        path = os.path.join(path, subfolder)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"{source}: Hugging Face repository '{uri.id}' has no "
                f"folder '{subfolder}'."
            )
    return _check_preset_dir(path, source=source)


# timm and transformers repositories hold the same weights in several
# formats; fetch the configs and safetensors, else the PyTorch file.
SAFETENSORS_PATTERNS = ("*.json", "model.safetensors")
PYTORCH_PATTERNS = ("*.json", "pytorch_model.bin")


def _checkpoint_patterns(uri):
    """Download patterns for a repository, from its config.json."""
    try:
        config_path = huggingface_hub.hf_hub_download(
            uri.id, keras_hub_internals.CONFIG_FILE, revision=uri.revision
        )
    except hf_errors.LocalEntryNotFoundError:
        raise
    except hf_errors.EntryNotFoundError:
        return None  # `_check_preset_dir` explains what is missing
    with open(config_path) as f:
        config = json.load(f)
    if "registered_name" in config:
        return None  # a Keras preset: take every file
    return SAFETENSORS_PATTERNS


def _has_safetensors(path):
    return os.path.isfile(os.path.join(path, "model.safetensors"))


def _download_command(uri):
    revision = f" --revision {uri.revision}" if uri.revision else ""
    path = uri.path_in_repo
    filename = f" {path}" if path and is_checkpoint_file(path) else ""
    return f"hf download {uri.id}{filename}{revision}"


def _not_cached_message(uri, source, error):
    cache_dir = huggingface_hub.constants.HF_HUB_CACHE
    repo_folder = "models--" + uri.id.replace("/", "--")
    revision = uri.revision or "main"
    if huggingface_hub.constants.is_offline_mode():
        reason = "offline mode is on (HF_HUB_OFFLINE=1)"
    else:
        reason = f"the Hub could not be reached ({error.__cause__ or error})"
    return (
        f"{source} is not in the local Hugging Face cache (revision "
        f"'{revision}'), and {reason}. Looked in: "
        f"{os.path.join(cache_dir, repo_folder)}\n"
        "To get it, either:\n"
        f"  - run `{_download_command(uri)}` once with internet access "
        "(with HF_HUB_OFFLINE unset), or\n"
        "  - run that command on a machine with internet access and copy "
        f"the {repo_folder} folder of its cache (~/.cache/huggingface/hub "
        f"by default) into {cache_dir}, or\n"
        "  - point HF_HOME (or HF_HUB_CACHE) at a cache that has it."
    )


# `from_preset` keyword arguments that only steer the conversion.
CONVERSION_ONLY_KWARGS = ("source", "architecture")
# Keyword arguments the conversion needs and the model config takes too.
CONVERSION_SHARED_KWARGS = ("num_heads", "image_shape")


def _is_keras_hub_name(preset):
    return preset in keras_hub_internals.builtin_presets() and preset not in _PRESETS


# The converters live above this module (they build models, whose classes
# import `PresetMixin` from here), so they register themselves instead of
# being imported: the dependency runs one way.
_checkpoint_converter = None


def register_checkpoint_converter(converter):
    """Sets the function `convert_to_preset` turns checkpoints into presets with.

    Args:
        converter: called as `converter(checkpoint, output_dir=..., **kwargs)`
            with the keyword arguments of `convert_to_preset`; writes a
            keras_ssl preset folder into `output_dir`.
    """
    global _checkpoint_converter
    _checkpoint_converter = converter


def needs_conversion(preset):
    """Whether a resolved preset is not a keras_ssl preset but a checkpoint."""
    if _is_keras_hub_name(preset):
        return True
    if not os.path.exists(preset):
        return False  # a Kaggle or other handle keras-hub resolves itself
    if os.path.isfile(preset):
        return True
    with open(os.path.join(preset, keras_hub_internals.CONFIG_FILE)) as f:
        config = json.load(f)
    registered_name = str(config.get("registered_name", ""))
    return not registered_name or registered_name.startswith("keras_hub>")


def convert_to_preset(preset, **kwargs):
    """Turn a resolved non-Keras preset into a keras_ssl preset folder.

    `PresetMixin.from_preset` calls this on every resolved preset. Keras
    presets pass through unchanged. timm and transformers model folders
    (told apart by their `config.json`, as keras-hub does), keras-hub ViT
    and ResNet presets (folders or keras-hub preset names such as
    `"resnet_50_imagenet"`) and plain weights files are converted by
    `keras_ssl.models.convert_checkpoint` into a new temporary folder,
    which the caller deletes once loaded.

    Args:
        preset: the output of `resolve_preset`.
        **kwargs: conversion arguments of
            `keras_ssl.models.convert_checkpoint` (`source`,
            `architecture`, `num_heads`, `image_shape`).

    Returns:
        A preset keras-hub can load (`preset` itself when no conversion is
        needed).

    Example:
    ```python
    folder = convert_to_preset(resolve_preset("hf://timm/resnet50.a1_in1k"))
    ```
    """
    if not needs_conversion(preset):
        return preset
    if _is_keras_hub_name(preset):
        kwargs.setdefault("source", "keras_hub")
    if _checkpoint_converter is None:
        raise RuntimeError(
            f"'{preset}' is a checkpoint that needs converting, and no "
            "converter is registered: `import keras_ssl` registers "
            "`keras_ssl.models.convert_checkpoint`."
        )
    output_dir = tempfile.mkdtemp(prefix="keras_ssl_converted_")
    try:
        _checkpoint_converter(preset, output_dir=output_dir, **kwargs)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return output_dir


class PresetMixin:
    """Put first in the bases of every keras_ssl Backbone and Task.

    `from_preset` resolves registry names and `hf://` handles (including
    `@revision` and subfolders, which keras-hub does not accept) to a local
    folder with clear errors, then hands over to keras-hub. A weights file
    that cannot be read is reported with its path and the fix.

    Example:
    ```python
    @keras.saving.register_keras_serializable(package="keras_ssl")
    class CRATEBackbone(PresetMixin, keras_hub.models.Backbone):
        ...

    backbone = CRATEBackbone.from_preset("hf://keras-ssl/crate_tiny@v1")
    ```
    """

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Instantiate from a preset name, folder or `hf://` handle.

        timm and transformers models on the Hub, keras-hub presets and
        plain weights files (also `hf://owner/repo/path/file.pth`) are
        converted on the fly (see `keras_ssl.models.convert_checkpoint`).

        Args:
            preset: anything `keras_ssl.hub.resolve_preset` accepts.
            **kwargs: forwarded to keras-hub's `from_preset`
                (e.g. `load_weights=False`, `dtype`, `num_classes` for a new
                head), except `source` and `architecture`, which only steer
                the conversion of a checkpoint; `num_heads` and
                `image_shape` serve both.

        Example:
        ```python
        backbone = ViTBackbone.from_preset(
            "hf://timm/vit_small_patch16_224.augreg_in21k"
        )
        ```
        """
        resolved = resolve_preset(preset)
        conversion = {
            key: kwargs.pop(key) for key in CONVERSION_ONLY_KWARGS if key in kwargs
        }
        conversion.update(
            {key: kwargs[key] for key in CONVERSION_SHARED_KWARGS if key in kwargs}
        )
        preset_dir = convert_to_preset(resolved, **conversion)
        try:
            return cls._load_resolved_preset(preset, preset_dir, **kwargs)
        finally:
            if preset_dir != resolved:
                shutil.rmtree(preset_dir, ignore_errors=True)

    @classmethod
    def _load_resolved_preset(cls, preset, preset_dir, **kwargs):
        try:
            return super().from_preset(preset_dir, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as e:
            # h5py reports truncated or corrupt files as a bare OSError that
            # names neither the file nor the preset.
            weight_files = _weight_files(preset_dir)
            if not weight_files:
                raise
            raise OSError(
                f"Could not read the weights of preset '{preset}': "
                f"{', '.join(weight_files)} ({e}). The file is probably "
                "truncated or corrupt, e.g. by an interrupted download or "
                "save. Delete it and download the preset again (for a "
                "Hugging Face handle: `hf download owner/repo "
                "--force-download`), or re-save it with `save_to_preset`."
            ) from e


def _weight_files(preset_dir):
    if not os.path.isdir(preset_dir):
        return []
    return [
        os.path.join(preset_dir, f)
        for f in sorted(os.listdir(preset_dir))
        if f.endswith(".weights.h5")
    ]


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
    local_dir = _local_preset_dir(name)
    if local_dir:
        return local_dir
    if not handle.startswith(HF_PREFIX):
        return None
    config_path = huggingface_hub.try_to_load_from_cache(
        _parse_hf_handle(handle).id, keras_hub_internals.CONFIG_FILE
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
