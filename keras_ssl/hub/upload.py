"""Upload a checked preset folder to the Hugging Face Hub.

Nothing is sent before `check_preset_folder` has passed; network and
permission failures are raised with what to fix.
"""

import os

import httpx2
import huggingface_hub
from huggingface_hub import errors as hf_errors

from keras_ssl.hub.preflight import check_preset_folder
from keras_ssl.hub.hf_handles import HF_PREFIX
from keras_ssl.hub.hf_handles import parse_hf_handle


def publish_preset(
    preset_dir,
    uri,
    commit_message=None,
    private=None,
    token=None,
    endpoint=None,
):
    """Check a preset folder, then upload it to a Hugging Face repository.

    `check_preset_folder` runs first; a folder that fails it is refused
    before any request is sent. The repository is created if needed and the
    folder is uploaded as one commit with `huggingface_hub.upload_folder`.

    Args:
        preset_dir: a folder written by `save_to_preset`, with a model card
            (`write_model_card`) and the training's `metrics.json`.
        uri: the target, `"hf://owner/repo"`.
        commit_message: optional commit message.
        private: whether a newly created repository is private (None: the
            Hub's default).
        token: optional Hugging Face token; by default the one from
            `hf auth login` or the HF_TOKEN environment variable.
        endpoint: optional Hub URL; by default HF_ENDPOINT or
            https://huggingface.co.

    Returns:
        The `huggingface_hub.CommitInfo` of the upload (`.repo_url`,
        `.oid`, `.commit_url`).

    Example:
    ```python
    classifier.save_to_preset("resnet20_cifar10")
    # ... copy the training's metrics.json in, then:
    keras_ssl.hub.write_model_card(
        "resnet20_cifar10",
        "keras-ssl/resnet20_cifar10",
        metrics=[{"type": "accuracy", "name": "test_accuracy", "value": 0.91}],
        dataset="cifar10",
    )
    keras_ssl.hub.publish_preset(
        "resnet20_cifar10", "hf://keras-ssl/resnet20_cifar10"
    )
    ```
    """
    repo_id = _upload_repo_id(uri)
    if huggingface_hub.constants.is_offline_mode():
        raise RuntimeError(
            f"Cannot publish to '{uri}': offline mode is on "
            "(HF_HUB_OFFLINE=1) and publishing needs the Hub. Unset "
            "HF_HUB_OFFLINE, or only check the folder with "
            "`keras_ssl.hub.check_preset_folder` (`--dry-run`)."
        )
    if token is None and huggingface_hub.get_token() is None:
        raise PermissionError(
            f"Cannot publish to '{uri}': not logged in to the Hugging Face "
            "Hub. Run `hf auth login` or set HF_TOKEN to a token with write "
            "access."
        )
    check_preset_folder(preset_dir)
    name = os.path.basename(os.path.abspath(preset_dir))
    api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=preset_dir,
            commit_message=commit_message or f"Publish {name}",
        )
    except (httpx2.ConnectError, httpx2.TimeoutException) as e:
        raise ConnectionError(_unreachable_message(api.endpoint, uri, e)) from e
    except hf_errors.HfHubHTTPError as e:
        if e.response.status_code in (401, 403):
            raise PermissionError(
                f"The Hub at {api.endpoint} refused to let you write to "
                f"'{repo_id}' ({e.response.status_code}). Check that your "
                "token (`hf auth login` or HF_TOKEN) has write access to the "
                f"'{repo_id.split('/')[0]}' namespace."
            ) from e
        raise


def _upload_repo_id(uri):
    if not isinstance(uri, str) or not uri.startswith(HF_PREFIX):
        raise ValueError(
            f"Expected an 'hf://owner/repo' target. Received: uri={uri!r}. "
            "For Kaggle, use `keras_hub.upload_preset`."
        )
    hf_uri = parse_hf_handle(uri)
    if hf_uri.revision or hf_uri.path_in_repo:
        raise ValueError(
            "Publish targets are plain 'hf://owner/repo', so that keras-hub "
            f"loads the preset from the repository root. Received: uri='{uri}'."
        )
    return hf_uri.id


def _unreachable_message(endpoint, uri, error):
    if os.environ.get("HF_ENDPOINT"):
        fix = (
            f"HF_ENDPOINT is set to '{os.environ['HF_ENDPOINT']}': check that "
            "a Hub is running there, or unset HF_ENDPOINT to publish to "
            "https://huggingface.co."
        )
    else:
        fix = (
            "Check your internet connection and proxy settings (HTTPS_PROXY); "
            "to publish to another Hub, set HF_ENDPOINT."
        )
    return (
        f"Could not reach the Hugging Face Hub at {endpoint} to publish "
        f"'{uri}' ({type(error).__name__}: {error}). {fix}"
    )
