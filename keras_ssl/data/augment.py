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


def color_jitter(image, seed, brightness=0.4, contrast=0.4, saturation=0.2,
                 hue=0.1):
    """torchvision's `ColorJitter` (fixed order: brightness, contrast,
    saturation, hue) on a [0, 255] RGB image."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)

    def factor(index, amount):
        return tf.random.stateless_uniform(
            [], seeds[index], 1.0 - amount, 1.0 + amount
        )

    image = tf.clip_by_value(image * factor(0, brightness), 0.0, 255.0)
    gray_mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = (image - gray_mean) * factor(1, contrast) + gray_mean
    image = tf.clip_by_value(image, 0.0, 255.0)
    gray = tf.image.rgb_to_grayscale(image)
    image = tf.clip_by_value(
        gray + (image - gray) * factor(2, saturation), 0.0, 255.0
    )
    delta = tf.random.stateless_uniform([], seeds[3], -hue, hue)
    return tf.image.adjust_hue(image / 255.0, delta) * 255.0


def gaussian_blur(image, seed, sigma=(0.1, 2.0)):
    """Gaussian blur with sigma drawn uniformly in `sigma` (reflect padding,
    a kernel of 3 sigma per side of the largest sigma)."""
    radius = int(math.ceil(3 * sigma[1]))
    draw = tf.random.stateless_uniform([], seed, sigma[0], sigma[1])
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / draw))
    kernel /= tf.reduce_sum(kernel)
    channels = image.shape[-1] or 3
    # The kernel may be wider than a small crop: pad by the image side at
    # most, as reflection allows, and zero beyond.
    padded = image[None]
    for axis, kernel_shape in ((1, [-1, 1, 1, 1]), (2, [1, -1, 1, 1])):
        pads = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pads[axis] = [radius, radius]
        padded = tf.pad(padded, pads, mode="SYMMETRIC")
        weights = tf.tile(tf.reshape(kernel, kernel_shape), [1, 1, channels, 1])
        padded = tf.nn.depthwise_conv2d(
            padded, weights, strides=[1, 1, 1, 1], padding="VALID"
        )
    return padded[0]


def solarize(image, threshold=128.0):
    """Inverts the pixels at or above `threshold` (PIL's `solarize`)."""
    return tf.where(image < threshold, image, 255.0 - image)


def _maybe(probability, seed, transform, image):
    apply = tf.random.stateless_uniform([], seed) < probability
    return tf.cond(apply, lambda: transform(image), lambda: image)


def byol_augment(image, seed, blur_probability, solarize_probability,
                 blur_sigma=(0.1, 2.0)):
    """Flip, colour jitter (p 0.8), grayscale (p 0.2), blur, solarisation:
    DINO's `DataAugmentationDINO` after its crop, on a [0, 255] image."""
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    image = random_flip(image, seeds[0])
    image = _maybe(0.8, seeds[1], lambda x: color_jitter(x, seeds[2]), image)
    image = _maybe(
        0.2, seeds[3],
        lambda x: tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 3]), image,
    )
    if blur_probability > 0:
        image = _maybe(
            blur_probability, seeds[4],
            lambda x: gaussian_blur(x, seeds[5], blur_sigma), image,
        )
    if solarize_probability > 0:
        image = _maybe(solarize_probability, seeds[6], solarize, image)
    return image


class MultiCrop:
    """Global and local random resized crops of one image (DINO style).

    Calling it returns a tuple of `num_global` crops of `global_size`
    followed by `num_local` crops of `local_size`, each randomly flipped.
    Pass an instance as `augment` to `keras_ssl.data.load_dataset`; the
    batches then hold a tuple of view batches.

    `colour=True` adds the BYOL colour augmentations as DINO applies them
    (Caron et al. 2021, Grill et al. 2020): colour jitter (p 0.8),
    grayscale (p 0.2), Gaussian blur (p 1.0 on the first global crop, 0.1
    on the second, 0.5 on the local ones) and solarisation (p 0.2, second
    global crop only).

    Args:
        global_size: int or `(height, width)`, the size of the global crops.
        local_size: int or `(height, width)`, the size of the local crops.
        num_global: int, the number of global crops.
        num_local: int, the number of local crops (may be 0).
        global_scale: tuple of floats, area range of the global crops.
        local_scale: tuple of floats, area range of the local crops.
        colour: bool, whether to add DINO's colour, blur and solarisation
            augmentations.
        blur_sigma: tuple of floats, the range of the blur's sigma in
            pixels (DINO's 0.1-2.0 is for 224-pixel crops).

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
        colour=False,
        blur_sigma=(0.1, 2.0),
    ):
        if num_global < 1 or num_local < 0:
            raise ValueError(
                "`multi_crop` needs num_global >= 1 and num_local >= 0; "
                f"received num_global={num_global}, num_local={num_local}."
            )
        self.global_size = to_size(global_size)
        self.local_size = to_size(local_size)
        if num_local and any(
            local > full for local, full in zip(self.local_size, self.global_size)
        ):
            raise ValueError(
                f"`local_size` {self.local_size} is larger than `global_size` "
                f"{self.global_size}; local crops are the small views (e.g. "
                "96 for 224, 16 for 32)."
            )
        self.colour = colour
        self.blur_sigma = tuple(blur_sigma)
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
            if not self.colour:
                views.append(random_flip(view, seeds[2 * index + 1]))
                continue
            blur, solar = (1.0, 0.0) if index == 0 else (0.1, 0.2)
            if not is_global:
                blur, solar = 0.5, 0.0
            views.append(
                byol_augment(view, seeds[2 * index + 1], blur, solar,
                             self.blur_sigma)
            )
        return tuple(views)


def multi_crop(
    global_size=224,
    local_size=96,
    num_global=2,
    num_local=6,
    global_scale=(0.4, 1.0),
    local_scale=(0.05, 0.4),
    colour=False,
    blur_sigma=(0.1, 2.0),
):
    """Returns a `MultiCrop` augmentation; see `MultiCrop` for the args."""
    return MultiCrop(
        global_size=global_size,
        local_size=local_size,
        num_global=num_global,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        colour=colour,
        blur_sigma=blur_sigma,
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
