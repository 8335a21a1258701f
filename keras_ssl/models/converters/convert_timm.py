"""timm checkpoints: ViT / DeiT and ResNet.

Wightman 2019, "PyTorch Image Models". A timm model on the Hugging Face Hub
is a `config.json` naming the `architecture` (plus the `pretrained_cfg`
with its preprocessing) and `model.safetensors`.
"""

import warnings

from keras_ssl.models.converters import convert_torchvision as torchvision_converter
from keras_ssl.models.converters.common import assemble
from keras_ssl.models.converters.common import count_indexed
from keras_ssl.models.converters.common import heads_from_name
from keras_ssl.models.converters.common import require
from keras_ssl.models.converters.common import square_grid
from keras_ssl.models.image_converter import IMAGENET_MEAN
from keras_ssl.models.image_converter import IMAGENET_STD
from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_checkpoint import check_no_distillation_token
from keras_ssl.models.vit.vit_checkpoint import load_timm_vit_state_dict
from keras_ssl.models.vit.vit_image_classifier import ViTImageClassifier
from keras_ssl.models.vit.vit_image_classifier_preprocessor import (
    ViTImageClassifierPreprocessor,
)
from keras_ssl.models.vit.vit_image_converter import ViTImageConverter

# timm's `resolve_data_config` default when a cfg names no crop.
DEFAULT_CROP_PCT = 0.875
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
# Heads of timm's named ViT / DeiT sizes (the weights fix only their width).
VIT_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16}


def is_vit(architecture):
    return architecture.startswith(("vit_", "deit_"))


def convert(
    state_dict,
    config=None,
    architecture=None,
    task=None,
    num_classes=None,
    num_heads=None,
    image_shape=None,
    layer_norm_epsilon=1e-6,
    preprocessing=None,
):
    """A timm ViT / DeiT or ResNet state dict -> a keras_ssl model.

    Args:
        state_dict: the timm model's parameters (numpy arrays).
        config: the timm `config.json` of a Hub model, or None.
        architecture: timm model name such as `"vit_small_patch16_224"`
            or `"resnet50"`; read from `config` when given, otherwise
            guessed from the parameter names.
        task, num_classes: see `convert_checkpoint`.
        num_heads: ViT heads; read from the architecture's size otherwise.
        image_shape: ViT input shape; the position embedding's otherwise
            (positions are resampled to another shape).
        layer_norm_epsilon: float. timm's ViTs use 1e-6.
        preprocessing: `NormalizingImageConverter` arguments overriding
            those of the `pretrained_cfg`.

    Returns:
        `(model, preprocessor)`: the converted backbone or classifier and
        the source's preprocessing.
    """
    config = config or {}
    architecture = architecture or config.get("architecture")
    if architecture is None:
        architecture = "vit" if "patch_embed.proj.weight" in state_dict else "resnet"
    preprocessing = {
        **_preprocessing(config.get("pretrained_cfg", {}), architecture),
        **(preprocessing or {}),
    }
    if architecture.startswith("resnet"):
        check_resnet_architecture(architecture)
        return torchvision_converter.convert(
            state_dict,
            architecture=architecture,
            task=task,
            num_classes=num_classes,
            preprocessing=preprocessing,
            image_shape=image_shape,
            where=f"timm {architecture} state dict",
        )
    if not is_vit(architecture) and architecture != "vit":
        raise ValueError(
            f"timm architecture '{architecture}' is not supported. keras_ssl "
            "converts timm ViT / DeiT (`vit_*`, `deit_*`) and plain ResNets "
            "(`resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`)."
        )
    global_pool = (config.get("model_args") or {}).get(
        "global_pool", config.get("global_pool", "token")
    )
    if global_pool != "token":
        raise ValueError(
            f"timm model '{architecture}' pools with "
            f"global_pool='{global_pool}'; keras_ssl's ViT classifier "
            "converts class-token models only."
        )
    # timm's own Hub loader passes `model_args` to `create_model`.
    model_args = config.get("model_args") or {}
    backbone_kwargs = vit_config(
        state_dict,
        architecture,
        num_heads=num_heads or model_args.get("num_heads"),
        where="timm ViT state dict",
    )
    backbone_kwargs["layer_norm_epsilon"] = layer_norm_epsilon
    if image_shape is not None:
        backbone_kwargs["image_shape"] = tuple(image_shape)
    backbone = ViTBackbone(**backbone_kwargs)
    # The converter resizes to what the backbone takes, whatever timm's
    # `input_size` says.
    preprocessing["image_size"] = backbone_kwargs["image_shape"][:2]
    preprocessor = ViTImageClassifierPreprocessor(ViTImageConverter(**preprocessing))
    head = state_dict.get("head.weight")
    return assemble(
        backbone,
        ViTImageClassifier,
        preprocessor,
        load_timm_vit_state_dict,
        state_dict,
        head_classes=None if head is None else head.shape[0],
        task=task,
        num_classes=num_classes,
    )


def vit_config(state_dict, architecture=None, num_heads=None, where="ViT state dict"):
    """`ViTBackbone` arguments from a timm-layout ViT state dict."""
    check_no_distillation_token(state_dict)
    projection = require(state_dict, "patch_embed.proj.weight", where)
    hidden_dim, channels, patch_size, _ = projection.shape
    positions = require(state_dict, "pos_embed", where).shape[1] - 1
    side = square_grid(positions, where) * patch_size
    num_layers = count_indexed(state_dict, "blocks.{}.norm1.weight")
    if num_heads is None:
        num_heads = heads_from_name(architecture, VIT_HEADS, where)
    return {
        "image_shape": (side, side, channels),
        "patch_size": patch_size,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "mlp_dim": require(state_dict, "blocks.0.mlp.fc1.weight", where).shape[0],
    }


def check_resnet_architecture(architecture):
    if architecture not in torchvision_converter.DEPTHS_BY_NAME:
        raise ValueError(
            f"timm ResNet '{architecture}' is not supported: keras_ssl's "
            "ResNetBackbone has torchvision's layout, which timm's plain "
            f"{', '.join(torchvision_converter.DEPTHS_BY_NAME)} share (not "
            "the deep-stem `resnet*d`, `resnetv2_*` or other variants)."
        )


def _preprocessing(pretrained_cfg, architecture):
    """`NormalizingImageConverter` arguments from a timm `pretrained_cfg`.

    What timm's `resolve_data_config` + `create_transform` evaluate with:
    the cfg's mean, std, interpolation, `crop_pct` (timm's default 0.875
    without one) and `crop_mode` ("center" keeps the aspect ratio,
    "squash" does not). Without a cfg (a bare state dict), timm's defaults
    for the family: the "Inception" statistics 0.5 / 0.5 for `vit_*`,
    ImageNet's otherwise.
    """
    inception = architecture.startswith("vit_")
    default_mean = INCEPTION_MEAN if inception else IMAGENET_MEAN
    default_std = INCEPTION_STD if inception else IMAGENET_STD
    crop_mode = pretrained_cfg.get("crop_mode") or "center"
    if crop_mode not in ("center", "squash"):
        warnings.warn(
            f"timm's crop_mode='{crop_mode}' (resize the longer side and pad) "
            "is not supported; the image converter centre-crops as "
            "crop_mode='center' does."
        )
    return {
        "mean": tuple(pretrained_cfg.get("mean", default_mean)),
        "std": tuple(pretrained_cfg.get("std", default_std)),
        "interpolation": pretrained_cfg.get("interpolation", "bicubic"),
        "crop_to_aspect_ratio": crop_mode != "squash",
        "antialias": True,
        "crop_pct": pretrained_cfg.get("crop_pct") or DEFAULT_CROP_PCT,
    }
