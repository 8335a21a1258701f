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


def check_label_range(labels, num_classes):
    """Fails a tf.data pipeline with a clear error on out-of-range labels.

    Runs as TensorFlow ops, so it works inside `Dataset.map` whatever the
    Keras backend; returns `labels` with the check attached.
    """
    import tensorflow as tf

    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_floating:
        # One-hot or soft labels: the class count is their last axis.
        if labels.shape.rank is not None and labels.shape.rank >= 2:
            width = labels.shape[-1]
            if width is not None and width != num_classes:
                raise ValueError(
                    f"One-hot labels have {width} columns but the model "
                    f"predicts {num_classes} classes."
                )
            return labels
    checks = [
        tf.debugging.assert_non_negative(
            labels, message="Labels must be class ids >= 0."
        ),
        tf.debugging.assert_less(
            tf.cast(labels, tf.int64),
            tf.constant(num_classes, tf.int64),
            message=(
                f"Labels must be class ids < num_classes={num_classes}. "
                "Build the model with the dataset's class count, or remap "
                "the labels to 0..num_classes-1."
            ),
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(labels)


def with_label_check(x, y, num_classes):
    """Attaches `check_label_range` to `fit` data: arrays or a tf.data set.

    Returns `(x, y)`: arrays are checked now; a `tf.data.Dataset` of
    `(images, labels[, weights])` gets the check mapped over it; other
    inputs (generators, PyDatasets) pass through unchanged.
    """
    import numpy as np
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):

        def check(*element):
            if len(element) < 2:
                return element
            return (element[0], check_label_range(element[1], num_classes)) + (
                element[2:]
            )

        return x.map(check), y
    if isinstance(x, tuple) and y is None and len(x) >= 2:
        # validation_data given as (images, labels[, weights]).
        _check_label_array(np.asarray(x[1]), num_classes)
    elif y is not None:
        _check_label_array(np.asarray(y), num_classes)
    return x, y


def _check_label_array(labels, num_classes):
    if labels.dtype.kind == "f" and labels.ndim >= 2:
        return
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must be class ids in [0, {num_classes}); found values "
            f"from {labels.min()} to {labels.max()}. Build the model with "
            "the dataset's class count, or remap the labels to "
            "0..num_classes-1."
        )
