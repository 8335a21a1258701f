"""keras-hub ViT and ResNet presets, via the reference (timm) layout.

A keras-hub model is read into a state dict in the layout our loaders
already prove exact (timm's ViT, torchvision's ResNet), so one code path
serves every source.
"""

import keras
import keras_hub
import numpy as np

from keras_ssl.hub import keras_hub_internals
from keras_ssl.models.converters import convert_timm as timm_converter
from keras_ssl.models.converters import convert_torchvision as torchvision_converter
from keras_ssl.models.converters.common import mean_std_from_scale_offset


def is_keras_hub_config(config):
    return str(config.get("registered_name", "")).startswith("keras_hub>")


def convert(preset, task=None, num_classes=None, image_shape=None):
    """A keras-hub ViT or ResNet preset -> the keras_ssl equivalent.

    Args:
        preset: anything `keras_hub.models.Backbone.from_preset` accepts: a
            preset folder, a keras-hub preset name or handle.
        task, num_classes, image_shape: see `convert_checkpoint`.

    Returns:
        `(model, preprocessor)`: the converted backbone or classifier and
        the source's preprocessing.
    """
    backbone = keras_hub.models.Backbone.from_preset(preset)
    head = None
    if task != "backbone" and _has_task(preset):
        head = keras_hub.models.ImageClassifier.from_preset(preset)
        backbone = head.backbone
    preprocessing = _preprocessing(preset)
    name = type(backbone).__name__
    if name == "ViTBackbone":
        # The backbone's image shape decides what the converter resizes to.
        preprocessing.pop("image_size", None)
        return timm_converter.convert(
            _vit_state_dict(backbone, head),
            architecture="vit",
            task=task,
            num_classes=num_classes,
            num_heads=backbone.num_heads,
            image_shape=image_shape,
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            preprocessing=preprocessing,
        )
    if name == "ResNetBackbone":
        image_size = preprocessing.pop("image_size", None)
        if image_shape is None and image_size is not None:
            image_shape = (*image_size, 3)
        return torchvision_converter.convert(
            _resnet_state_dict(backbone, head),
            task=task,
            num_classes=num_classes,
            preprocessing=preprocessing,
            image_shape=image_shape,
            where=f"keras-hub ResNet preset '{preset}'",
        )
    raise ValueError(
        f"keras-hub preset '{preset}' is a {name}; keras_ssl converts "
        "keras-hub ViTBackbone and ResNetBackbone presets."
    )


def _has_task(preset):
    # keras-hub's own check, which also looks into Kaggle and Hub handles.
    return keras_hub_internals.check_file_exists(preset, keras_hub_internals.TASK_CONFIG_FILE)


def _preprocessing(preset):
    """keras-hub image converter settings as `NormalizingImageConverter` ones.

    keras-hub resizes straight to `image_size`: no `crop_pct`, whatever the
    defaults of the timm or torchvision converter that builds the model.
    """
    if not keras_hub_internals.check_file_exists(
        preset, keras_hub_internals.PREPROCESSOR_CONFIG_FILE
    ):
        return {"crop_pct": None}
    config = keras_hub_internals.load_json(preset, keras_hub_internals.PREPROCESSOR_CONFIG_FILE)
    converter = (config["config"].get("image_converter") or {}).get("config", {})
    mean, std = mean_std_from_scale_offset(
        converter.get("scale"), converter.get("offset")
    )
    arguments = {
        key: converter[key]
        for key in ("interpolation", "crop_to_aspect_ratio", "antialias")
        if key in converter
    }
    arguments["crop_pct"] = None
    if mean is not None:
        arguments.update(mean=mean, std=std)
    if converter.get("image_size"):
        arguments["image_size"] = tuple(converter["image_size"])
    return arguments


def _to_numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _vit_state_dict(backbone, classifier):
    for flag in ("use_mha_bias", "use_mlp_bias", "use_class_token", "use_patch_bias"):
        if not getattr(backbone, flag):
            raise ValueError(
                f"This keras-hub ViT has {flag}=False; keras_ssl's ViT (timm's "
                "layout) has a class token and biases."
            )
    embedding = backbone.get_layer("vit_patching_and_embedding")
    encoder = backbone.get_layer("vit_encoder")
    dim = backbone.hidden_dim
    state = {
        # [kh, kw, in, out] -> [out, in, kh, kw]
        "patch_embed.proj.weight": np.transpose(
            _to_numpy(embedding.patch_embedding.kernel), (3, 2, 0, 1)
        ),
        "patch_embed.proj.bias": _to_numpy(embedding.patch_embedding.bias),
        "cls_token": _to_numpy(embedding.class_token).reshape(1, 1, -1),
        "pos_embed": _to_numpy(embedding.position_embedding.embeddings)[None],
        "norm.weight": _to_numpy(encoder.layer_norm.gamma),
        "norm.bias": _to_numpy(encoder.layer_norm.beta),
    }
    for i, block in enumerate(encoder.encoder_layers):
        prefix = f"blocks.{i}"
        attention = block.mha
        # EinsumDense kernels [dim, heads, head_dim] -> Linear [out, in].
        projections = [
            getattr(attention, f"{p}_dense") for p in ("query", "key", "value")
        ]
        state[f"{prefix}.attn.qkv.weight"] = np.concatenate(
            [_to_numpy(d.kernel).reshape(dim, -1).T for d in projections], axis=0
        )
        state[f"{prefix}.attn.qkv.bias"] = np.concatenate(
            [_to_numpy(d.bias).reshape(-1) for d in projections], axis=0
        )
        output = attention.output_dense
        state[f"{prefix}.attn.proj.weight"] = (
            _to_numpy(output.kernel).reshape(-1, dim).T
        )
        state[f"{prefix}.attn.proj.bias"] = _to_numpy(output.bias)
        norms = ((block.layer_norm_1, "norm1"), (block.layer_norm_2, "norm2"))
        for norm, name in norms:
            state[f"{prefix}.{name}.weight"] = _to_numpy(norm.gamma)
            state[f"{prefix}.{name}.bias"] = _to_numpy(norm.beta)
        denses = ((block.mlp.dense_1, "fc1"), (block.mlp.dense_2, "fc2"))
        for dense, name in denses:
            state[f"{prefix}.mlp.{name}.weight"] = _to_numpy(dense.kernel).T
            state[f"{prefix}.mlp.{name}.bias"] = _to_numpy(dense.bias)
    if classifier is not None:
        pre_logits = getattr(classifier, "intermediate_dim", None)
        if pre_logits or classifier.pooling != "token":
            raise ValueError(
                "This keras-hub ViT classifier has a pre-logits layer or "
                "non-token pooling; keras_ssl's ViT classifier is class "
                "token -> Linear. Convert the backbone (`task='backbone'`)."
            )
        state["head.weight"] = _to_numpy(classifier.output_dense.kernel).T
        state["head.bias"] = _to_numpy(classifier.output_dense.bias)
    return state


def _resnet_state_dict(backbone, classifier):
    """keras-hub ResNet v1 -> torchvision names (inverse of keras-hub's timm map)."""
    if backbone.use_pre_activation:
        raise ValueError(
            "This keras-hub ResNet is pre-activation (ResNet v2); keras_ssl's "
            "ResNetBackbone is torchvision's ResNet v1."
        )
    state = {}

    def conv(keras_name, torch_name):
        kernel = backbone.get_layer(keras_name).kernel
        state[f"{torch_name}.weight"] = np.transpose(_to_numpy(kernel), (3, 2, 0, 1))

    def batch_norm(keras_name, torch_name):
        layer = backbone.get_layer(keras_name)
        for keras_weight, torch_weight in (
            ("gamma", "weight"),
            ("beta", "bias"),
            ("moving_mean", "running_mean"),
            ("moving_variance", "running_var"),
        ):
            state[f"{torch_name}.{torch_weight}"] = _to_numpy(
                getattr(layer, keras_weight)
            )

    conv("conv1_conv", "conv1")
    batch_norm("conv1_bn", "bn1")
    bottleneck = backbone.block_type == "bottleneck_block"
    for stage, num_blocks in enumerate(backbone.stackwise_num_blocks):
        for block in range(num_blocks):
            keras_name = f"stack{stage}_block{block}"
            torch_name = f"layer{stage + 1}.{block}"
            if block == 0 and (bottleneck or stage > 0):
                conv(f"{keras_name}_0_conv", f"{torch_name}.downsample.0")
                batch_norm(f"{keras_name}_0_bn", f"{torch_name}.downsample.1")
            for index in (1, 2, 3) if bottleneck else (1, 2):
                conv(f"{keras_name}_{index}_conv", f"{torch_name}.conv{index}")
                batch_norm(f"{keras_name}_{index}_bn", f"{torch_name}.bn{index}")
    if classifier is not None:
        state["fc.weight"] = _to_numpy(classifier.output_dense.kernel).T
        state["fc.bias"] = _to_numpy(classifier.output_dense.bias)
    return state
