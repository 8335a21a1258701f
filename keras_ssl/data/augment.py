"""Image augmentations as TensorFlow ops for `tf.data` pipelines.

They run inside `tf.data.Dataset.map`, i.e. in a TF graph on the CPU, so the
batches they produce feed `model.fit` on every Keras backend. All functions
take one float32 image `[H, W, 3]` in the [0, 255] range and a stateless
`seed` (an int tensor of shape `[2]`), so a pipeline with a fixed seed is
reproducible.
"""

import inspect
import math

import tensorflow as tf


def to_size(image_size):
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def random_resized_crop(
    image, seed, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)
):
    """Crops a random area and aspect ratio, then resizes (torchvision style).

    Like `torchvision.transforms.RandomResizedCrop`: tries 10 crops whose area
    is `scale` times the image area and whose log aspect ratio is uniform in
    `log(ratio)`; if none fits, falls back to a central crop clamped to
    `ratio`.

    Args:
        image: float32 tensor `[H, W, C]`.
        seed: int tensor of shape `[2]`, the stateless random seed.
        size: int or `(height, width)`, the output size.
        scale: tuple of floats, the range of the crop area fraction.
        ratio: tuple of floats, the range of the crop aspect ratio (w / h).

    Returns:
        float32 tensor `[height, width, C]`.

    Example:
    ```python
    crop = random_resized_crop(tf.zeros([64, 48, 3]), [1, 2], size=32)
    crop.shape  # TensorShape([32, 32, 3])
    ```
    """
    height, width = to_size(size)
    num_tries = 10
    shape = tf.shape(image)
    image_h = tf.cast(shape[0], tf.float32)
    image_w = tf.cast(shape[1], tf.float32)
    area_seed, ratio_seed, top_seed, left_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=4)
    )
    area = image_h * image_w * tf.random.stateless_uniform(
        [num_tries], area_seed, scale[0], scale[1]
    )
    aspect = tf.exp(
        tf.random.stateless_uniform(
            [num_tries], ratio_seed, math.log(ratio[0]), math.log(ratio[1])
        )
    )
    crop_w = tf.round(tf.sqrt(area * aspect))
    crop_h = tf.round(tf.sqrt(area / aspect))
    fits = (crop_w > 0) & (crop_w <= image_w) & (crop_h > 0)
    fits &= crop_h <= image_h

    # Fallback as torchvision: the whole image, clamped to the ratio range.
    image_ratio = image_w / image_h
    fallback_w = tf.where(
        image_ratio > ratio[1], tf.round(image_h * ratio[1]), image_w
    )
    fallback_h = tf.where(
        image_ratio < ratio[0], tf.round(image_w / ratio[0]), image_h
    )
    first = tf.argmax(tf.cast(fits, tf.int32))
    any_fits = tf.reduce_any(fits)
    crop_w = tf.cast(tf.where(any_fits, crop_w[first], fallback_w), tf.int32)
    crop_h = tf.cast(tf.where(any_fits, crop_h[first], fallback_h), tf.int32)

    # Offsets are uniform over the valid positions, inclusive.
    top = tf.random.stateless_uniform(
        [], top_seed, 0, shape[0] - crop_h + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], left_seed, 0, shape[1] - crop_w + 1, dtype=tf.int32
    )
    crop = image[top : top + crop_h, left : left + crop_w]
    return tf.image.resize(crop, (height, width), method="bilinear")


def random_flip(image, seed):
    """Flips the image left-right with probability 0.5.

    Args:
        image: tensor `[H, W, C]`.
        seed: int tensor of shape `[2]`, the stateless random seed.

    Returns:
        The image, flipped or not.

    Example:
    ```python
    flipped = random_flip(tf.zeros([32, 32, 3]), [1, 2])
    ```
    """
    return tf.image.stateless_random_flip_left_right(image, seed)


def pad_and_crop(image, seed, padding=4):
    """Zero-pads `padding` pixels per side and crops back (CIFAR style).

    Args:
        image: float32 tensor `[H, W, C]` with a static shape.
        seed: int tensor of shape `[2]`, the stateless random seed.
        padding: int, pixels added to each side before cropping.

    Returns:
        A tensor of the input's shape, shifted by up to `padding` pixels.

    Example:
    ```python
    shifted = pad_and_crop(tf.zeros([32, 32, 3]), [1, 2])
    ```
    """
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, shape, seed)


def default_augment(image, seed, size):
    """Random resized crop to `size` followed by a random flip."""
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    image = random_resized_crop(image, crop_seed, size)
    return random_flip(image, flip_seed)


def cifar_augment(image, seed):
    """Pad-4-and-crop followed by a random flip (the usual CIFAR recipe)."""
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    image = pad_and_crop(image, crop_seed)
    return random_flip(image, flip_seed)


class MultiCrop:
    """Global and local random resized crops of one image (DINO style).

    Calling it returns a tuple of `num_global` crops of `global_size`
    followed by `num_local` crops of `local_size`, each randomly flipped.
    Pass an instance as `augment` to `keras_ssl.data.load_dataset`; the
    batches then hold a tuple of view batches.

    Args:
        global_size: int or `(height, width)`, the size of the global crops.
        local_size: int or `(height, width)`, the size of the local crops.
        num_global: int, the number of global crops.
        num_local: int, the number of local crops (may be 0).
        global_scale: tuple of floats, area range of the global crops.
        local_scale: tuple of floats, area range of the local crops.

    Example:
    ```python
    augment = keras_ssl.data.multi_crop(32, 16, num_global=2, num_local=4)
    ds = keras_ssl.data.load_dataset("sample", augment=augment)
    views, labels = next(iter(ds))  # 6 view batches
    ```
    """

    def __init__(
        self,
        global_size=224,
        local_size=96,
        num_global=2,
        num_local=6,
        global_scale=(0.4, 1.0),
        local_scale=(0.05, 0.4),
    ):
        if num_global < 1 or num_local < 0:
            raise ValueError(
                "`multi_crop` needs num_global >= 1 and num_local >= 0; "
                f"received num_global={num_global}, num_local={num_local}."
            )
        self.global_size = to_size(global_size)
        self.local_size = to_size(local_size)
        self.num_global = num_global
        self.num_local = num_local
        self.global_scale = tuple(global_scale)
        self.local_scale = tuple(local_scale)

    def __call__(self, image, seed):
        num_views = self.num_global + self.num_local
        seeds = tf.random.experimental.stateless_split(seed, num=num_views * 2)
        views = []
        for index in range(num_views):
            is_global = index < self.num_global
            view = random_resized_crop(
                image,
                seeds[2 * index],
                self.global_size if is_global else self.local_size,
                scale=self.global_scale if is_global else self.local_scale,
            )
            views.append(random_flip(view, seeds[2 * index + 1]))
        return tuple(views)


def multi_crop(
    global_size=224,
    local_size=96,
    num_global=2,
    num_local=6,
    global_scale=(0.4, 1.0),
    local_scale=(0.05, 0.4),
):
    """Returns a `MultiCrop` augmentation; see `MultiCrop` for the args."""
    return MultiCrop(
        global_size=global_size,
        local_size=local_size,
        num_global=num_global,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
    )


def get_augmentation(augment, image_size):
    """Resolves an `augment` argument to a function `(image, seed) -> image`.

    Args:
        augment: `False`/`None` (no augmentation), `"default"` (random
            resized crop + flip), `"cifar"` (pad-4-and-crop + flip), or a
            callable. A callable with a `seed` parameter is called as
            `augment(image, seed=seed)`, any other as `augment(image)`.
        image_size: `(height, width)`, the output size of `"default"`.

    Returns:
        A function `(image, seed) -> image or tuple of images`, or `None`.

    Example:
    ```python
    fn = get_augmentation("cifar", (32, 32))
    image = fn(tf.zeros([32, 32, 3]), tf.constant([1, 2]))
    ```
    """
    if augment is None or augment is False:
        return None
    if callable(augment):
        try:
            takes_seed = "seed" in inspect.signature(augment).parameters
        except (TypeError, ValueError):
            takes_seed = False
        if takes_seed:
            return lambda image, seed: augment(image, seed=seed)
        return lambda image, seed: augment(image)
    if augment == "default":
        return lambda image, seed: default_augment(image, seed, image_size)
    if augment == "cifar":
        return cifar_augment
    raise ValueError(
        "`augment` must be False/None, 'default' (random resized crop + "
        "flip), 'cifar' (pad-4-and-crop + flip) or a callable "
        f"`(image, seed) -> image`; received {augment!r}."
    )
