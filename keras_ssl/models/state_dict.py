"""Copying PyTorch state dicts into keras_ssl models, parameter by parameter."""

import numpy as np


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

    def assign_dense(self, dense, prefix, bias=True):
        """`nn.Linear` -> `keras.layers.Dense` (weights are transposed)."""
        self.assign(dense.kernel, f"{prefix}.weight", np.transpose)
        if bias:
            self.assign(dense.bias, f"{prefix}.bias")

    def assign_layer_norm(self, norm, prefix):
        self.assign(norm.gamma, f"{prefix}.weight")
        self.assign(norm.beta, f"{prefix}.bias")

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
