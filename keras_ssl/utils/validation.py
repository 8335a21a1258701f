"""Input checks that turn shape mistakes into errors that name the fix."""


def check_image_shape(shape, expected_channels, name="images"):
    """Checks a static image-batch shape `[B, H, W, C]` (channels last).

    Args:
        shape: the static shape of the batch (a tuple; unknown dims are None).
        expected_channels: int, the channel count the model was built for.
        name: str, the argument name used in the error message.
    """
    shape = tuple(shape)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = (
                " A single image needs a batch axis: use "
                "`images[None]` or `np.expand_dims(images, 0)`."
            )
        raise ValueError(
            f"`{name}` must be a batch of channels-last images with shape "
            f"[batch, height, width, {expected_channels}]; received rank "
            f"{len(shape)} with shape {shape}.{hint}"
        )
    channels = shape[-1]
    if channels is not None and channels != expected_channels:
        hint = ""
        if shape[1] == expected_channels:
            hint = (
                " The batch looks channels-first: transpose it with "
                "`np.transpose(images, (0, 2, 3, 1))`."
            )
        raise ValueError(
            f"`{name}` has {channels} channels but the model expects "
            f"{expected_channels} (shape [batch, height, width, "
            f"{expected_channels}]); received shape {shape}.{hint}"
        )


def static_shape(inputs):
    """The static shape of a tensor of any backend, unknown dims as None."""
    shape = getattr(inputs, "shape", None)
    if shape is None:
        import numpy as np

        return np.shape(inputs)
    return tuple(None if dim is None else int(dim) for dim in shape)
