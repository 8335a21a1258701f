"""PyTorch state dicts <-> keras_ssl models, parameter by parameter.

Each family describes its checkpoint layout once, as a list of entries
`(name, variable, axes)`: the PyTorch parameter name, the Keras variable it
maps to, and the permutation `np.transpose(tensor, axes)` that turns the
PyTorch tensor into the variable (None when the layouts agree). Loading
(`StateDictCopier.assign_entries`) and exporting (`export_entries`) read the
same list, so the two directions cannot drift apart.
"""

import functools

import keras
import numpy as np

# nn.Linear [out, in] -> Dense [in, out].
LINEAR_AXES = (1, 0)
# nn.Conv2d [out, in, kh, kw] -> Conv2D [kh, kw, in, out].
CONV_AXES = (2, 3, 1, 0)


def dense_entries(prefix, dense, bias=True):
    """Entries of an `nn.Linear` named `prefix` <-> a `Dense` layer."""
    entries = [(f"{prefix}.weight", dense.kernel, LINEAR_AXES)]
    if bias:
        entries.append((f"{prefix}.bias", dense.bias, None))
    return entries


def layer_norm_entries(prefix, norm):
    """Entries of an `nn.LayerNorm` named `prefix` <-> a `LayerNormalization`."""
    return [
        (f"{prefix}.weight", norm.gamma, None),
        (f"{prefix}.bias", norm.beta, None),
    ]


def position_embedding_transform(token_embedding):
    """Loads a position embedding as is, or resampled from another grid."""

    def transform(value):
        if value.shape == tuple(token_embedding.position_embedding.shape):
            return value
        return token_embedding.resample_positions(value)

    return transform


def export_entries(entries):
    """The PyTorch state dict that `entries` describe, from the variables.

    Args:
        entries: list of `(name, variable, axes)`.

    Returns:
        dict mapping each name to a C-contiguous float32 numpy array in the
        PyTorch layout (each `axes` permutation undone).
    """
    state_dict = {}
    for name, variable, axes in entries:
        value = keras.ops.convert_to_numpy(variable).astype("float32")
        if axes is not None:
            value = np.transpose(value, np.argsort(axes))
        state_dict[name] = np.ascontiguousarray(value)
    return state_dict


class StateDictCopier:
    """Assigns named arrays of a PyTorch state dict to Keras variables.

    Every key must be used exactly once and every shape must match, so a
    wrong architecture fails on the first offending parameter instead of
    loading half a model.

    Args:
        state_dict: mapping from parameter names to arrays or torch tensors.
        source: str, what the state dict is (for error messages).
    """

    def __init__(self, state_dict, source="checkpoint"):
        self.arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
        self.source = source
        self.used = set()

    def get(self, key):
        if key not in self.arrays:
            raise ValueError(
                f"The {self.source} has no parameter '{key}', which the "
                "model needs. Check that the checkpoint matches the "
                "architecture (depth, width, patch size, class count)."
            )
        self.used.add(key)
        return self.arrays[key]

    def assign(self, variable, key, transform=None):
        """Assigns `state_dict[key]` (optionally transformed) to `variable`."""
        value = self.get(key)
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Shape mismatch for '{key}' of the {self.source}: it holds "
                f"{tuple(value.shape)} but `{variable.path}` needs "
                f"{tuple(variable.shape)} (after layout conversion). Check "
                "that the checkpoint matches the architecture."
            )
        variable.assign(value.astype(variable.dtype))

    def assign_entries(self, entries, transforms=None):
        """Assigns every `(name, variable, axes)` entry, in order.

        Args:
            entries: list of `(name, variable, axes)`.
            transforms: optional dict from a name to a function that
                replaces the `axes` permutation for that entry (e.g. to
                resample a position embedding).
        """
        transforms = transforms or {}
        for name, variable, axes in entries:
            transform = transforms.get(name)
            if transform is None and axes is not None:
                transform = functools.partial(np.transpose, axes=axes)
            self.assign(variable, name, transform)

    def check_all_used(self, ignore=()):
        """Raises if a parameter of the state dict was not loaded."""
        unused = sorted(
            key
            for key in self.arrays
            if key not in self.used and not any(key.startswith(p) for p in ignore)
        )
        if unused:
            raise ValueError(
                f"The {self.source} has parameters the model does not use, "
                f"starting with '{unused[0]}' ({len(unused)} in all). Check "
                "that the checkpoint matches the architecture."
            )


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)
