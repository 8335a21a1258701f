"""timm ViT / DeiT state dicts <-> `ViTBackbone` / `ViTImageClassifier`."""

from keras_ssl.models.state_dict import CONV_AXES
from keras_ssl.models.state_dict import StateDictCopier
from keras_ssl.models.state_dict import dense_entries
from keras_ssl.models.state_dict import layer_norm_entries
from keras_ssl.models.state_dict import position_embedding_transform
from keras_ssl.models.token_image_classifier import TokenImageClassifier


def timm_vit_entries(backbone, head=None):
    """The timm `VisionTransformer` layout of a keras_ssl ViT.

    Names as timm writes them: `patch_embed.proj`, `cls_token`, `pos_embed`,
    `blocks.{i}.norm1`, `blocks.{i}.attn.qkv`, `blocks.{i}.attn.proj`,
    `blocks.{i}.norm2`, `blocks.{i}.mlp.fc1`, `blocks.{i}.mlp.fc2`, `norm`,
    `head`. Used by `load_timm_vit_state_dict` and by `export_checkpoint`.

    Args:
        backbone: a `ViTBackbone`.
        head: the classifier's `Dense` head, or None for the backbone only.

    Returns:
        list of `(timm name, variable, axes)` (see `keras_ssl.models.state_dict`).
    """
    projection = backbone.patch_embedding.projection
    tokens = backbone.token_embedding
    entries = [
        ("patch_embed.proj.weight", projection.kernel, CONV_AXES),
        ("patch_embed.proj.bias", projection.bias, None),
        ("cls_token", tokens.class_token, None),
        ("pos_embed", tokens.position_embedding, None),
    ]
    for i, block in enumerate(backbone.blocks):
        prefix = f"blocks.{i}"
        entries += layer_norm_entries(f"{prefix}.norm1", block.norm1)
        entries += dense_entries(f"{prefix}.attn.qkv", block.attention.qkv)
        entries += dense_entries(
            f"{prefix}.attn.proj", block.attention.output_projection
        )
        entries += layer_norm_entries(f"{prefix}.norm2", block.norm2)
        entries += dense_entries(f"{prefix}.mlp.fc1", block.mlp_in)
        entries += dense_entries(f"{prefix}.mlp.fc2", block.mlp_out)
    entries += layer_norm_entries("norm", backbone.final_norm)
    if head is not None:
        entries += dense_entries("head", head)
    return entries


def load_timm_vit_state_dict(model, state_dict):
    """Copies a timm `VisionTransformer` state dict into a keras_ssl ViT.

    The layout is `timm_vit_entries`'. Position embeddings trained at
    another grid are resampled as timm resamples them.

    Args:
        model: a `ViTBackbone` or `ViTImageClassifier` (the head is loaded
            into a classifier; a backbone ignores it).
        state_dict: mapping of names to arrays or torch tensors.
    """
    check_no_distillation_token(state_dict)
    is_classifier = isinstance(model, TokenImageClassifier)
    backbone = model.backbone if is_classifier else model
    copier = StateDictCopier(state_dict, source="timm ViT state dict")
    copier.assign_entries(
        timm_vit_entries(backbone, model.output_dense if is_classifier else None),
        transforms={
            "pos_embed": position_embedding_transform(backbone.token_embedding)
        },
    )
    copier.check_all_used(ignore=() if is_classifier else ("head.",))


def check_no_distillation_token(state_dict):
    """Refuses DeiT's distilled variant, whose extra token we do not model."""
    if "dist_token" in state_dict:
        raise ValueError(
            "This is a DeiT checkpoint with a distillation token "
            "(`dist_token`), which keras_ssl's ViT does not support. Use the "
            "DeiT variant without distillation (e.g. `deit_small_patch16_224`)."
        )
