"""Official CRATE state dicts -> `CRATEBackbone` / `CRATEImageClassifier`."""

from keras_ssl.models.state_dict import StateDictCopier
from keras_ssl.models.token_image_classifier import TokenImageClassifier


def load_crate_state_dict(model, state_dict):
    """Copies an official CRATE state dict into a keras_ssl CRATE model.

    The layout is the reference implementation's (`cls_token`,
    `pos_embedding`, `to_patch_embedding.{1,2,3}`,
    `transformer.layers.{i}.{0,1}`, `mlp_head.{0,1}`). Position embeddings
    trained at another grid are resampled.

    Args:
        model: a `CRATEBackbone` or `CRATEImageClassifier`. A backbone takes
            the head's LayerNorm as its `final_norm` and ignores the Linear.
        state_dict: mapping of names to arrays or torch tensors.
    """
    is_classifier = isinstance(model, TokenImageClassifier)
    backbone = model.backbone if is_classifier else model
    copier = StateDictCopier(state_dict, source="CRATE state dict")
    patches = backbone.patch_embedding
    copier.assign_layer_norm(patches.patch_norm, "to_patch_embedding.1")
    copier.assign_dense(patches.projection, "to_patch_embedding.2")
    copier.assign_layer_norm(patches.token_norm, "to_patch_embedding.3")
    tokens = backbone.token_embedding
    copier.assign(tokens.class_token, "cls_token")
    copier.assign(
        tokens.position_embedding,
        "pos_embedding",
        lambda value: (
            value
            if value.shape == tuple(tokens.position_embedding.shape)
            else tokens.resample_positions(value)
        ),
    )
    for i, block in enumerate(backbone.blocks):
        prefix = f"transformer.layers.{i}"
        copier.assign_layer_norm(block.norm1, f"{prefix}.0.norm")
        copier.assign_dense(block.attention.qkv, f"{prefix}.0.fn.qkv", bias=False)
        copier.assign_dense(
            block.attention.output_projection, f"{prefix}.0.fn.to_out.0"
        )
        copier.assign_layer_norm(block.norm2, f"{prefix}.1.norm")
        copier.assign(block.dictionary, f"{prefix}.1.fn.weight")
    copier.assign_layer_norm(backbone.final_norm, "mlp_head.0")
    if is_classifier:
        copier.assign_dense(model.output_dense, "mlp_head.1")
        copier.check_all_used()
    else:
        copier.check_all_used(ignore=("mlp_head.1.",))
