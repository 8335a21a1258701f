"""transformers ViT checkpoints (`google/vit-*`), renamed to timm's layout.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words". transformers
splits the fused `qkv` projection into `query`, `key` and `value` and
names the layers differently; the maths is timm's (with the layer-norm
epsilon of the config, 1e-12 for Google's checkpoints).
"""

import numpy as np

from keras_ssl.models.converters.common import PIL_INTERPOLATION
from keras_ssl.models.converters.common import assemble
from keras_ssl.models.converters.common import count_indexed
from keras_ssl.models.converters.convert_timm import vit_config
from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_checkpoint import load_timm_vit_state_dict
from keras_ssl.models.vit.vit_image_classifier import ViTImageClassifier
from keras_ssl.models.vit.vit_image_classifier_preprocessor import (
    ViTImageClassifierPreprocessor,
)
from keras_ssl.models.vit.vit_image_converter import ViTImageConverter

_RENAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
_BLOCK_RENAMES = {
    "layernorm_before": "norm1",
    "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
# ViTModel's pooler (Linear + tanh on the class token) is a pre-training
# head, not part of the backbone; keras-hub drops it too.
_IGNORED_PREFIXES = ("pooler.",)


def to_timm_layout(state_dict, config):
    """Renames a transformers ViT state dict to timm's names (numpy)."""
    arrays = {
        (name[len("vit."):] if name.startswith("vit.") else name): value
        for name, value in state_dict.items()
        if not name.replace("vit.", "", 1).startswith(_IGNORED_PREFIXES)
    }
    renamed = {}
    num_layers = count_indexed(arrays, "encoder.layer.{}.layernorm_before.weight")
    for i in range(num_layers):
        prefix = f"encoder.layer.{i}"
        for part in ("weight", "bias"):
            names = [
                f"{prefix}.attention.attention.{p}.{part}"
                for p in ("query", "key", "value")
            ]
            if all(name in arrays for name in names):
                renamed[f"blocks.{i}.attn.qkv.{part}"] = np.concatenate(
                    [arrays.pop(name) for name in names], axis=0
                )
        for old, new in _BLOCK_RENAMES.items():
            for part in ("weight", "bias"):
                key = f"{prefix}.{old}.{part}"
                if key in arrays:
                    renamed[f"blocks.{i}.{new}.{part}"] = arrays.pop(key)
    for old, new in _RENAMES.items():
        if old in arrays:
            renamed[new] = arrays.pop(old)
    # Whatever is left keeps its name, so the loader reports it.
    renamed.update(arrays)
    return renamed


def convert(
    state_dict,
    config,
    preprocessor_config=None,
    task=None,
    num_classes=None,
    image_shape=None,
):
    """A transformers ViT checkpoint -> a keras_ssl ViT.

    Args:
        state_dict: `ViTModel` or `ViTForImageClassification` parameters.
        config: the model's `config.json`.
        preprocessor_config: its `preprocessor_config.json`, or None.
        task, num_classes, image_shape: see `convert_checkpoint`.

    Returns:
        `(model, preprocessor)`: the converted backbone or classifier and
        the source's preprocessing.
    """
    if config.get("model_type") != "vit":
        raise ValueError(
            f"transformers model_type '{config.get('model_type')}' is not "
            "supported; keras_ssl converts ViT (`google/vit-*`) checkpoints."
        )
    if config.get("hidden_act", "gelu") != "gelu" or not config.get(
        "qkv_bias", True
    ):
        raise ValueError(
            "This transformers ViT uses hidden_act="
            f"'{config.get('hidden_act')}' / qkv_bias="
            f"{config.get('qkv_bias')}; keras_ssl's ViT has exact GELU and "
            "a qkv bias."
        )
    state_dict = to_timm_layout(state_dict, config)
    backbone_kwargs = vit_config(
        state_dict,
        num_heads=config["num_attention_heads"],
        where="transformers ViT state dict",
    )
    backbone_kwargs["layer_norm_epsilon"] = config.get("layer_norm_eps", 1e-12)
    if image_shape is not None:
        backbone_kwargs["image_shape"] = tuple(image_shape)
    backbone = ViTBackbone(**backbone_kwargs)
    preprocessing = _preprocessing(preprocessor_config or {})
    preprocessing["image_size"] = backbone_kwargs["image_shape"][:2]
    preprocessor = ViTImageClassifierPreprocessor(
        ViTImageConverter(**preprocessing)
    )
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


def _preprocessing(processor):
    """`ViTImageProcessor` settings: resize (no crop), rescale, normalise."""
    mean = processor.get("image_mean", (0.5, 0.5, 0.5))
    std = processor.get("image_std", (0.5, 0.5, 0.5))
    if not processor.get("do_normalize", True):
        mean = std = None
    return {
        "mean": None if mean is None else tuple(mean),
        "std": None if std is None else tuple(std),
        "interpolation": PIL_INTERPOLATION.get(
            processor.get("resample", 2), "bilinear"
        ),
        # ViTImageProcessor resizes to the full size, without cropping.
        "crop_to_aspect_ratio": False,
        "antialias": True,
    }
