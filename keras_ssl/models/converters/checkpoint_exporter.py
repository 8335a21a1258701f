"""keras_ssl models -> timm, torchvision and official CRATE checkpoints.

The inverse of the converters: each family's layout is the one table of
entries its loader reads (`timm_vit_entries`, `crate_entries`,
`torchvision_entries`), written back with every axis permutation undone, so
an exported file converts back to exactly the same weights.
"""

from keras_ssl.models.converters.checkpoint_io import save_state_dict_file
from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_checkpoint import crate_entries
from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.resnet.resnet_torchvision import torchvision_entries
from keras_ssl.models.state_dict import export_entries
from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_checkpoint import timm_vit_entries
from keras_ssl.utils.checkpoint_files import SAFETENSORS_EXTENSIONS

FORMATS = ("timm", "torchvision", "crate", "safetensors")
# Backbone class -> (family, the formats of its layout, its own name for it
# first, the function giving that layout's entries).
_FAMILIES = {
    ViTBackbone: ("ViT", ("timm",), timm_vit_entries),
    CRATEBackbone: ("CRATE", ("crate",), crate_entries),
    # timm's plain ResNets share torchvision's names.
    ResNetBackbone: ("ResNet", ("torchvision", "timm"), torchvision_entries),
}
# The layout torchvision's (and timm's plain) `ResNet` class builds.
_TORCHVISION_RESNET = {
    "stem_type": "imagenet",
    "stackwise_num_filters": [64, 128, 256, 512],
    "stackwise_num_strides": [1, 2, 2, 2],
    "shortcut": "projection",
}


def export_checkpoint(model, path, format=None):
    """Writes a keras_ssl ViT, CRATE or ResNet as a PyTorch checkpoint.

    The layout is the one the converters read, so the file loads into the
    source library's model with `load_state_dict(..., strict=True)` and
    `convert_checkpoint` turns it back into exactly the same weights:

    - `"timm"`: a ViT as timm's `VisionTransformer` (`patch_embed.proj`,
      `blocks.{i}.attn.qkv`, ..., `head`); an ImageNet-style ResNet as
      timm's plain `resnet*`, whose names are torchvision's.
    - `"torchvision"`: an ImageNet-style ResNet as torchvision's `ResNet`
      (`conv1`, `bn1`, `layer{i}.{j}.*`, `fc`, BatchNorm running statistics
      included).
    - `"crate"`: a CRATE as the official CRATE code's model, or CRATE-alpha's
      for a `variant="crate_alpha"` backbone.
    - `"safetensors"`: the family's own layout (timm's for a ViT, the
      official one for CRATE, torchvision's names for a ResNet) as a
      `.safetensors` file.

    CIFAR-style ResNets (`stem_type="cifar"`) exist in neither torchvision
    nor timm, so `"torchvision"` and `"timm"` refuse them; their own layout
    (`format=None` or `"safetensors"`) has the same torchvision-style names
    for their three stages and loads back with `load_torchvision_state_dict`
    into `ResNetBackbone.cifar(depth)`.

    A backbone is written without a head; a classifier with its Linear head
    (`head`, `fc` or `mlp_head.1`). A state dict holds weights only: build
    the PyTorch model with the same architecture (depth, width, heads,
    LayerNorm epsilon; for a ViT classifier with `pooling="mean"`, timm's
    `global_pool="avg", fc_norm=False`). The learnable [MASK] token of the
    transformers has no counterpart in these layouts and is not written.
    Floats are written as float32.

    Args:
        model: a `ViTBackbone`, `CRATEBackbone` or `ResNetBackbone`, or a
            keras_ssl classifier built on one.
        path: the file to write. `.safetensors` is written with the
            `safetensors` package (PyTorch not needed); `.pth`, `.pt`,
            `.bin` or `.ckpt` with `torch.save` of a plain dict of tensors.
        format: `"timm"`, `"torchvision"`, `"crate"`, `"safetensors"`, or
            None for the family's own layout (as `"safetensors"`, in
            whichever file type `path` names).

    Returns:
        The state dict written: a dict of numpy arrays in the PyTorch
        layout.

    Raises:
        ValueError: for an unknown `format`, a format of another family
            (e.g. `"torchvision"` for a ViT), a ResNet that torchvision's
            `ResNet` cannot build, a `path` of no checkpoint file type, or
            a `format="safetensors"` path that is not a `.safetensors` file.

    Example:
    ```python
    classifier = keras_ssl.models.ViTImageClassifier.from_preset("my_vit")
    keras_ssl.models.export_checkpoint(
        classifier, "my_vit.safetensors", format="timm"
    )
    # In PyTorch:
    model = timm.create_model("vit_small_patch16_224", num_classes=10)
    model.load_state_dict(safetensors.torch.load_file("my_vit.safetensors"))
    ```
    """
    if format == "safetensors" and not str(path).lower().endswith(
        SAFETENSORS_EXTENSIONS
    ):
        raise ValueError(
            "`format='safetensors'` writes a .safetensors file, but "
            f"`path`={str(path)!r} names another file type. End the path in "
            "'.safetensors', or pass `format=None` to write the same layout "
            "as a PyTorch file."
        )
    state_dict = export_state_dict(model, format)
    save_state_dict_file(state_dict, path)
    return state_dict


def export_state_dict(model, format=None):
    """The PyTorch state dict of a keras_ssl model, in memory.

    What `export_checkpoint` writes, as numpy arrays: load it into PyTorch
    with `{name: torch.from_numpy(value) for name, value in ...}`.

    Args:
        model: a keras_ssl ViT, CRATE or ResNet backbone or classifier.
        format: see `export_checkpoint`.

    Returns:
        dict mapping PyTorch parameter names to C-contiguous float32 arrays.

    Example:
    ```python
    classifier = keras_ssl.models.ResNetImageClassifier(
        keras_ssl.models.ResNetBackbone.imagenet(depth=18), num_classes=10
    )
    state_dict = keras_ssl.models.export_state_dict(classifier, "torchvision")
    torchvision.models.resnet18(num_classes=10).load_state_dict(
        {k: torch.from_numpy(v) for k, v in state_dict.items()}
    )
    ```
    """
    if format is not None and format not in FORMATS:
        raise ValueError(
            f"Unknown checkpoint `format`={format!r}. Choose one of "
            f"{FORMATS}, or None for the model family's own layout."
        )
    backbone = getattr(model, "backbone", model)
    head = getattr(model, "output_dense", None) if backbone is not model else None
    family = next(
        (entry for cls, entry in _FAMILIES.items() if isinstance(backbone, cls)),
        None,
    )
    if family is None:
        raise ValueError(
            "`export_checkpoint` writes keras_ssl's ViT, CRATE and ResNet "
            "backbones and the classifiers built on them; received a "
            f"{type(model).__name__}."
        )
    name, layouts, entries_of = family
    layout = layouts[0] if format in (None, "safetensors") else format
    if layout not in layouts:
        raise ValueError(
            f"`format='{format}'` is not a layout of a {name}: a {name} "
            f"exports as {' or '.join(repr(f) for f in layouts)} (or "
            "'safetensors' for that layout in a .safetensors file)."
        )
    if name == "ResNet" and format in ("torchvision", "timm"):
        _check_torchvision_resnet(backbone, format)
    entries = entries_of(backbone, head)
    _check_all_exported(model, entries)
    return export_entries(entries)


def _check_torchvision_resnet(backbone, format):
    if backbone.stem_type == "cifar":
        raise ValueError(
            f"`format='{format}'`: {format} has no CIFAR-style ResNet (3x3 "
            "stem, three stages), so none of its models can load this "
            "backbone. Pass `format=None` (or 'safetensors'): the same "
            "torchvision-style names (`conv1`, `bn1`, `layer{i}.{j}.*`, "
            "`fc`), which `load_torchvision_state_dict` reads back into "
            "`ResNetBackbone.cifar(depth)`."
        )
    different = {
        key: getattr(backbone, key)
        for key, value in _TORCHVISION_RESNET.items()
        if getattr(backbone, key) != value
    }
    if different:
        raise ValueError(
            f"`format='{format}'`: {format}'s ResNet is built with "
            f"{_TORCHVISION_RESNET}, but this backbone has {different}, so "
            "none of its models can load it. Pass `format=None` (or "
            "'safetensors') for the same names without that promise."
        )


def _check_all_exported(model, entries):
    """Refuses to drop a weight silently; only the [MASK] token has no place."""
    exported = {id(variable) for _, variable, _ in entries}
    left_out = [
        weight.path
        for weight in model.weights
        if id(weight) not in exported and not weight.path.endswith("mask_token")
    ]
    if left_out:
        raise ValueError(
            f"The model has weights with no place in the checkpoint layout, "
            f"starting with `{left_out[0]}` ({len(left_out)} in all); "
            "`export_checkpoint` writes the backbones and classifiers the "
            "converters read. Export the backbone (`model.backbone`) or a "
            "keras_ssl classifier instead."
        )
