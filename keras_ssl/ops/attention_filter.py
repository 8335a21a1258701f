"""SegAS's attention-part filter strategy (ApFS) and its random alternative.

Bai et al. 2024, "Attention Shifting to Pursue Optimal Representation for
Adapting Multi-granularity Tasks", section 3.3. Backend-agnostic
`keras.ops`; the random draws take a `keras.random.SeedGenerator`.
"""

import keras
from keras import ops

from keras_ssl.distribute.replicas import draw_for_replica


def attention_heatmap(feature_map, image_size):
    """A^c: the channel sum of a feature map, min-max normalised to [0, 1]
    per image and bilinearly upsampled to the image (no gradient).

    Args:
        feature_map: `[B, h, w, C]` last convolutional feature map.
        image_size: `(height, width)` of the images to filter.

    Returns:
        `[B, height, width, 1]` heatmap in [0, 1].
    """
    feature_map = ops.stop_gradient(ops.convert_to_tensor(feature_map))
    heat = ops.sum(feature_map, axis=-1, keepdims=True)
    low = ops.min(heat, axis=(1, 2), keepdims=True)
    high = ops.max(heat, axis=(1, 2), keepdims=True)
    heat = (heat - low) / ops.maximum(high - low, 1e-12)
    heat = ops.image.resize(heat, tuple(image_size), interpolation="bilinear")
    return ops.clip(heat, 0.0, 1.0)


def attention_filter(heatmap, omega, sigma):
    """T(A) = 1 - sigmoid(omega (A - sigma)) (Eq. 10): ~0 where the heat is
    above sigma, ~1 below."""
    return 1.0 - ops.sigmoid(omega * (ops.convert_to_tensor(heatmap) - sigma))


def random_filter(shape, area_fraction, seed):
    """A mask that erases one random rectangle per image (0 inside, 1 out).

    The rectangle covers `area_fraction` of the image (per image), with a
    log-uniform aspect ratio in [1/2, 2], at a uniform position.

    Args:
        shape: `(batch, height, width)`; batch may be a tensor.
        area_fraction: `[B]` fractions in [0, 1].
        seed: a `keras.random.SeedGenerator`.

    Returns:
        `[B, height, width, 1]` float mask.
    """
    batch, height, width = shape
    area_fraction = ops.convert_to_tensor(area_fraction, "float32")
    draws = draw_for_replica(
        lambda count: keras.random.uniform((count, 3), seed=seed), batch
    )
    log_ratio = (draws[:, 0] * 2.0 - 1.0) * ops.log(2.0)
    area = area_fraction * height * width
    box_h = ops.minimum(ops.sqrt(area * ops.exp(log_ratio)), float(height))
    box_w = ops.minimum(ops.sqrt(area * ops.exp(-log_ratio)), float(width))
    top = draws[:, 1] * (height - box_h)
    left = draws[:, 2] * (width - box_w)
    rows = ops.arange(height, dtype="float32")[None, :, None] + 0.5
    cols = ops.arange(width, dtype="float32")[None, None, :] + 0.5
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + box_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + box_w)[:, None, None])
    )
    return ops.expand_dims(1.0 - ops.cast(inside, "float32"), -1)


def filter_views(images, heatmap, rate, omega, sigma, seed, random_probability=0.5):
    """x^{q2}: the hardness-adaptive attention-part / random filtering.

    Image i is filtered with probability `rate[i]` (rho_i, Eq. 11);
    a filtered image is multiplied by T(A) (Eq. 10) with probability
    `1 - random_probability`, otherwise by a random-erasing mask of the area
    T(A) would remove. Unfiltered images pass unchanged.

    Args:
        images: `[B, H, W, C]`.
        heatmap: `[B, H, W, 1]` from `attention_heatmap`.
        rate: `[B]` filtering probabilities in [0, 1].
        omega: float, the sigmoid scale.
        sigma: float, the heat threshold.
        seed: a `keras.random.SeedGenerator`.
        random_probability: float, the share of random filtering.

    Returns:
        `(views, filtered, random)`: the views `[B, H, W, C]` and two `[B]`
        bool tensors, which images were filtered and which of those by the
        random mask.
    """
    images = ops.convert_to_tensor(images)
    heatmap = ops.convert_to_tensor(heatmap, images.dtype)
    # Compared with float32 draws, so float32 under mixed precision too.
    rate = ops.cast(rate, "float32")
    shape = ops.shape(images)
    height, width = images.shape[1], images.shape[2]
    draws = draw_for_replica(
        lambda count: keras.random.uniform((count, 2), seed=seed), shape[0]
    )
    filtered = draws[:, 0] < rate
    use_random = draws[:, 1] < random_probability
    attention_mask = attention_filter(heatmap, omega, sigma)
    area = ops.mean(1.0 - attention_mask, axis=(1, 2, 3))
    random_mask = random_filter((shape[0], height, width), area, seed)
    mask = ops.where(use_random[:, None, None, None], random_mask, attention_mask)
    mask = ops.where(filtered[:, None, None, None], mask, ops.ones_like(mask))
    return images * ops.cast(mask, images.dtype), filtered, filtered & use_random
