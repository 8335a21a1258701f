"""The MoCo v2 augmentation and SegAS's weak + contrastive view pair.

TensorFlow ops for `tf.data.Dataset.map` (see `keras_ssl.data.augment`): one
float32 image `[H, W, 3]` in [0, 255] and a stateless seed in, views out.
"""

import tensorflow as tf

from keras_ssl.data.augment import color_jitter
from keras_ssl.data.augment import gaussian_blur
from keras_ssl.data.augment import random_flip
from keras_ssl.data.augment import random_resized_crop
from keras_ssl.data.augment import to_size


def _maybe(probability, seed, transform, image):
    apply = tf.random.stateless_uniform([], seed) < probability
    return tf.cond(apply, lambda: transform(image), lambda: image)


class MoCoV2Augment:
    """The MoCo v2 augmentation (Chen et al. 2020, "Improved Baselines with
    Momentum Contrastive Learning"), as torchvision ops.

    Random resized crop (scale 0.2-1), colour jitter (0.4, 0.4, 0.4, 0.1)
    with probability 0.8, grayscale with probability 0.2, Gaussian blur
    (sigma 0.1-2) with probability 0.5, horizontal
    flip. Use it with `num_views=2` for MoCo v2's query and key views.

    Args:
        size: int or `(height, width)`, the output size.
        crop_scale: tuple, the crop area range.
        jitter: `(brightness, contrast, saturation, hue)` strengths.
        jitter_probability: float.
        grayscale_probability: float.
        blur_probability: float (0 turns the blur off, as SimCLR does for
            CIFAR's 32x32 images).
        blur_sigma: tuple, the blur's sigma range in pixels.

    Example:
    ```python
    augment = keras_ssl.data.MoCoV2Augment(32, blur_probability=0.0)
    ds = keras_ssl.data.load_dataset("sample", augment=augment, num_views=2)
    (queries, keys), _ = next(iter(ds))
    ```
    """

    def __init__(
        self,
        size=224,
        crop_scale=(0.2, 1.0),
        jitter=(0.4, 0.4, 0.4, 0.1),
        jitter_probability=0.8,
        grayscale_probability=0.2,
        blur_probability=0.5,
        blur_sigma=(0.1, 2.0),
    ):
        self.size = to_size(size)
        self.crop_scale = tuple(crop_scale)
        self.jitter = tuple(jitter)
        self.jitter_probability = jitter_probability
        self.grayscale_probability = grayscale_probability
        self.blur_probability = blur_probability
        self.blur_sigma = tuple(blur_sigma)

    def __call__(self, image, seed):
        seeds = tf.random.experimental.stateless_split(seed, num=7)
        image = random_resized_crop(image, seeds[0], self.size, scale=self.crop_scale)
        image = _maybe(
            self.jitter_probability, seeds[1],
            lambda x: color_jitter(x, seeds[2], *self.jitter), image,
        )
        image = _maybe(
            self.grayscale_probability, seeds[3],
            lambda x: tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 3]), image,
        )
        if self.blur_probability > 0:
            image = _maybe(
                self.blur_probability, seeds[4],
                lambda x: gaussian_blur(x, seeds[5], self.blur_sigma), image,
            )
        image = random_flip(image, seeds[6])
        return tf.ensure_shape(image, self.size + (3,))


class SegASViews:
    """SegAS's two input views per image: weak x^k and contrastive x^{q1}.

    Bai et al. 2024, section 4.1: the weak augmentation is a random crop and
    a horizontal flip (we read "random crop" as a random resized crop of
    `weak_scale`); the contrastive one is MoCo v2's (`MoCoV2Augment`; the
    paper's colour distortion of strength 0.5 is its (0.4, 0.4, 0.4, 0.1)
    jitter). The third view, x^{q2}, is made on the device from x^{q1} by
    the model's attention-part filter. Returns `(x^k, x^{q1})`.

    Args:
        size: int or `(height, width)`.
        weak_scale: tuple, the weak crop's area range.
        blur_probability: float, the contrastive view's blur probability.
        **kwargs: other `MoCoV2Augment` arguments.
    """

    def __init__(self, size=224, weak_scale=(0.2, 1.0), blur_probability=0.5, **kwargs):
        self.size = to_size(size)
        self.weak_scale = tuple(weak_scale)
        self.contrastive = MoCoV2Augment(size, blur_probability=blur_probability, **kwargs)

    def __call__(self, image, seed):
        weak_seed, flip_seed, strong_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=3)
        )
        weak = random_resized_crop(image, weak_seed, self.size, scale=self.weak_scale)
        weak = tf.ensure_shape(random_flip(weak, flip_seed), self.size + (3,))
        return weak, self.contrastive(image, strong_seed)
