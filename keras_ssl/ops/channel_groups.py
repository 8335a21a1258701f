"""Channel groups: split a feature map's channels into groups to drop."""

import numpy as np
from keras import ops


def channel_groups(permutation, num_groups):
    """The group (0..num_groups-1) of every channel, from a permutation.

    As in the SFE paper's Listing 1: the channels are permuted once and
    position `i` of the permutation goes to group `g` when
    `g * C // num_groups <= i < (g + 1) * C // num_groups`, so the groups are
    disjoint, cover all channels, and are equal when `num_groups` divides
    `C`.

    Args:
        permutation: int tensor `[C]`, a permutation of `0..C-1`.
        num_groups: int. Number of groups (k).

    Returns:
        int32 tensor `[C]`: the group of channel `c` at index `c`.
    """
    num_channels = int(permutation.shape[0])
    position_group = np.zeros((num_channels,), "int32")
    for group in range(num_groups):
        start = group * num_channels // num_groups
        stop = (group + 1) * num_channels // num_groups
        position_group[start:stop] = group
    # Channel permutation[i] sits at position i.
    positions = ops.argsort(ops.cast(permutation, "int32"))
    return ops.take(ops.convert_to_tensor(position_group), positions)


def channel_drop_masks(permutation, num_groups, dtype="float32"):
    """The K = num_groups + 1 channel masks of SFE's transformations.

    Row 0 keeps every channel (the original feature); row `j` (1..k) zeroes
    group `j - 1` (the paper's `M_j`, constant over height and width).

    Args:
        permutation: int tensor `[C]`, a permutation of `0..C-1`.
        num_groups: int. Number of groups (k = K - 1).
        dtype: dtype of the masks.

    Returns:
        Tensor `[K, C]` of zeros and ones.
    """
    groups = channel_groups(permutation, num_groups)
    dropped = ops.transpose(ops.one_hot(groups, num_groups, dtype=dtype))
    keep_all = ops.ones((1, ops.shape(dropped)[1]), dtype=dtype)
    return ops.concatenate([keep_all, 1.0 - dropped], axis=0)
