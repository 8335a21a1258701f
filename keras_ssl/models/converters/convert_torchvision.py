"""torchvision ResNets (and timm's plain ResNets, which share the layout).

He et al. 2016, "Deep Residual Learning for Image Recognition".
"""

from keras_ssl.models.converters.common import assemble
from keras_ssl.models.converters.common import count_indexed
from keras_ssl.models.converters.common import require
from keras_ssl.models.image_converter import IMAGENET_MEAN
from keras_ssl.models.image_converter import IMAGENET_STD
from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.resnet.resnet_image_classifier import (
    ResNetImageClassifier,
)
from keras_ssl.models.resnet.resnet_image_classifier_preprocessor import (
    ResNetImageClassifierPreprocessor,
)
from keras_ssl.models.resnet.resnet_image_converter import (
    ResNetImageConverter,
)
from keras_ssl.models.resnet.resnet_torchvision import (
    load_torchvision_state_dict,
)

# (blocks per stage, bottleneck) -> depth of torchvision's ResNets.
DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}
DEPTHS_BY_NAME = {f"resnet{depth}": depth for depth in DEPTHS.values()}
# torchvision's evaluation transform of its ResNet weights,
# `ImageClassification(crop_size=224, resize_size=256)`: bilinear, antialiased
# Resize(256) of the shorter side, CenterCrop(224) (crop_pct 224 / 256),
# ImageNet statistics. (ResNet-50/101/152 `IMAGENET1K_V2` resize to 232;
# a state dict does not say which weights it holds.)
TORCHVISION_PREPROCESSING = {
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "interpolation": "bilinear",
    "crop_to_aspect_ratio": True,
    "antialias": True,
    "crop_pct": 224 / 256,
}


def convert(
    state_dict,
    architecture=None,
    task=None,
    num_classes=None,
    preprocessing=None,
    image_shape=None,
    where="torchvision ResNet state dict",
):
    """A torchvision-layout ResNet state dict -> a keras_ssl ResNet.

    Args:
        state_dict: the parameters and BatchNorm buffers (numpy arrays).
        architecture: `"resnet18"` ... `"resnet152"`; checked against the
            depth the weights show, which is used when None.
        task, num_classes: see `convert_checkpoint`.
        preprocessing: `mean`, `std`, `interpolation`, `crop_pct`, ... of
            the source (torchvision's by default).
        image_shape: `(height, width, channels)` the backbone is built for
            and the image converter resizes to; None for any size, resized
            to 224x224.
        where: what the state dict is, for error messages.

    Returns:
        `(model, preprocessor)`: the converted `ResNetBackbone` or
        `ResNetImageClassifier` and the source's preprocessing.
    """
    depth = resnet_depth(state_dict, where)
    if architecture is not None and DEPTHS_BY_NAME.get(architecture) != depth:
        raise ValueError(
            f"`architecture='{architecture}'` does not match the {where}, "
            f"whose blocks make a ResNet-{depth}."
        )
    if image_shape is None:
        backbone = ResNetBackbone.imagenet(depth=depth)
        image_size = (224, 224)
    else:
        backbone = ResNetBackbone.imagenet(depth=depth, image_shape=tuple(image_shape))
        image_size = tuple(image_shape[:2])
    converter = ResNetImageConverter(
        image_size=image_size,
        **{**TORCHVISION_PREPROCESSING, **(preprocessing or {})},
    )
    head = state_dict.get("fc.weight")
    return assemble(
        backbone,
        ResNetImageClassifier,
        ResNetImageClassifierPreprocessor(converter),
        load_torchvision_state_dict,
        state_dict,
        head_classes=None if head is None else head.shape[0],
        task=task,
        num_classes=num_classes,
    )


def resnet_depth(state_dict, where):
    """Depth of an ImageNet-style ResNet from its parameter names."""
    stem = require(state_dict, "conv1.weight", where)
    if tuple(stem.shape[1:]) != (3, 7, 7):
        raise ValueError(
            f"The {where} has a {tuple(stem.shape)} stem convolution "
            "'conv1.weight'; an ImageNet ResNet has a 7x7 one over 3 "
            "channels (CIFAR ResNets load with `load_torchvision_state_dict` "
            "into `ResNetBackbone.cifar(depth)`)."
        )
    blocks = tuple(
        count_indexed(state_dict, f"layer{stage}.{{}}.conv1.weight")
        for stage in (1, 2, 3, 4)
    )
    bottleneck = "layer1.0.conv3.weight" in state_dict
    if (blocks, bottleneck) not in DEPTHS:
        raise ValueError(
            f"The {where} has {blocks} "
            f"{'bottleneck' if bottleneck else 'basic'} blocks per stage, "
            "which is none of torchvision's ResNet-18/34/50/101/152."
        )
    return DEPTHS[(blocks, bottleneck)]
