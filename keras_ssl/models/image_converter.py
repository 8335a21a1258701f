import keras
from keras_hub.layers import ImageConverter

from keras_ssl.hub.presets import PresetMixin

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

    Args:
        image_size: `(height, width)` to resize to, or None to keep the size.
        mean: per-channel mean, or None for no normalisation (then pixels
            are only scaled to `[0, 1]`).
        std: per-channel standard deviation.
        interpolation: resize interpolation ("bilinear", "bicubic", ...).
        crop_to_aspect_ratio: bool. Centre-crop to the target aspect ratio
            before resizing instead of distorting.
        antialias: bool. Antialias when downsampling.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        image_size=None,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        crop_to_aspect_ratio=True,
        antialias=False,
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
        self.mean = None if mean is None else tuple(mean)
        self.std = None if std is None else tuple(std)

    def get_config(self):
        config = super().get_config()
        config.pop("scale", None)
        config.pop("offset", None)
        config.update({"mean": self.mean, "std": self.std})
        return config
