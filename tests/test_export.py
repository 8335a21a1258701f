"""export_checkpoint: our weights back into timm, torchvision and CRATE.

Every model starts from random weights everywhere (a zero bias or a unit
norm would hide a swapped or untransposed tensor). The exported file must
(1) convert back through the existing converters to exactly the same
weights, and (2) load strictly into the source library's own model and give
our logits, to the tolerances of the equivalence tests (1e-4).
"""

import keras
import numpy as np
import pytest
import timm
import torch
import torchvision
from safetensors.torch import load_file
from torchvision.models.resnet import Bottleneck
from torchvision.models.resnet import ResNet

from keras_ssl.models import CRATEBackbone
from keras_ssl.models import CRATEImageClassifier
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ResNetImageClassifier
from keras_ssl.models import ViTBackbone
from keras_ssl.models import ViTImageClassifier
from keras_ssl.models import convert_checkpoint
from keras_ssl.models import export_checkpoint
from keras_ssl.models import export_state_dict
from keras_ssl.models.converters import load_state_dict_file
from keras_ssl.models.resnet import load_torchvision_state_dict
from tests.conftest import to_numpy
from tests.torch_references import ReferenceCRATE
from tests.torch_references import ReferenceCRATEAlpha

pytestmark = pytest.mark.multibackend

ATOL = 1e-4


def randomise(model, seed=0):
    """Random norms, biases, statistics and tokens; kernels are random already."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = to_numpy(weight)
        if weight.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, value.shape)
        elif value.ndim <= 1 or value.std() == 0:
            value = value + rng.normal(0.0, 0.2, value.shape)
        weight.assign(value.astype(weight.dtype))
    return model


def small_vit(num_classes=10, pooling="token"):
    backbone = ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=48, num_layers=2,
        num_heads=3, mlp_dim=96,
    )
    return randomise(ViTImageClassifier(backbone, num_classes, pooling=pooling))


def small_crate(variant):
    backbone = CRATEBackbone(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=48, num_layers=2,
        num_heads=3, head_dim=16, variant=variant,
    )
    return randomise(CRATEImageClassifier(backbone, 10))


def resnet(block_type="basic_block", blocks=(2, 2, 2, 2), stem_type="imagenet"):
    if stem_type == "cifar":
        backbone = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    else:
        backbone = ResNetBackbone(
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=list(blocks),
            stackwise_num_strides=[1, 2, 2, 2],
            block_type=block_type,
            stem_type="imagenet",
            image_shape=(32, 32, 3),
        )
    return randomise(ResNetImageClassifier(backbone, 10))


def images(batch=2):
    rng = np.random.default_rng(1)
    return rng.normal(size=(batch, 32, 32, 3)).astype("float32")


def assert_same_weights(expected, actual):
    """Every weight equal, bit for bit; the [MASK] token is not exported."""
    pairs = [
        (a, b)
        for a, b in zip(expected.weights, actual.weights, strict=True)
        if not a.path.endswith("mask_token")
    ]
    assert pairs
    for a, b in pairs:
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)


def torch_logits(reference, x):
    with torch.no_grad():
        return reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


def load_exported(path):
    if str(path).endswith(".safetensors"):
        return load_file(str(path))
    return torch.load(str(path), weights_only=True)


# === (1) Export, convert back: the same weights ===


@pytest.mark.parametrize("name", ["vit.pth", "vit.safetensors"])
def test_vit_round_trip(tmp_path, name):
    classifier = small_vit()
    export_checkpoint(classifier, tmp_path / name, format="timm")
    restored = convert_checkpoint(str(tmp_path / name), num_heads=3)
    assert isinstance(restored, ViTImageClassifier)
    assert_same_weights(classifier, restored)


def test_vit_backbone_round_trip(tmp_path):
    backbone = small_vit().backbone
    state_dict = export_checkpoint(backbone, path=tmp_path / "vit.safetensors")
    assert not any(name.startswith("head.") for name in state_dict)
    restored = convert_checkpoint(str(tmp_path / "vit.safetensors"), num_heads=3)
    assert isinstance(restored, ViTBackbone)
    assert_same_weights(backbone, restored)


@pytest.mark.parametrize("variant", ["crate", "crate_alpha"])
def test_crate_round_trip(tmp_path, variant):
    classifier = small_crate(variant)
    export_checkpoint(classifier, tmp_path / "crate.pth", format="crate")
    restored = convert_checkpoint(str(tmp_path / "crate.pth"), num_heads=3)
    assert restored.backbone.variant == variant
    assert_same_weights(classifier, restored)


def test_resnet_round_trip(tmp_path):
    classifier = resnet()
    export_checkpoint(classifier, tmp_path / "resnet18.pth", format="torchvision")
    restored = convert_checkpoint(
        str(tmp_path / "resnet18.pth"), image_shape=(32, 32, 3)
    )
    for key in ("stackwise_num_blocks", "block_type", "stem_type"):
        assert restored.backbone.get_config()[key] == getattr(
            classifier.backbone, key
        )
    assert_same_weights(classifier, restored)


def test_cifar_resnet_round_trip_in_its_own_layout(tmp_path):
    # torchvision has no CIFAR ResNet; the family's own layout (the same
    # names, three stages) is what `load_torchvision_state_dict` reads.
    classifier = resnet(stem_type="cifar")
    export_checkpoint(classifier, tmp_path / "resnet8.safetensors", "safetensors")
    restored = ResNetImageClassifier(
        ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)), 10
    )
    load_torchvision_state_dict(
        restored, load_state_dict_file(tmp_path / "resnet8.safetensors")
    )
    assert_same_weights(classifier, restored)


# === (2) The exported file in the source library: the same logits ===


@pytest.mark.parametrize("pooling", ["token", "mean"])
def test_vit_loads_into_timm(tmp_path, pooling):
    classifier = small_vit(pooling=pooling)
    export_checkpoint(classifier, tmp_path / "vit.safetensors", format="timm")
    # timm pools the patch tokens after `norm` with fc_norm off.
    pool = {"global_pool": "avg", "fc_norm": False} if pooling == "mean" else {}
    reference = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
        embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10,
        **pool,
    ).eval()
    reference.load_state_dict(load_exported(tmp_path / "vit.safetensors"))
    x = images()
    np.testing.assert_allclose(
        to_numpy(classifier(x)), torch_logits(reference, x), atol=ATOL, rtol=0
    )


def bottleneck_resnet(num_classes):
    # ResNet-50's bottleneck blocks, one per stage to stay fast.
    return ResNet(Bottleneck, [1, 1, 1, 1], num_classes=num_classes)


@pytest.mark.parametrize(
    "format, block_type, blocks, reference_fn",
    [
        ("torchvision", "basic_block", (2, 2, 2, 2), torchvision.models.resnet18),
        ("torchvision", "bottleneck_block", (1, 1, 1, 1), bottleneck_resnet),
        ("timm", "basic_block", (2, 2, 2, 2), timm.models.resnet.resnet18),
    ],
    ids=["torchvision_resnet18", "torchvision_bottleneck", "timm_resnet18"],
)
def test_resnet_loads_into_torchvision_and_timm(
    tmp_path, format, block_type, blocks, reference_fn
):
    classifier = resnet(block_type, blocks)
    export_checkpoint(classifier, tmp_path / "resnet.pth", format=format)
    state_dict = load_exported(tmp_path / "resnet.pth")
    reference = reference_fn(num_classes=10)
    # The only names missing are BatchNorm's `num_batches_tracked`
    # counters, which are not weights (PyTorch fills them in).
    assert set(reference.state_dict()) - set(state_dict) == {
        name
        for name in reference.state_dict()
        if name.endswith("num_batches_tracked")
    }
    reference.load_state_dict(state_dict, strict=True)
    x = images()
    logits = to_numpy(classifier(x, training=False))
    assert np.abs(logits).max() > 0.5  # Not vanishing: a mismatch shows.
    np.testing.assert_allclose(
        logits, torch_logits(reference.eval(), x), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize(
    "variant, reference_cls",
    [("crate", ReferenceCRATE), ("crate_alpha", ReferenceCRATEAlpha)],
)
def test_crate_loads_into_the_reference(tmp_path, variant, reference_cls):
    classifier = small_crate(variant)
    export_checkpoint(classifier, tmp_path / "crate.pth")
    reference = reference_cls(32, 8, dim=48, depth=2, heads=3, dim_head=16, classes=10)
    reference.load_state_dict(load_exported(tmp_path / "crate.pth"), strict=True)
    x = images()
    np.testing.assert_allclose(
        to_numpy(classifier(x)), torch_logits(reference.eval(), x), atol=ATOL, rtol=0
    )


def test_exported_arrays_are_plain_float32():
    state_dict = export_state_dict(small_crate("crate_alpha").backbone)
    assert "mlp_head.1.weight" not in state_dict
    for name, value in state_dict.items():
        assert value.dtype == np.float32 and value.flags.c_contiguous, name


# === (3) Clear errors ===


def test_unknown_format_and_wrong_family_are_refused(tmp_path):
    vit = small_vit()
    with pytest.raises(ValueError, match=r"Unknown checkpoint `format`='onnx'"):
        export_checkpoint(vit, tmp_path / "x.pth", format="onnx")
    with pytest.raises(ValueError, match=r"'torchvision'. is not a layout of a ViT.*'timm'"):
        export_checkpoint(vit, tmp_path / "x.pth", format="torchvision")
    with pytest.raises(ValueError, match=r"'timm'. is not a layout of a CRATE.*'crate'"):
        export_state_dict(small_crate("crate"), format="timm")
    with pytest.raises(ValueError, match=r"'crate'. is not a layout of a ResNet"):
        export_state_dict(ResNetBackbone.cifar(depth=8), format="crate")
    with pytest.raises(ValueError, match="ViT, CRATE and ResNet.*Sequential"):
        export_state_dict(keras.Sequential([keras.layers.Dense(2)]))
    assert not any(tmp_path.iterdir())


def test_resnets_torchvision_cannot_build_are_refused():
    with pytest.raises(ValueError, match="no CIFAR-style ResNet.*format=None"):
        export_state_dict(ResNetBackbone.cifar(depth=8), format="torchvision")
    narrow = ResNetBackbone(
        stackwise_num_filters=[8, 16, 32, 64], stackwise_num_blocks=[1] * 4,
        stackwise_num_strides=[1, 2, 2, 2], stem_type="imagenet",
    )
    with pytest.raises(ValueError, match="stackwise_num_filters.*8, 16, 32, 64"):
        export_state_dict(narrow, format="timm")
    # Its own layout has no such promise.
    assert "layer4.0.conv1.weight" in export_state_dict(narrow)


def test_file_type_must_match(tmp_path):
    vit = small_vit().backbone
    with pytest.raises(ValueError, match="writes a .safetensors file"):
        export_checkpoint(vit, tmp_path / "vit.pth", format="safetensors")
    with pytest.raises(ValueError, match="Cannot tell the file type of .*vit.npz"):
        export_checkpoint(vit, tmp_path / "vit.npz")
    assert not any(tmp_path.iterdir())
