"""timm ViT / DeiT state dicts -> `ViTBackbone` / `ViTImageClassifier`."""

import numpy as np

from keras_ssl.models.state_dict import StateDictCopier
from keras_ssl.models.token_image_classifier import TokenImageClassifier


def load_timm_vit_state_dict(model, state_dict):
    """Copies a timm `VisionTransformer` state dict into a keras_ssl ViT.

    Names as timm writes them: `patch_embed.proj`, `cls_token`, `pos_embed`,
    `blocks.{i}.norm1`, `blocks.{i}.attn.qkv`, `blocks.{i}.attn.proj`,
    `blocks.{i}.norm2`, `blocks.{i}.mlp.fc1`, `blocks.{i}.mlp.fc2`, `norm`,
    `head`. Position embeddings trained at another grid are resampled as
    timm resamples them.

    Args:
        model: a `ViTBackbone` or `ViTImageClassifier` (the head is loaded
            into a classifier; a backbone ignores it).
        state_dict: mapping of names to arrays or torch tensors.
    """
    check_no_distillation_token(state_dict)
    is_classifier = isinstance(model, TokenImageClassifier)
    backbone = model.backbone if is_classifier else model
    copier = StateDictCopier(state_dict, source="timm ViT state dict")
    projection = backbone.patch_embedding.projection
    # [out, in, kh, kw] -> [kh, kw, in, out]
    copier.assign(
        projection.kernel,
        "patch_embed.proj.weight",
        lambda value: np.transpose(value, (2, 3, 1, 0)),
    )
    copier.assign(projection.bias, "patch_embed.proj.bias")
    tokens = backbone.token_embedding
    copier.assign(tokens.class_token, "cls_token")
    copier.assign(
        tokens.position_embedding,
        "pos_embed",
        lambda value: (
            value
            if value.shape == tuple(tokens.position_embedding.shape)
            else tokens.resample_positions(value)
        ),
    )
    for i, block in enumerate(backbone.blocks):
        prefix = f"blocks.{i}"
        copier.assign_layer_norm(block.norm1, f"{prefix}.norm1")
        copier.assign_dense(block.attention.qkv, f"{prefix}.attn.qkv")
        copier.assign_dense(
            block.attention.output_projection, f"{prefix}.attn.proj"
        )
        copier.assign_layer_norm(block.norm2, f"{prefix}.norm2")
        copier.assign_dense(block.mlp_in, f"{prefix}.mlp.fc1")
        copier.assign_dense(block.mlp_out, f"{prefix}.mlp.fc2")
    copier.assign_layer_norm(backbone.final_norm, "norm")
    if is_classifier:
        copier.assign_dense(model.output_dense, "head")
        copier.check_all_used()
    else:
        copier.check_all_used(ignore=("head.",))


def check_no_distillation_token(state_dict):
    """Refuses DeiT's distilled variant, whose extra token we do not model."""
    if "dist_token" in state_dict:
        raise ValueError(
            "This is a DeiT checkpoint with a distillation token "
            "(`dist_token`), which keras_ssl's ViT does not support. Use the "
            "DeiT variant without distillation (e.g. `deit_small_patch16_224`)."
        )
