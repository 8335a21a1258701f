"""Official CRATE and CRATE-alpha state dicts <-> keras_ssl CRATE models."""

from keras_ssl.models.state_dict import CONV_AXES
from keras_ssl.models.state_dict import StateDictCopier
from keras_ssl.models.state_dict import dense_entries
from keras_ssl.models.state_dict import layer_norm_entries
from keras_ssl.models.state_dict import position_embedding_transform
from keras_ssl.models.token_image_classifier import TokenImageClassifier

# The ImageNet-21k CRATE demo models end in LayerNorm -> Linear(dim, dim)
# (`mlp_head.0`, `mlp_head.1`) -> Linear(dim, classes) (`head`).
TWO_LAYER_HEAD_KEY = "head.weight"


def load_crate_state_dict(model, state_dict):
    """Copies an official CRATE or CRATE-alpha state dict into a keras_ssl model.

    Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction";
    Yang et al. 2024, "Scaling White-Box Transformers for Vision".

    The layout is the reference implementation's (`crate_entries`):
    `cls_token`, `pos_embedding`, the patch embedding
    (`to_patch_embedding.{1,2,3}` for CRATE, the convolution `conv1` for
    CRATE-alpha), `transformer.layers.{i}.0` (MSSA),
    `transformer.layers.{i}.1` (ISTA: `fn.weight`; CRATE-alpha's
    overcomplete step: `fn.D`, `fn.D1`) and `mlp_head.{0,1}`. The
    backbone's `variant` decides which layout is expected. Position
    embeddings trained at another grid are resampled.

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
    two_layer_head = TWO_LAYER_HEAD_KEY in state_dict
    # The demo models' two Linear layers are folded into one below.
    single_head = (
        model.output_dense if is_classifier and not two_layer_head else None
    )
    copier.assign_entries(
        crate_entries(backbone, single_head),
        transforms={
            "pos_embedding": position_embedding_transform(
                backbone.token_embedding
            )
        },
    )
    if not is_classifier:
        copier.check_all_used(ignore=("mlp_head.1.", "head."))
        return
    if two_layer_head:
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
        head.assign_entries(dense_entries("head", model.output_dense))
    copier.check_all_used()


def crate_entries(backbone, head=None):
    """The official CRATE (or CRATE-alpha) layout of a keras_ssl CRATE.

    `backbone.variant` decides the layout. The backbone's `final_norm` is
    the head's LayerNorm `mlp_head.0`; a classifier's single Linear head is
    `mlp_head.1`. Used by `load_crate_state_dict` and `export_checkpoint`.

    Args:
        backbone: a `CRATEBackbone`.
        head: the classifier's `Dense` head, or None for the backbone only.

    Returns:
        list of `(official name, variable, axes)` (see
        `keras_ssl.models.state_dict`).
    """
    is_alpha = backbone.variant == "crate_alpha"
    patches = backbone.patch_embedding
    if is_alpha:
        entries = [
            ("conv1.weight", patches.projection.kernel, CONV_AXES),
            ("conv1.bias", patches.projection.bias, None),
        ]
    else:
        entries = layer_norm_entries("to_patch_embedding.1", patches.patch_norm)
        entries += dense_entries("to_patch_embedding.2", patches.projection)
        entries += layer_norm_entries("to_patch_embedding.3", patches.token_norm)
    tokens = backbone.token_embedding
    entries += [
        ("cls_token", tokens.class_token, None),
        ("pos_embedding", tokens.position_embedding, None),
    ]
    for i, block in enumerate(backbone.blocks):
        prefix = f"transformer.layers.{i}"
        entries += layer_norm_entries(f"{prefix}.0.norm", block.norm1)
        entries += dense_entries(
            f"{prefix}.0.fn.qkv", block.attention.qkv, bias=False
        )
        entries += dense_entries(
            f"{prefix}.0.fn.to_out.0",
            block.attention.output_projection,
            bias=not is_alpha,
        )
        entries += layer_norm_entries(f"{prefix}.1.norm", block.norm2)
        if is_alpha:
            entries += [
                (f"{prefix}.1.fn.D", block.dictionary, None),
                (f"{prefix}.1.fn.D1", block.decoder, None),
            ]
        else:
            entries.append((f"{prefix}.1.fn.weight", block.dictionary, None))
    entries += layer_norm_entries("mlp_head.0", backbone.final_norm)
    if head is not None:
        entries += dense_entries("mlp_head.1", head)
    return entries
