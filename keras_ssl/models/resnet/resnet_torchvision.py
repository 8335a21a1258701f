"""torchvision-style PyTorch ResNet state dicts <-> the Keras model."""

import numpy as np

from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.state_dict import CONV_AXES
from keras_ssl.models.state_dict import LINEAR_AXES

# PyTorch BatchNorm parameter/buffer name -> Keras BatchNormalization weight.
_BATCH_NORM_WEIGHTS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


def _conv_entries(prefix, conv):
    return [(f"{prefix}.weight", conv.kernel, CONV_AXES)]


def _batch_norm_entries(prefix, batch_norm):
    return [
        (f"{prefix}.{torch_name}", getattr(batch_norm, keras_name), None)
        for torch_name, keras_name in _BATCH_NORM_WEIGHTS.items()
    ]


def torchvision_entries(backbone, head=None):
    """The torchvision `ResNet` layout of a keras_ssl ResNet.

    Names as torchvision writes them: `conv1`, `bn1`,
    `layer{i}.{j}.conv{k}`, `layer{i}.{j}.bn{k}`,
    `layer{i}.{j}.downsample.{0,1}` and `fc`, BatchNorm running statistics
    included (`num_batches_tracked` is not a weight and is left out). CIFAR
    ResNets get the same names for their three stages. Used by
    `load_torchvision_state_dict` and `export_checkpoint`.

    Args:
        backbone: a `ResNetBackbone`.
        head: the classifier's `Dense` head, or None for the backbone only.

    Returns:
        list of `(torchvision name, variable, axes)` (see
        `keras_ssl.models.state_dict`).
    """
    entries = _conv_entries("conv1", backbone.stem.conv1)
    entries += _batch_norm_entries("bn1", backbone.stem.bn1)
    for stage_index, stage in enumerate(backbone.stages):
        for block_index, block in enumerate(stage.blocks):
            prefix = f"layer{stage_index + 1}.{block_index}"
            for index in (1, 2, 3):
                if hasattr(block, f"conv{index}"):
                    conv = getattr(block, f"conv{index}")
                    bn = getattr(block, f"bn{index}")
                    entries += _conv_entries(f"{prefix}.conv{index}", conv)
                    entries += _batch_norm_entries(f"{prefix}.bn{index}", bn)
            if block.downsample_conv is not None:
                entries += _conv_entries(
                    f"{prefix}.downsample.0", block.downsample_conv
                )
                entries += _batch_norm_entries(
                    f"{prefix}.downsample.1", block.downsample_bn
                )
    if head is not None:
        entries += [
            ("fc.weight", head.kernel, LINEAR_AXES),
            ("fc.bias", head.bias, None),
        ]
    return entries


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch.Tensor; torch stays optional.
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_torchvision_state_dict(model, state_dict):
    """Copies a torchvision-style ResNet `state_dict` into a Keras model.

    Parameter names follow torchvision's `ResNet` (`torchvision_entries`:
    `conv1`, `bn1`, `layer{i}.{j}.conv1`, `layer{i}.{j}.downsample.{0,1}`,
    `fc`), which the CIFAR ResNets written in the same style share.
    BatchNorm running statistics are copied too; `num_batches_tracked` is
    ignored. Nothing is assigned unless every parameter matches.

    Args:
        model: a `ResNetBackbone`, or a classifier with a `ResNetBackbone`
            `backbone` and an `output_dense` head (`ResNetImageClassifier`).
            For a bare backbone the `fc.*` head entries are skipped.
        state_dict: mapping from parameter name to `torch.Tensor` or array,
            e.g. `torchvision.models.resnet50().state_dict()`.

    Raises:
        ValueError: naming the first parameter the model expects but the
            state dict lacks, whose shape differs, or that the state dict
            has but the model lacks.

    Example:
    ```python
    torch_model = torchvision.models.resnet18(weights=None)
    classifier = ResNetImageClassifier(
        backbone=ResNetBackbone.imagenet(depth=18), num_classes=1000
    )
    load_torchvision_state_dict(classifier, torch_model.state_dict())
    ```
    """
    head = getattr(model, "output_dense", None)
    backbone = model.backbone if head is not None else model
    if not isinstance(backbone, ResNetBackbone):
        raise TypeError(
            "`model` must be a `ResNetBackbone` or a classifier built on one. "
            f"Received: {type(model).__name__}"
        )
    entries = torchvision_entries(backbone, head)

    values = []
    for name, variable, transpose in entries:
        if name not in state_dict:
            raise ValueError(
                f"The state dict has no parameter `{name}`, which the model "
                f"needs for `{variable.path}`."
            )
        value = _to_numpy(state_dict[name])
        if transpose is not None:
            value = np.transpose(value, transpose)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Shape mismatch for `{name}`: the state dict has "
                f"{tuple(state_dict[name].shape)}, which maps to "
                f"{tuple(value.shape)}, but `{variable.path}` has shape "
                f"{tuple(variable.shape)}."
            )
        values.append((variable, value))

    expected = {name for name, _, _ in entries}
    for name in state_dict:
        if name in expected or name.endswith("num_batches_tracked"):
            continue
        if head is None and name.startswith("fc."):
            continue
        raise ValueError(
            f"The state dict has a parameter `{name}` that the model does "
            "not have (check the depth, block type and shortcut)."
        )

    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
