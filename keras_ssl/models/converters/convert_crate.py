"""Official CRATE and CRATE-alpha checkpoints.

Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction";
Yang et al. 2024, "Scaling White-Box Transformers for Vision".
"""

from keras_ssl.models.converters.common import assemble
from keras_ssl.models.converters.common import count_indexed
from keras_ssl.models.converters.common import require
from keras_ssl.models.converters.common import square_grid
from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_backbone import CRATE_SIZES
from keras_ssl.models.crate.crate_checkpoint import TWO_LAYER_HEAD_KEY
from keras_ssl.models.crate.crate_checkpoint import load_crate_state_dict
from keras_ssl.models.crate.crate_image_classifier import CRATEImageClassifier
from keras_ssl.models.crate.crate_image_classifier_preprocessor import (
    CRATEImageClassifierPreprocessor,
)
from keras_ssl.models.crate.crate_image_converter import CRATEImageConverter
from keras_ssl.models.image_converter import IMAGENET_MEAN
from keras_ssl.models.image_converter import IMAGENET_STD

# Width -> heads of the published models (CRATE-T/S/B/L; CRATE-alpha-B/L).
HEADS_BY_WIDTH = {
    "crate": {size["hidden_dim"]: size["num_heads"] for size in CRATE_SIZES.values()},
    "crate_alpha": {768: 12, 1024: 16},
}
# The checkpoints carry no preprocessing; ImageNet statistics with a
# bilinear resize and centre crop, the usual ImageNet evaluation.
PREPROCESSING = {
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "interpolation": "bilinear",
    "crop_to_aspect_ratio": True,
    "antialias": True,
}


def convert(
    state_dict,
    variant="crate",
    task=None,
    num_classes=None,
    num_heads=None,
    image_shape=None,
):
    """An official CRATE or CRATE-alpha state dict -> a keras_ssl CRATE.

    Image and patch size, width, depth, head width and class count come
    from the weights. The head count does not (the MSSA projection fixes
    heads x head width only): it is `num_heads`, or the published model's
    for a published width (CRATE 384/576/768/1024 -> 6/12/12/16 heads,
    CRATE-alpha 768/1024 -> 12/16).

    Args:
        state_dict: parameters in the official layout (numpy arrays).
        variant: "crate" or "crate_alpha".
        task, num_classes, image_shape: see `convert_checkpoint`.
        num_heads: int or None.

    Returns:
        `(model, preprocessor)`: the converted `CRATEBackbone` or
        `CRATEImageClassifier` and its preprocessing.
    """
    where = f"{'CRATE-alpha' if variant == 'crate_alpha' else 'CRATE'} state dict"
    positions = require(state_dict, "pos_embedding", where)
    num_patches, hidden_dim = positions.shape[1] - 1, positions.shape[2]
    if variant == "crate_alpha":
        projection = require(state_dict, "conv1.weight", where)
        patch_size, channels = projection.shape[2], projection.shape[1]
    else:
        projection = require(state_dict, "to_patch_embedding.2.weight", where)
        patch_dim = projection.shape[1]
        channels = 3
        patch_size = round((patch_dim / channels) ** 0.5)
        if patch_size * patch_size * channels != patch_dim:
            raise ValueError(
                f"The {where}'s patch projection takes {patch_dim} values, "
                "not patch_size x patch_size x 3."
            )
    qkv = require(state_dict, "transformer.layers.0.0.fn.qkv.weight", where)
    inner_dim = qkv.shape[0]
    if num_heads is None:
        num_heads = HEADS_BY_WIDTH[variant].get(hidden_dim)
        if num_heads is None or inner_dim % num_heads:
            raise ValueError(
                f"The {where} has width {hidden_dim}, which is not a "
                "published size, and its weights fix only heads x head "
                f"width (= {inner_dim}). Pass `num_heads=`."
            )
    side = square_grid(num_patches, where) * patch_size
    backbone_kwargs = {
        "image_shape": tuple(image_shape or (side, side, channels)),
        "patch_size": patch_size,
        "hidden_dim": hidden_dim,
        "num_layers": count_indexed(state_dict, "transformer.layers.{}.0.norm.weight"),
        "num_heads": num_heads,
        "head_dim": inner_dim // num_heads,
        "variant": variant,
    }
    backbone = CRATEBackbone(**backbone_kwargs)
    preprocessor = CRATEImageClassifierPreprocessor(
        CRATEImageConverter(
            image_size=backbone_kwargs["image_shape"][:2], **PREPROCESSING
        )
    )
    head = state_dict.get(TWO_LAYER_HEAD_KEY, state_dict.get("mlp_head.1.weight"))
    return assemble(
        backbone,
        CRATEImageClassifier,
        preprocessor,
        load_crate_state_dict,
        state_dict,
        head_classes=None if head is None else head.shape[0],
        task=task,
        num_classes=num_classes,
    )
