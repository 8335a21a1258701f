"""Backbones the benchmark times, with their PyTorch references.

Each model builds our backbone and, where one exists, the PyTorch reference of
the same configuration; `quick` shrinks both to 2 layers (2 residual stages'
worth of blocks for the ResNets).
"""

import timm
import torchvision

from keras_ssl.models import CRATEBackbone
from keras_ssl.models import CRATEImageClassifier
from keras_ssl.models import ViTBackbone
from keras_ssl.models import ViTImageClassifier
from keras_ssl.models.resnet import ResNetBackbone
from keras_ssl.models.resnet import ResNetImageClassifier
from tests.torch_references import ReferenceCRATE

IMAGE_SIZE = 32
NUM_CLASSES = 10
QUICK_LAYERS = 2  # Transformer depth in `--quick` mode.


def tiny_patch4_builder(backbone_cls, classifier_cls):
    """Builder of a token backbone's "tiny" size with 4x4 patches."""

    def build(quick):
        layers = {"num_layers": QUICK_LAYERS} if quick else {}
        backbone = backbone_cls.from_size(
            "tiny",
            image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
            patch_size=4,
            **layers,
        )
        return backbone, classifier_cls

    return build


def build_vit_t4_reference(quick):
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=IMAGE_SIZE,
        patch_size=4,
        num_classes=NUM_CLASSES,
        depth=QUICK_LAYERS if quick else 12,
    )


def build_crate_t4_reference(quick):
    return ReferenceCRATE(
        image_size=IMAGE_SIZE,
        patch=4,
        dim=384,
        depth=QUICK_LAYERS if quick else 12,
        heads=6,
        dim_head=64,
        classes=NUM_CLASSES,
    )


def cifar_resnet_builder(depth):
    def build(quick):
        backbone = ResNetBackbone.cifar(
            depth=8 if quick else depth, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)
        )
        return backbone, ResNetImageClassifier

    return build


def build_resnet18(quick):
    # Quick mode: one basic block per stage (a "ResNet-10").
    blocks = [1, 1, 1, 1] if quick else [2, 2, 2, 2]
    backbone = ResNetBackbone(
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks,
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        stem_type="imagenet",
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    )
    return backbone, ResNetImageClassifier


def build_resnet18_reference(quick):
    blocks = [1, 1, 1, 1] if quick else [2, 2, 2, 2]
    return torchvision.models.resnet.ResNet(
        torchvision.models.resnet.BasicBlock, blocks, num_classes=NUM_CLASSES
    )


# name -> (label, our builder, reference label, reference builder or None).
MODELS = {
    "vit_t4": (
        "ViT-T/4",
        tiny_patch4_builder(ViTBackbone, ViTImageClassifier),
        "timm",
        build_vit_t4_reference,
    ),
    "crate_t4": (
        "CRATE-T/4",
        tiny_patch4_builder(CRATEBackbone, CRATEImageClassifier),
        "PyTorch CRATE reference",
        build_crate_t4_reference,
    ),
    "resnet20": ("ResNet-20 (CIFAR)", cifar_resnet_builder(20), None, None),
    "resnet110": ("ResNet-110 (CIFAR)", cifar_resnet_builder(110), None, None),
    "resnet18": (
        "ResNet-18 (ImageNet stem)",
        build_resnet18,
        "torchvision",
        build_resnet18_reference,
    ),
}
