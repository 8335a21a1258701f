"""Turning foreign checkpoints into keras_ssl presets on the fly.

timm and transformers repositories, keras-hub presets and plain weights files
are converted by a converter registered here. The converters live above the
hub (they build models, whose classes import `PresetMixin`), so they register
themselves instead of being imported: the dependency runs one way.
"""

import json
import os
import shutil
import tempfile

from keras_ssl.hub import keras_hub_internals
from keras_ssl.hub import registry


# `from_preset` keyword arguments that only steer the conversion.
CONVERSION_ONLY_KWARGS = ("source", "architecture")
# Keyword arguments the conversion needs and the model config takes too.
CONVERSION_SHARED_KWARGS = ("num_heads", "image_shape")


def _is_keras_hub_name(preset):
    return (
        preset in keras_hub_internals.builtin_presets()
        and registry.registered_preset(preset) is None
    )


_checkpoint_converter = None


def register_checkpoint_converter(converter):
    """Sets the function `convert_to_preset` turns checkpoints into presets with.

    Args:
        converter: called as `converter(checkpoint, output_dir=..., **kwargs)`
            with the keyword arguments of `convert_to_preset`; writes a
            keras_ssl preset folder into `output_dir`.
    """
    global _checkpoint_converter
    _checkpoint_converter = converter


def needs_conversion(preset):
    """Whether a resolved preset is not a keras_ssl preset but a checkpoint."""
    if _is_keras_hub_name(preset):
        return True
    if not os.path.exists(preset):
        return False  # a Kaggle or other handle keras-hub resolves itself
    if os.path.isfile(preset):
        return True
    with open(os.path.join(preset, keras_hub_internals.CONFIG_FILE)) as f:
        config = json.load(f)
    registered_name = str(config.get("registered_name", ""))
    return not registered_name or registered_name.startswith("keras_hub>")


def convert_to_preset(preset, **kwargs):
    """Turn a resolved non-Keras preset into a keras_ssl preset folder.

    `PresetMixin.from_preset` calls this on every resolved preset. Keras
    presets pass through unchanged. timm and transformers model folders
    (told apart by their `config.json`, as keras-hub does), keras-hub ViT
    and ResNet presets (folders or keras-hub preset names such as
    `"resnet_50_imagenet"`) and plain weights files are converted by
    `keras_ssl.models.convert_checkpoint` into a new temporary folder,
    which the caller deletes once loaded.

    Args:
        preset: the output of `resolve_preset`.
        **kwargs: conversion arguments of
            `keras_ssl.models.convert_checkpoint` (`source`,
            `architecture`, `num_heads`, `image_shape`).

    Returns:
        A preset keras-hub can load (`preset` itself when no conversion is
        needed).

    Example:
    ```python
    folder = convert_to_preset(resolve_preset("hf://timm/resnet50.a1_in1k"))
    ```
    """
    if not needs_conversion(preset):
        return preset
    if _is_keras_hub_name(preset):
        kwargs.setdefault("source", "keras_hub")
    if _checkpoint_converter is None:
        raise RuntimeError(
            f"'{preset}' is a checkpoint that needs converting, and no "
            "converter is registered: `import keras_ssl` registers "
            "`keras_ssl.models.convert_checkpoint`."
        )
    output_dir = tempfile.mkdtemp(prefix="keras_ssl_converted_")
    try:
        _checkpoint_converter(preset, output_dir=output_dir, **kwargs)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return output_dir
