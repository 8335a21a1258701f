"""Checkpoint files: read safely (no pickle code runs), written plainly.

Checkpoints from the Hub are someone else's files. A PyTorch file is a
pickle, and unpickling can run arbitrary code, so PyTorch files are read
with `torch.load(..., weights_only=True)`, which only rebuilds tensors and
plain containers and refuses everything else.
"""

import json
import os
import pickle

import numpy as np

from keras_ssl.utils.checkpoint_files import CHECKPOINT_EXTENSIONS
from keras_ssl.utils.checkpoint_files import SAFETENSORS_EXTENSIONS
from keras_ssl.utils.checkpoint_files import is_checkpoint_file

# Keys under which training scripts nest the weights, most specific first.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
# Weight files of a Hugging Face model folder, preferred first.
FOLDER_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def load_state_dict_file(path):
    """Reads a `.safetensors` or PyTorch weights file into numpy arrays.

    PyTorch files are read with `torch.load(..., weights_only=True)`: a file
    whose pickle would import or call anything besides tensors and plain
    containers is refused. Nested checkpoints (`{"state_dict": ...}`,
    `{"model": ...}`) are unwrapped and a `module.` prefix left by
    `DataParallel` is removed.

    Args:
        path: a `.safetensors`, `.pth`, `.pt`, `.bin` or `.ckpt` file.

    Returns:
        dict mapping parameter names to float32 numpy arrays (integer
        buffers keep their type).

    Raises:
        ValueError: if the file is a pickle that needs code to load, or
            holds no state dict.

    Example:
    ```python
    state_dict = load_state_dict_file("crate_base.pth")
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file '{path}' does not exist.")
    if path.lower().endswith(SAFETENSORS_EXTENSIONS):
        return unwrap_state_dict(_load_safetensors(path), path)
    return unwrap_state_dict(_load_torch(path), path)


def save_state_dict_file(state_dict, path):
    """Writes a state dict of numpy arrays as `.safetensors` or a PyTorch file.

    The file type follows the extension. safetensors are written through the
    `safetensors` package's numpy API (no PyTorch needed), with the
    `{"format": "pt"}` metadata PyTorch loaders expect; PyTorch files are a
    `torch.save` of a plain dict of tensors, which
    `torch.load(..., weights_only=True)` reads.

    Args:
        state_dict: dict mapping parameter names to numpy arrays.
        path: a `.safetensors`, `.pth`, `.pt`, `.bin` or `.ckpt` file.

    Example:
    ```python
    save_state_dict_file({"weight": np.zeros((2, 3))}, "model.safetensors")
    ```
    """
    path = os.fspath(path)
    if not is_checkpoint_file(path):
        raise ValueError(
            f"Cannot tell the file type of '{path}': name it "
            f"{' or '.join(CHECKPOINT_EXTENSIONS)}."
        )
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if path.lower().endswith(SAFETENSORS_EXTENSIONS):
        try:
            from safetensors.numpy import save_file
        except ImportError as e:
            raise ImportError(
                f"Writing '{path}' needs the `safetensors` package: "
                "`pip install safetensors`."
            ) from e
        save_file(state_dict, path, metadata={"format": "pt"})
        return
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Writing the PyTorch file '{path}' needs PyTorch: "
            "`pip install keras-ssl[torch]`, or write a .safetensors file."
        ) from e
    torch.save(
        {name: torch.from_numpy(value) for name, value in state_dict.items()},
        path,
    )


def _load_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise ImportError(
            f"Reading '{path}' needs the `safetensors` package: "
            "`pip install safetensors`."
        ) from e
    arrays = {}
    # The PyTorch framework reads bfloat16 too, which numpy cannot.
    framework = "pt" if _has_torch() else "np"
    with safe_open(path, framework=framework) as f:
        for key in f.keys():
            arrays[key] = _to_numpy(f.get_tensor(key))
    return arrays


def _load_torch(path):
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Reading the PyTorch file '{path}' needs PyTorch: "
            "`pip install keras-ssl[torch]`, or convert the file to "
            ".safetensors first."
        ) from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        reason = next((line for line in reason if "Unsupported" in line), "")
        raise ValueError(
            f"Refusing to load '{path}': it is a pickle that needs to run "
            "code (import or call Python objects) to load, and keras_ssl "
            "only reads tensors from untrusted files "
            f"(`torch.load(weights_only=True)`). {reason} If you trust the "
            "file's author, load it yourself with "
            "`torch.load(path, weights_only=False)` and pass "
            "`model.state_dict()` or the resulting dict to "
            "`convert_checkpoint`; better, use a `.safetensors` version of "
            "the checkpoint."
        ) from e


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def unwrap_state_dict(checkpoint, where="checkpoint"):
    """Finds the parameters in a training checkpoint; arrays out.

    Args:
        checkpoint: a state dict, or a dict nesting one under one of
            `WRAPPER_KEYS` (`state_dict`, `model`, ...).
        where: what `checkpoint` is, for error messages.

    Returns:
        dict mapping names to numpy arrays, without a `module.` prefix.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"The {where} holds a {type(checkpoint).__name__}, not a state "
            "dict (a mapping of parameter names to tensors)."
        )
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), dict):
            return unwrap_state_dict(checkpoint[key], where)
    arrays = {
        name: _to_numpy(value)
        for name, value in checkpoint.items()
        if _is_tensor(value)
    }
    if not arrays:
        raise ValueError(
            f"The {where} holds no tensors. Its top-level keys are "
            f"{sorted(map(str, checkpoint))[:10]}; pass the entry that holds "
            "the model's parameters."
        )
    if all(name.startswith("module.") for name in arrays):
        arrays = {name[len("module."):]: value for name, value in arrays.items()}
    return arrays


def _is_tensor(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch.Tensor; torch stays optional.
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        value = value.astype("float32")
    return value


def folder_weights_file(folder):
    """The weights file of a Hugging Face model folder (safetensors first)."""
    for name in FOLDER_WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"'{folder}' has none of the weight files "
        f"{', '.join(FOLDER_WEIGHT_FILES)}. Sharded checkpoints are not "
        "supported; merge the shards into one file first."
    )


def read_json(folder, name, required=True):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        if required:
            raise FileNotFoundError(f"'{folder}' has no {name}.")
        return None
    with open(path) as f:
        return json.load(f)
