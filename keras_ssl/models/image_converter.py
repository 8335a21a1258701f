import math

import keras
import numpy as np
from keras_hub.layers import ImageConverter

from keras_ssl.hub.preset_mixin import PresetMixin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class NormalizingImageConverter(PresetMixin, ImageConverter):
    """Resizes `[0, 255]` images and normalises them by `mean` and `std`.

    The base of every family's image converter. `mean` and `std` are given
    on the `[0, 1]` scale, as torchvision and timm write them; the layer
    applies `(pixels / 255 - mean) / std` through keras-hub's `scale` and
    `offset`.

    With `crop_pct`, resizing is timm's and torchvision's evaluation
    transform: resize to `floor(image_size / crop_pct)`, then centre-crop
    `image_size`. With `crop_to_aspect_ratio=True` (timm's
    `crop_mode="center"`) the resize keeps the aspect ratio: for a square
    `image_size` the shorter side becomes `floor(size / crop_pct)` and the
    longer `int(that * long / short)`, as torchvision's `Resize(int)` does
    (timm's `ResizeKeepRatio` for a non-square one); with
    `crop_to_aspect_ratio=False` (timm's `crop_mode="squash"`) both sides
    are resized to `floor(side / crop_pct)`. The crop offsets round half to
    even, as torchvision's `CenterCrop` does, so the crop window is the same
    pixel for pixel; only the resampling kernel's arithmetic differs.
    torchvision's `Resize(256)` + `CenterCrop(224)` is `crop_pct=0.875`.

    Args:
        image_size: `(height, width)` to resize to, or None to keep the size.
        mean: per-channel mean, or None for no normalisation (then pixels
            are only scaled to `[0, 1]`).
        std: per-channel standard deviation.
        interpolation: resize interpolation ("bilinear", "bicubic", ...).
        crop_to_aspect_ratio: bool. Without `crop_pct`: centre-crop to the
            target aspect ratio before resizing instead of distorting. With
            it: keep the aspect ratio in the resize before the crop.
        antialias: bool. Antialias when downsampling.
        crop_pct: float in `(0, 1]`, the fraction of the resized image that
            the centre crop keeps, or None (default) to resize straight to
            `image_size`.
        **kwargs: base layer arguments.

    Example:
    ```python
    # torchvision's ImageNet evaluation: Resize(256), CenterCrop(224).
    converter = ResNetImageConverter(
        image_size=(224, 224), crop_pct=0.875, antialias=True
    )
    converter(np.random.randint(0, 256, size=(2, 300, 400, 3)))
    ```
    """

    def __init__(
        self,
        image_size=None,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        crop_to_aspect_ratio=True,
        antialias=False,
        crop_pct=None,
        **kwargs,
    ):
        if mean is None:
            scale, offset = 1.0 / 255.0, None
        else:
            if len(mean) != len(std):
                raise ValueError(
                    f"`mean` {mean} and `std` {std} must have one value per "
                    "channel each."
                )
            scale = tuple(1.0 / (255.0 * s) for s in std)
            offset = tuple(-m / s for m, s in zip(mean, std))
        kwargs.pop("scale", None)
        kwargs.pop("offset", None)
        super().__init__(
            image_size=image_size,
            scale=scale,
            offset=offset,
            interpolation=interpolation,
            crop_to_aspect_ratio=crop_to_aspect_ratio,
            antialias=antialias,
            **kwargs,
        )
        if crop_pct is not None:
            if not 0.0 < crop_pct <= 1.0:
                raise ValueError(
                    "`crop_pct` must be in (0, 1] (the fraction of the resized "
                    f"image the centre crop keeps); received {crop_pct}."
                )
            if image_size is None or self.pad_to_aspect_ratio:
                raise ValueError(
                    "`crop_pct` resizes to `image_size / crop_pct` and "
                    "centre-crops `image_size`: it needs an `image_size` and "
                    "cannot be combined with `pad_to_aspect_ratio`."
                )
        # keras-hub's own converters replace `resizing` the same way.
        self.resizing = CenterCropResizing.from_config(
            {**self.resizing.get_config(), "crop_pct": crop_pct}
        )
        self.mean = None if mean is None else tuple(mean)
        self.std = None if std is None else tuple(std)

    @property
    def crop_pct(self):
        """Settable: the centre crop's fraction of the resized image, or None."""
        return self.resizing.crop_pct

    @crop_pct.setter
    def crop_pct(self, value):
        self.resizing.crop_pct = value

    def get_config(self):
        config = super().get_config()
        config.pop("scale", None)
        config.pop("offset", None)
        config.update(
            {"mean": self.mean, "std": self.std, "crop_pct": self.crop_pct}
        )
        return config


class CenterCropResizing(keras.layers.Resizing):
    """`keras.layers.Resizing` that can resize past the target, then crop.

    With `crop_pct=None` it is `Resizing`; otherwise it resizes to
    `floor(size / crop_pct)` and centre-crops `(height, width)`, as
    described in `NormalizingImageConverter`. Sizes and crop offsets are
    computed as timm's and torchvision's transforms compute them (rounding
    half to even), in integer arithmetic that runs alike on Python ints and
    on the tensors of a TensorFlow graph whose image sizes are unknown.
    Bounding boxes are not moved by the crop and are refused.

    Args:
        height, width: int, the output size (the crop's).
        crop_pct: float in `(0, 1]` or None.
        **kwargs: `keras.layers.Resizing` arguments.
    """

    def __init__(self, height, width, crop_pct=None, **kwargs):
        super().__init__(height, width, **kwargs)
        self.crop_pct = crop_pct

    def _transform_images(self, images, transformation, interpolation):
        if self.crop_pct is None:
            return super()._transform_images(images, transformation, interpolation)
        shape = self.backend.shape(images)
        resized_height, resized_width = self._resized_size(
            shape[self.height_axis], shape[self.width_axis]
        )
        resized = self.backend.image.resize(
            images,
            size=(resized_height, resized_width),
            interpolation=interpolation,
            antialias=self.antialias,
            data_format=self.data_format,
        )
        start = [0] * len(images.shape)
        start[self.height_axis] = _half_to_even(resized_height - self.height)
        start[self.width_axis] = _half_to_even(resized_width - self.width)
        crop_shape = list(self.backend.shape(resized))
        crop_shape[self.height_axis] = self.height
        crop_shape[self.width_axis] = self.width
        cropped = self.backend.core.slice(resized, start, crop_shape)
        # As `Resizing`: integer images come back rounded, in their dtype.
        dtype = keras.backend.standardize_dtype(images.dtype)
        if keras.backend.standardize_dtype(cropped.dtype) == dtype:
            return cropped
        if keras.backend.is_int_dtype(dtype):
            info = np.iinfo(dtype)
            cropped = self.backend.numpy.clip(
                self.backend.numpy.round(cropped), info.min, info.max
            )
        return self.backend.cast(cropped, dtype)

    def _resized_size(self, height, width):
        """The size timm's evaluation transform resizes to, before the crop.

        In integer arithmetic, so that the same code runs on Python ints and
        on the int32 tensors of a TensorFlow graph with unknown image sizes.
        """
        scale_height = math.floor(self.height / self.crop_pct)
        scale_width = math.floor(self.width / self.crop_pct)
        if not self.crop_to_aspect_ratio:  # timm's crop_mode="squash".
            return scale_height, scale_width
        if scale_height == scale_width:
            # torchvision's `Resize(int)`: the shorter side to the size, the
            # longer to `int(size * long / short)` (no image side brings
            # that float quotient within rounding of an integer).
            width_is_short = width <= height
            return (
                _where(width_is_short, scale_height * height // width, scale_height),
                _where(width_is_short, scale_width, scale_width * width // height),
            )
        # timm's `ResizeKeepRatio`: both sides by the smaller of the two
        # ratios, rounded (timm rounds the float quotient; this the exact
        # one, which differs only on an exact half-pixel tie).
        height_is_tight = height * scale_width <= width * scale_height
        return (
            _where(
                height_is_tight,
                scale_height,
                _round_quotient(height * scale_width, width),
            ),
            _where(
                height_is_tight,
                _round_quotient(width * scale_height, height),
                scale_width,
            ),
        )

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        if self.crop_pct is not None:
            raise ValueError(
                "Bounding boxes are not moved with the `crop_pct` centre "
                "crop; use a converter with `crop_pct=None` for them."
            )
        return super().transform_bounding_boxes(
            bounding_boxes, transformation, training=training
        )

    def get_config(self):
        return {**super().get_config(), "crop_pct": self.crop_pct}


def _where(condition, if_true, if_false):
    """`if_true if condition else if_false`, for Python values or TF tensors."""
    if isinstance(condition, (bool, np.bool_)):
        return if_true if condition else if_false
    import tensorflow as tf  # Only a TensorFlow graph leaves sizes unknown.

    return tf.where(condition, if_true, if_false)


def _round_quotient(numerator, denominator):
    """`round(numerator / denominator)` of positive ints, half to even."""
    quotient = numerator // denominator
    twice_remainder = 2 * (numerator - quotient * denominator)
    return _where(
        twice_remainder == denominator,
        quotient + quotient % 2,
        _where(twice_remainder > denominator, quotient + 1, quotient),
    )


def _half_to_even(value):
    """`round(value / 2)` of an int, half to even, as torchvision's crop."""
    half = value // 2
    return half + (value % 2) * (half % 2)
