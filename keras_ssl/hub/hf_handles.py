"""Hugging Face handles: parsing and downloading them, with errors that say why.

`hf://owner/repo[@revision][/subfolder]` handles are fetched with
`huggingface_hub`, which honours `HF_HUB_OFFLINE`, `HF_HOME` and
`HF_HUB_CACHE`. A repository that is gated, missing, or not in the cache while
offline raises an error naming the repository and the command that fixes it.
"""

import json
import os

import huggingface_hub
from huggingface_hub import errors as hf_errors

from keras_ssl.hub import keras_hub_internals
from keras_ssl.utils.checkpoint_files import is_checkpoint_file

HF_PREFIX = "hf://"


def parse_hf_handle(handle):
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


def download_hf_preset(handle, source):
    """Download a handle (or find it in the cache) and return its local path.

    Args:
        handle: `hf://owner/repo[@revision][/subfolder or weights file]`.
        source: how errors name what was asked for, e.g. "Preset 'x'".

    Returns:
        The local folder (the snapshot or its subfolder), or the local
        weights file when the handle names one.
    """
    uri = parse_hf_handle(handle)
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
    return path


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
        return None  # `check_preset_dir` explains what is missing
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
