"""Official CRATE and CRATE-alpha state dicts -> keras_ssl CRATE models."""

import numpy as np

from keras_ssl.models.state_dict import StateDictCopier
from keras_ssl.models.token_image_classifier import TokenImageClassifier

# The ImageNet-21k CRATE demo models end in LayerNorm -> Linear(dim, dim)
# (`mlp_head.0`, `mlp_head.1`) -> Linear(dim, classes) (`head`).
TWO_LAYER_HEAD_KEY = "head.weight"


def load_crate_state_dict(model, state_dict):
    """Copies an official CRATE or CRATE-alpha state dict into a keras_ssl model.

    Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction";
    Yang et al. 2024, "Scaling White-Box Transformers for Vision".

    The layout is the reference implementation's: `cls_token`,
    `pos_embedding`, the patch embedding (`to_patch_embedding.{1,2,3}` for
    CRATE, the convolution `conv1` for CRATE-alpha),
    `transformer.layers.{i}.0` (MSSA), `transformer.layers.{i}.1` (ISTA:
    `fn.weight`; CRATE-alpha's overcomplete step: `fn.D`, `fn.D1`) and
    `mlp_head.{0,1}`. The backbone's `variant` decides which layout is
    expected. Position embeddings trained at another grid are resampled.

    The ImageNet-21k CRATE demo checkpoints end in LayerNorm ->
    Linear(dim, dim) -> `head` = Linear(dim, classes) with nothing between
    the two Linear layers, so a classifier gets their product as its single
    Linear head (exact up to float rounding); a backbone ignores both.

    Args:
        model: a `CRATEBackbone` or `CRATEImageClassifier`. A backbone takes
            the head's LayerNorm as its `final_norm` and ignores the Linear
            layers.
        state_dict: mapping of names to arrays or torch tensors.

    Raises:
        ValueError: naming the first parameter that is missing, has the
            wrong shape, or is left over.

    Example:
    ```python
    state_dict = torch.load("crate_base.pth", weights_only=True)
    classifier = CRATEImageClassifier(
        CRATEBackbone.from_size("base"), num_classes=1000
    )
    load_crate_state_dict(classifier, state_dict)
    ```
    """
    is_classifier = isinstance(model, TokenImageClassifier)
    backbone = model.backbone if is_classifier else model
    is_alpha = backbone.variant == "crate_alpha"
    copier = StateDictCopier(
        state_dict,
        source="CRATE-alpha state dict" if is_alpha else "CRATE state dict",
    )
    patches = backbone.patch_embedding
    if is_alpha:
        # [out, in, kh, kw] -> [kh, kw, in, out]
        copier.assign(
            patches.projection.kernel,
            "conv1.weight",
            lambda value: np.transpose(value, (2, 3, 1, 0)),
        )
        copier.assign(patches.projection.bias, "conv1.bias")
    else:
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
            block.attention.output_projection,
            f"{prefix}.0.fn.to_out.0",
            bias=not is_alpha,
        )
        copier.assign_layer_norm(block.norm2, f"{prefix}.1.norm")
        if is_alpha:
            copier.assign(block.dictionary, f"{prefix}.1.fn.D")
            copier.assign(block.decoder, f"{prefix}.1.fn.D1")
        else:
            copier.assign(block.dictionary, f"{prefix}.1.fn.weight")
    copier.assign_layer_norm(backbone.final_norm, "mlp_head.0")
    two_layer_head = TWO_LAYER_HEAD_KEY in state_dict
    if not is_classifier:
        copier.check_all_used(ignore=("mlp_head.1.", "head."))
    elif two_layer_head:
        dense = model.output_dense
        hidden_w, hidden_b = copier.get("mlp_head.1.weight"), copier.get(
            "mlp_head.1.bias"
        )
        out_w, out_b = copier.get("head.weight"), copier.get("head.bias")
        folded = {
            "head.weight": out_w.astype("float64") @ hidden_w.astype("float64"),
            "head.bias": out_w.astype("float64") @ hidden_b.astype("float64")
            + out_b,
        }
        head = StateDictCopier(folded, source=copier.source)
        head.assign_dense(dense, "head")
        copier.check_all_used()
    else:
        copier.assign_dense(model.output_dense, "mlp_head.1")
        copier.check_all_used()
