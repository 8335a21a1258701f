"""Rotated views and patch pasting of whole image batches, on any backend.

The views of RotNet (Gidaris et al. 2018) and Patch RotNet / Patch RelNet
(Pham et al., "Self-supervised learning with local attention-aware
feature"). Each op is one batched `keras.ops` expression, with no per-image
Python loop, so it runs inside `call` under `jit` on TensorFlow, JAX and
PyTorch.
"""

from keras import ops

from keras_ssl.ops.rotation import rotate_images


def all_rotations(images):
    """The 4 rotations (0, 90, 180, 270 degrees) of square images.

    Args:
        images: `[B, S, S, C]` tensor with a static side `S`.

    Returns:
        `[B, 4, S, S, C]`: view `k` is `np.rot90(image, k)` of each image.
    """
    height, width = images.shape[1:3]
    if height is None or height != width:
        raise ValueError(
            "Rotation pretext tasks need square images with a static size, "
            "so the 4 rotations share one shape; received images of shape "
            f"{tuple(images.shape)}. Resize or crop them to a square first "
            "(e.g. `load_dataset(..., image_size=32)`)."
        )
    return ops.stack([rotate_images(images, k) for k in range(4)], axis=1)


def patch_size_for(image_size, patch_ratio):
    """Side of the pasted patch: `round(patch_ratio * image_size)`."""
    return int(round(patch_ratio * image_size))


def paste_patches(images, patches, offsets):
    """Pastes one patch into each image at a per-image offset.

    Gathers, for every output pixel, the patch pixel that would cover it (a
    batched `take_along_axis`) and keeps it inside the box: one expression
    for the whole batch.

    Args:
        images: `[B, H, W, C]` backgrounds.
        patches: `[B, h, w, C]` with `h <= H`, `w <= W`.
        offsets: `[B, 2]` ints, the (row, column) of each patch's top-left
            corner, with `0 <= row <= H - h` and `0 <= column <= W - w`.

    Returns:
        `[B, H, W, C]`: `images` with `patches[b]` at
        `[row_b : row_b + h, column_b : column_b + w]`.
    """
    height, width, channels = images.shape[1:]
    patch_height, patch_width = patches.shape[1:3]
    offsets = ops.cast(offsets, "int32")
    rows = ops.arange(height, dtype="int32")[None, :] - offsets[:, :1]  # [B, H]
    cols = ops.arange(width, dtype="int32")[None, :] - offsets[:, 1:]  # [B, W]
    inside = ((rows >= 0) & (rows < patch_height))[:, :, None] & (
        (cols >= 0) & (cols < patch_width)
    )[:, None, :]
    rows = ops.clip(rows, 0, patch_height - 1)
    cols = ops.clip(cols, 0, patch_width - 1)
    index = rows[:, :, None] * patch_width + cols[:, None, :]  # [B, H, W]
    index = ops.repeat(ops.reshape(index, (-1, height * width, 1)), channels, 2)
    flat_patches = ops.reshape(patches, (-1, patch_height * patch_width, channels))
    covered = ops.take_along_axis(flat_patches, index, axis=1)
    covered = ops.reshape(covered, (-1, height, width, channels))
    return ops.where(inside[..., None], ops.cast(covered, images.dtype), images)


def patched_rotations(images, rotations, patch_ratio, offsets):
    """Patch RotNet's patched images p_k.

    p_k is the upright image with its k-th rotation, resized (bilinear) to
    `patch_ratio` of the side, pasted at the image's offset: the same box
    for the 4 p_k of an image, so only the patch content tells them apart.

    Args:
        images: `[B, S, S, C]` upright images.
        rotations: `[B, 4, S, S, C]`, from `all_rotations(images)`.
        patch_ratio: float in (0, 1). Patch side / image side.
        offsets: `[B, 2]` int top-left corners of the boxes.

    Returns:
        `[B, 4, S, S, C]`.
    """
    size, channels = images.shape[1], images.shape[3]
    side = patch_size_for(size, patch_ratio)
    flat = ops.reshape(rotations, (-1, size, size, channels))
    patches = ops.image.resize(
        flat, (side, side), interpolation="bilinear", antialias=False
    )
    patches = ops.reshape(patches, (-1, 4, side, side, channels))
    pasted = [paste_patches(images, patches[:, k], offsets) for k in range(4)]
    return ops.stack(pasted, axis=1)
