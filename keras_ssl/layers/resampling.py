"""Antialiased bicubic resampling of position-embedding grids (numpy)."""

import numpy as np


def _cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(
        x < 1.0,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0),
    )


def _resampling_matrix(in_size, out_size):
    """Weights `[out_size, in_size]` of PyTorch's antialiased bicubic.

    This is `F.interpolate(mode="bicubic", antialias=True,
    align_corners=False)` along one axis: the PIL-style separable filter
    (cubic with a = -0.5) whose support widens by the scale when
    downsampling, with weights renormalised per output pixel. timm resamples
    position embeddings this way, so weights from a checkpoint trained at
    another resolution land exactly where timm puts them.
    """
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inverse_scale = 1.0 / scale if scale >= 1.0 else 1.0
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        start = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        taps = np.arange(start, stop)
        weights = _cubic((taps - center + 0.5) * inverse_scale)
        total = weights.sum()
        matrix[i, start:stop] = weights / total if total != 0 else weights
    return matrix


def resample_position_grid(grid, new_size):
    """Resamples a `[height, width, dim]` embedding grid to `new_size`.

    Args:
        grid: numpy array `[height, width, dim]`.
        new_size: `(new_height, new_width)`.

    Returns:
        numpy array `[new_height, new_width, dim]` with `grid`'s dtype.
    """
    height, width, _ = grid.shape
    new_height, new_width = new_size
    if (height, width) == (new_height, new_width):
        return grid
    rows = _resampling_matrix(height, new_height)
    cols = _resampling_matrix(width, new_width)
    resampled = np.einsum(
        "ih,jw,hwd->ijd", rows, cols, grid.astype(np.float64)
    )
    return resampled.astype(grid.dtype)
