"""Image rotations by multiples of 90 degrees (SLA, RotNet)."""

from keras import ops


def rotate_images(images, quarter_turns):
    """Rotates a batch of channels-last images counter-clockwise.

    Matches `np.rot90(image, quarter_turns)` on each image.

    Args:
        images: tensor `[B, H, W, C]`.
        quarter_turns: int. Number of 90-degree turns (any int; taken mod 4).

    Returns:
        The rotated batch, `[B, W, H, C]` for odd turns.
    """
    quarter_turns = quarter_turns % 4
    if quarter_turns == 0:
        return images
    if quarter_turns == 2:
        return ops.flip(ops.flip(images, axis=1), axis=2)
    transposed = ops.transpose(images, (0, 2, 1, 3))
    return ops.flip(transposed, axis=1 if quarter_turns == 1 else 2)
