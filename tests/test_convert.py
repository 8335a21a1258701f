"""Checkpoint converters: exactness per source, preprocessing, safety, errors.

Every source is proven on real images of the bundled CIFAR-10 sample: the
reference model (random weights, norms and heads perturbed so nothing is
trivially zero) runs on the source's own preprocessing of the raw images,
ours on its converted preprocessor's, and the logits agree to 1e-4 in
float32. The models are built at the sample's 32x32 so that resizing is the
identity on both sides (sources that centre-crop get the images with a
border, see `padded_images`); resizing itself is compared separately.
"""

import hashlib
import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from torch import nn

import keras_ssl
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.models import ViTImageClassifier
from keras_ssl.models import convert_checkpoint
from tests.conftest import to_numpy
from tests.torch_references import ReferenceCRATE
from tests.torch_references import ReferenceCRATEAlpha

pytestmark = pytest.mark.multibackend

ATOL = 1e-4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def raw_images():
    images, _ = keras_ssl.data.load_sample("test")
    # Two images of each of four classes.
    return np.concatenate([images[i * 30: i * 30 + 2] for i in range(4)])


@pytest.fixture(scope="module")
def padded_images(raw_images):
    """`raw_images` with a 2-pixel border, for the sources that centre-crop.

    timm's default `crop_pct` and torchvision's are 0.875: at 32x32 their
    evaluation transform resizes to floor(32 / 0.875) = 36, the size of
    these, so the resize is the identity on both sides and the centre crop
    must take back exactly the 32x32 images.
    """
    return np.pad(raw_images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")


def perturb(module, seed=0):
    """Random norms, biases and heads: timm zero-initialises some of them."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim == 1:
                parameter.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            elif "head" in name or "fc" in name or "classifier" in name:
                parameter.normal_(0.0, 0.2)
            elif name in ("cls_token", "pos_embed", "pos_embedding"):
                parameter.normal_(0.0, 0.5)
        for buffer_name, buffer in module.named_buffers():
            if buffer_name.endswith("running_mean"):
                buffer.normal_(0.0, 0.2)
            elif buffer_name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return module.eval()


def perturb_resnet(module):
    """`perturb`, with residual branches damped as trained ResNets have them.

    Random BatchNorm statistics otherwise compound over the blocks into
    logits in the hundreds, where float32 rounding alone exceeds 1e-4.
    """
    perturb(module)
    with torch.no_grad():
        for block in module.modules():
            last_norm = getattr(block, "bn3", None) or getattr(block, "bn2", None)
            if last_norm is not None:
                last_norm.weight.mul_(0.25)
    return module


def reference_outputs(reference, tensors):
    with torch.no_grad():
        return reference(tensors).numpy()


def normalised(raw, mean, std):
    """The source transforms' `ToTensor` + `Normalize`, at native size."""
    x = torch.tensor(raw, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std


def timm_transformed(reference, raw, crop_pct):
    """timm's own evaluation transform of each raw image, to 32x32."""
    config = timm.data.resolve_data_config({}, model=reference)
    config.update(input_size=(3, 32, 32), crop_pct=crop_pct)
    transform = timm.data.create_transform(**config)
    return torch.stack([transform(Image.fromarray(image)) for image in raw])


def torchvision_transformed(raw):
    """torchvision's ImageNet weights transform (Resize(256), CenterCrop(224),
    bilinear, Normalize), scaled to a 32x32 crop: Resize(36)."""
    transform = torchvision.transforms._presets.ImageClassification(
        crop_size=32, resize_size=36
    )
    tensors = torch.tensor(raw).permute(0, 3, 1, 2)
    return torch.stack([transform(image) for image in tensors])


def our_logits(classifier, raw):
    """Our converted preprocessor, then the classifier (as `predict` does)."""
    return to_numpy(classifier(classifier.preprocessor(raw)))


def with_crop_pct(reference, crop_pct, crop_mode="center"):
    """A timm model whose pretrained_cfg (saved by `save_for_hf`) names
    this crop."""
    reference.pretrained_cfg = {
        **reference.pretrained_cfg, "crop_pct": crop_pct, "crop_mode": crop_mode,
    }
    return reference


def small_timm_vit(name="vit_tiny_patch16_224", **kwargs):
    arguments = dict(
        pretrained=False, img_size=32, patch_size=8, embed_dim=48, depth=2,
        num_heads=3, num_classes=10,
    )
    arguments.update(kwargs)
    return perturb(timm.create_model(name, **arguments))


# === Exactness per source, on real images, preprocessing included ===


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_patch16_224"])
def test_timm_vit_and_deit(padded_images, name):
    reference = small_timm_vit(name)
    classifier = convert_checkpoint(reference.state_dict(), architecture=name)
    # A bare state dict has no pretrained_cfg: timm's default crop.
    assert classifier.preprocessor.image_converter.crop_pct == 0.875
    inputs = timm_transformed(reference, padded_images, crop_pct=0.875)
    np.testing.assert_allclose(
        to_numpy(classifier.preprocessor(padded_images)),
        inputs.permute(0, 2, 3, 1).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        our_logits(classifier, padded_images),
        reference_outputs(reference, inputs),
        atol=ATOL, rtol=0,
    )


def test_timm_resnet(padded_images):
    reference = perturb_resnet(timm.create_model("resnet18", num_classes=10))
    classifier = convert_checkpoint(
        reference.state_dict(), source="timm", architecture="resnet18",
        image_shape=(32, 32, 3),
    )
    assert isinstance(classifier.backbone, ResNetBackbone)
    inputs = timm_transformed(reference, padded_images, crop_pct=0.875)
    np.testing.assert_allclose(
        our_logits(classifier, padded_images),
        reference_outputs(reference, inputs),
        atol=ATOL, rtol=0,
    )


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_torchvision_resnet(padded_images, depth):
    reference = perturb_resnet(
        getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
    )
    classifier = convert_checkpoint(
        reference.state_dict(), image_shape=(32, 32, 3)
    )
    expected = ResNetBackbone.imagenet(depth=depth).get_config()
    config = classifier.backbone.get_config()
    for key in ("stackwise_num_blocks", "block_type", "stem_type"):
        assert config[key] == expected[key]
    assert classifier.preprocessor.image_converter.crop_pct == 224 / 256
    inputs = torchvision_transformed(padded_images)
    np.testing.assert_allclose(
        to_numpy(classifier.preprocessor(padded_images)),
        inputs.permute(0, 2, 3, 1).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        our_logits(classifier, padded_images),
        reference_outputs(reference, inputs),
        atol=ATOL, rtol=0,
    )


@pytest.fixture(scope="module")
def transformers_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=3, intermediate_size=96, num_labels=10,
    )
    torch.manual_seed(0)
    reference = perturb(transformers.ViTForImageClassification(config))
    folder = str(tmp_path_factory.mktemp("google_vit"))
    reference.save_pretrained(folder)
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    return folder, reference, processor


def test_transformers_vit(raw_images, transformers_folder):
    folder, reference, processor = transformers_folder
    classifier = convert_checkpoint(folder)
    assert classifier.backbone.layer_norm_epsilon == 1e-12
    inputs = processor(list(raw_images), return_tensors="pt")["pixel_values"]
    np.testing.assert_allclose(
        to_numpy(classifier.preprocessor(raw_images)),
        inputs.permute(0, 2, 3, 1).numpy(),
        atol=1e-5,
    )
    with torch.no_grad():
        expected = reference(pixel_values=inputs).logits.numpy()
    np.testing.assert_allclose(
        our_logits(classifier, raw_images), expected, atol=ATOL, rtol=0
    )


def test_transformers_vit_model_without_head_is_a_backbone(transformers_folder):
    folder, reference, _ = transformers_folder
    backbone = convert_checkpoint(folder, task="backbone")
    assert isinstance(backbone, ViTBackbone)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3))
    with torch.no_grad():
        expected = reference.vit(
            torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2)
        ).last_hidden_state.numpy()
    np.testing.assert_allclose(
        to_numpy(backbone(images)), expected, atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("variant", ["crate", "crate_alpha"])
def test_official_crate(raw_images, variant):
    torch.manual_seed(0)
    reference_cls = ReferenceCRATE if variant == "crate" else ReferenceCRATEAlpha
    reference = perturb(
        reference_cls(32, 8, dim=48, depth=2, heads=3, dim_head=16, classes=10)
    )
    classifier = convert_checkpoint(
        {"state_dict": reference.state_dict()}, num_heads=3
    )
    assert classifier.backbone.variant == variant
    inputs = normalised(raw_images, IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_allclose(
        our_logits(classifier, raw_images),
        reference_outputs(reference, inputs),
        atol=ATOL, rtol=0,
    )


def test_crate_imagenet21k_two_layer_head_is_folded(raw_images):
    torch.manual_seed(0)
    reference = ReferenceCRATE(32, 8, dim=48, depth=2, heads=3, dim_head=16, classes=48)
    reference.head = nn.Linear(48, 21)
    perturb(reference)

    def forward(images):
        return reference.head(reference(images))

    classifier = convert_checkpoint(reference.state_dict(), source="crate", num_heads=3)
    assert classifier.num_classes == 21
    inputs = normalised(raw_images, IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_allclose(
        our_logits(classifier, raw_images),
        reference_outputs(forward, inputs),
        atol=ATOL, rtol=0,
    )


@pytest.fixture(scope="module")
def keras_hub_presets(tmp_path_factory, transformers_folder):
    """keras-hub presets made as keras-hub makes its own: by its converters.

    keras-hub's transformers loader turns the transformers ViT into a
    keras-hub ViT, its timm loader a timm ResNet-18 into a keras-hub ResNet
    (independent code from ours); each is saved as a keras-hub preset.
    """
    from timm.models._hub import save_for_hf

    root = tmp_path_factory.mktemp("keras_hub")
    vit = keras_hub.models.ViTImageClassifier.from_preset(
        transformers_folder[0],
        preprocessor=keras_hub.models.ViTImageClassifierPreprocessor(
            keras_hub.layers.ViTImageConverter(
                image_size=(32, 32), scale=1 / 127.5, offset=-1.0
            )
        ),
    )
    resnet = perturb_resnet(timm.create_model("resnet18", num_classes=10))
    save_for_hf(resnet, str(root / "timm_resnet"), safe_serialization=True)
    resnet = keras_hub.models.ResNetImageClassifier.from_preset(
        str(root / "timm_resnet")
    )
    presets = {}
    for family, model in (("vit", vit), ("resnet", resnet)):
        model.save_to_preset(str(root / family))
        presets[family] = (str(root / family), model)
    return presets


@pytest.mark.parametrize("family", ["vit", "resnet"])
def test_keras_hub_presets(raw_images, tmp_path, keras_hub_presets, family):
    preset, reference = keras_hub_presets[family]
    classifier = convert_checkpoint(preset, output_dir=str(tmp_path))
    np.testing.assert_allclose(
        to_numpy(classifier.preprocessor(raw_images)),
        to_numpy(reference.preprocessor(raw_images)),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        our_logits(classifier, raw_images),
        to_numpy(reference(reference.preprocessor(raw_images))),
        atol=ATOL, rtol=0,
    )
    with open(tmp_path / "metadata.json") as f:
        assert json.load(f)["source"] == {
            "format": "keras_hub", "checkpoint": preset,
        }


# === Preprocessing with resizing ===


def test_resizing_matches_torchvision_to_one_grey_level(raw_images):
    # torchvision resizes the PIL image with PIL's antialiased bilinear in
    # 8-bit fixed point; ours resizes floats. The same filter then agrees to
    # one grey level per pixel, and far better on average.
    reference = torchvision.models.resnet18(num_classes=10).state_dict()
    classifier = convert_checkpoint(reference, image_shape=(32, 32, 3))
    converted = classifier.preprocessor.image_converter
    converter = type(converted).from_config(
        {**converted.get_config(), "image_size": (48, 48)}
    )
    # Resize(floor(48 / 0.875)), CenterCrop(48).
    transform = torchvision.transforms._presets.ImageClassification(
        crop_size=48, resize_size=54
    )
    expected = torch.stack([transform(Image.fromarray(i)) for i in raw_images])
    difference = np.abs(
        to_numpy(converter(raw_images)) - expected.permute(0, 2, 3, 1).numpy()
    ) * np.array(IMAGENET_STD) * 255  # in grey levels
    assert difference.max() <= 1.0 + 1e-3
    assert difference.mean() <= 0.3


def smooth_image(height, width):
    """Smooth, asymmetric content: the resize kernels agree on it to the
    8-bit rounding, and a crop window off by one pixel is obvious."""
    y, x = np.mgrid[0:height, 0:width].astype("float64")
    channels = [
        127.5
        + 110 * np.sin(2 * np.pi * (x / 41 + c / 3))
        * np.cos(2 * np.pi * (y / 29 - c / 5))
        for c in range(3)
    ]
    return np.round(np.stack(channels, axis=-1)).astype("uint8")


# Non-square test images, one portrait and one landscape.
CROP_TEST_SHAPES = [(300, 200), (180, 260)]


def assert_same_crop(ours, expected, std):
    """Ours against a PIL / torchvision transform, in grey levels.

    The crop window is the same pixel for pixel; only the resampling
    arithmetic differs (PIL resizes in 8-bit fixed point, ours in float32
    with the same kernel), by at most one grey level per pixel and about
    0.2 on average on smooth images (on noise, PIL's bicubic clips its
    intermediate 8-bit pass and differs more). Shifting either output by
    one pixel costs more than 2 grey levels on average on these images, so
    a misplaced crop fails.
    """
    scale = np.asarray(std) * 255
    difference = np.abs(ours - expected) * scale
    assert difference.max() <= 1.0 + 1e-3
    assert difference.mean() <= 0.3
    assert (np.abs(ours[1:] - expected[:-1]) * scale).mean() > 2.0
    assert (np.abs(ours[:, 1:] - expected[:, :-1]) * scale).mean() > 2.0


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
@pytest.mark.parametrize("size", [(224, 224), (160, 192)], ids=["square", "oblong"])
def test_crop_pct_matches_timm_eval_transform(tmp_path, crop_mode, size):
    # A Hub folder whose pretrained_cfg asks for crop_pct 0.9, bicubic.
    from timm.models._hub import save_for_hf

    reference = with_crop_pct(small_timm_vit(), 0.9, crop_mode)
    save_for_hf(reference, str(tmp_path), safe_serialization=True)
    converted = convert_checkpoint(str(tmp_path)).preprocessor.image_converter
    assert converted.crop_pct == 0.9
    assert converted.crop_to_aspect_ratio == (crop_mode == "center")
    converter = type(converted).from_config(
        {**converted.get_config(), "image_size": size}
    )
    config = timm.data.resolve_data_config(
        {"input_size": (3, *size)}, model=reference
    )
    assert (config["crop_pct"], config["interpolation"]) == (0.9, "bicubic")
    transform = timm.data.create_transform(**config)
    for shape in CROP_TEST_SHAPES:
        image = smooth_image(*shape)
        expected = transform(Image.fromarray(image)).permute(1, 2, 0).numpy()
        ours = to_numpy(converter(image[None]))[0]
        assert ours.shape == expected.shape == (*size, 3)
        assert_same_crop(ours, expected, config["std"])


@pytest.mark.parametrize(
    "weights",
    [
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1,  # Resize(256)
        torchvision.models.ResNet50_Weights.IMAGENET1K_V2,  # Resize(232)
    ],
    ids=["v1", "v2"],
)
def test_crop_pct_matches_torchvision_weights_transforms(weights):
    transform = weights.transforms()  # Builds the transform, downloads nothing.
    crop, resize = transform.crop_size[0], transform.resize_size[0]
    converter = keras_ssl.models.ResNetImageConverter(
        image_size=(crop, crop), crop_pct=crop / resize,
        interpolation="bilinear", antialias=True,
    )
    for shape in CROP_TEST_SHAPES:
        image = smooth_image(*shape)
        ours = to_numpy(converter(image[None]))[0]
        # torchvision transforms PIL images and uint8 tensors alike.
        for source in (Image.fromarray(image), torch.tensor(image).permute(2, 0, 1)):
            expected = transform(source).permute(1, 2, 0).numpy()
            assert_same_crop(ours, expected, IMAGENET_STD)


def test_crop_pct_none_keeps_the_plain_resize(raw_images):
    ours = keras_ssl.models.ViTImageConverter(
        image_size=(24, 24), mean=(0.5,) * 3, std=(0.5,) * 3,
        interpolation="bicubic", antialias=True,
    )
    plain = keras_hub.layers.ImageConverter(
        image_size=(24, 24), scale=1 / 127.5, offset=-1.0,
        interpolation="bicubic", antialias=True, crop_to_aspect_ratio=True,
    )
    image = smooth_image(40, 30)[None]
    np.testing.assert_array_equal(to_numpy(ours(image)), to_numpy(plain(image)))


def test_crop_pct_in_a_graph_with_unknown_image_sizes():
    import tensorflow as tf

    converter = keras_ssl.models.ResNetImageConverter(
        image_size=(64, 48), crop_pct=0.875, antialias=True
    )
    images = [smooth_image(*shape).astype("float32") for shape in CROP_TEST_SHAPES]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images),
        output_signature=tf.TensorSpec((None, None, 3), tf.float32),
    ).map(converter)
    assert dataset.element_spec.shape == (64, 48, 3)
    for image, mapped in zip(images, dataset):
        np.testing.assert_allclose(
            mapped.numpy(), to_numpy(converter(image)), atol=1e-5
        )


def test_crop_pct_serialises_and_is_checked():
    converter = keras_ssl.models.ViTImageConverter(
        image_size=(32, 32), crop_pct=0.9, crop_to_aspect_ratio=False
    )
    config = converter.get_config()
    assert config["crop_pct"] == 0.9
    restored = keras_ssl.models.ViTImageConverter.from_config(config)
    assert (restored.crop_pct, restored.crop_to_aspect_ratio) == (0.9, False)
    image = smooth_image(50, 40)[None]
    np.testing.assert_array_equal(to_numpy(restored(image)), to_numpy(converter(image)))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"`crop_pct` must be in \(0, 1\]"):
            keras_ssl.models.ViTImageConverter(image_size=(32, 32), crop_pct=bad)
    with pytest.raises(ValueError, match="needs an `image_size`"):
        keras_ssl.models.ViTImageConverter(crop_pct=0.9)


# === Position embeddings of a 224 model at 32 and 384 ===


@pytest.mark.parametrize("side", [32, 384])
def test_position_interpolation_matches_timm(side):
    from timm.models.vision_transformer import checkpoint_filter_fn

    trained = small_timm_vit(img_size=224, patch_size=16, depth=1)
    resized = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=side,
        patch_size=16, embed_dim=48, depth=1, num_heads=3, num_classes=10,
    ).eval()
    resized.load_state_dict(checkpoint_filter_fn(trained.state_dict(), resized))
    classifier = convert_checkpoint(
        trained.state_dict(), num_heads=3, image_shape=(side, side, 3)
    )
    images = np.random.default_rng(0).normal(size=(2, side, side, 3))
    expected = reference_outputs(
        resized, torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2)
    )
    np.testing.assert_allclose(
        to_numpy(classifier(images)), expected, atol=ATOL, rtol=0
    )


# === Presets written by the converter ===


def test_output_dir_round_trip_and_new_head(tmp_path, raw_images):
    reference = small_timm_vit()
    classifier = convert_checkpoint(
        reference.state_dict(), architecture="vit_tiny_patch16_224",
        output_dir=str(tmp_path),
    )
    with open(tmp_path / "metadata.json") as f:
        assert json.load(f)["source"] == {
            "format": "timm", "checkpoint": "in-memory state dict",
        }
    restored = ViTImageClassifier.from_preset(str(tmp_path))
    assert restored.preprocessor.image_converter.crop_pct == 0.875
    np.testing.assert_allclose(
        our_logits(restored, raw_images), our_logits(classifier, raw_images),
        atol=1e-6,
    )
    new_head = ViTImageClassifier.from_preset(str(tmp_path), num_classes=3)
    assert new_head.output_dense.kernel.shape == (48, 3)
    np.testing.assert_allclose(
        to_numpy(new_head.backbone(np.zeros((1, 32, 32, 3)))),
        to_numpy(classifier.backbone(np.zeros((1, 32, 32, 3)))),
        atol=1e-6,
    )


def test_new_head_from_convert_checkpoint():
    reference = small_timm_vit()
    classifier = convert_checkpoint(
        reference.state_dict(), architecture="vit_tiny_patch16_224",
        num_classes=4,
    )
    assert classifier.num_classes == 4
    backbone = convert_checkpoint(
        reference.state_dict(), architecture="vit_tiny_patch16_224",
        task="backbone",
    )
    np.testing.assert_allclose(
        to_numpy(classifier.backbone.token_embedding.position_embedding),
        to_numpy(backbone.token_embedding.position_embedding),
    )


# === Safe loading ===


class _RunsCode:
    """Unpickling this would create a file: the attack weights_only stops."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "evil.pth")
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match="Refusing to load .*evil.pth.*run code"):
        convert_checkpoint(path, source="torchvision")
    assert not os.path.exists(marker)


def test_files_load_from_safetensors_and_wrapped_pth(tmp_path, raw_images):
    from safetensors.torch import save_file

    reference = perturb(ReferenceCRATEAlpha(32, 8, 48, 1, 3, 16, 10))
    state = reference.state_dict()
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.save(
        {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3},
        str(tmp_path / "model.pth"),
    )
    inputs = normalised(raw_images, IMAGENET_MEAN, IMAGENET_STD)
    expected = reference_outputs(reference, inputs)
    for name in ("model.safetensors", "model.pth"):
        classifier = convert_checkpoint(str(tmp_path / name), num_heads=3)
        np.testing.assert_allclose(
            our_logits(classifier, raw_images), expected, atol=ATOL, rtol=0
        )


# === Mismatched checkpoints ===


def test_mismatches_name_the_first_offending_parameter():
    state = small_timm_vit().state_dict()
    name = "vit_tiny_patch16_224"
    missing = {k: v for k, v in state.items() if k != "blocks.1.attn.qkv.weight"}
    with pytest.raises(ValueError, match="no parameter 'blocks.1.attn.qkv.weight'"):
        convert_checkpoint(missing, architecture=name)
    wrong = dict(state, **{"blocks.0.attn.proj.weight": torch.zeros(48, 24)})
    with pytest.raises(ValueError, match="Shape mismatch for 'blocks.0.attn.proj.weight'"):
        convert_checkpoint(wrong, architecture=name)
    extra = dict(state, **{"fc_norm.weight": torch.ones(48)})
    with pytest.raises(ValueError, match="starting with 'fc_norm.weight'"):
        convert_checkpoint(extra, architecture=name)
    resnet = torchvision.models.resnet50().state_dict()
    with pytest.raises(ValueError, match="architecture='resnet18'.*ResNet-50"):
        convert_checkpoint(resnet, architecture="resnet18")
    with pytest.raises(ValueError, match="Cannot tell the number of attention heads"):
        convert_checkpoint(state)
    crate = ReferenceCRATE(32, 8, dim=48, depth=1, heads=3, dim_head=16, classes=10)
    with pytest.raises(ValueError, match="Pass `num_heads=`"):
        convert_checkpoint(crate.state_dict())
    with pytest.raises(ValueError, match="no parameter 'conv1.weight'"):
        convert_checkpoint(crate.state_dict(), source="crate_alpha", num_heads=3)


def test_deit_distillation_token_is_refused():
    distilled = timm.create_model(
        "deit_tiny_distilled_patch16_224", pretrained=False, img_size=32,
        patch_size=8, embed_dim=48, depth=1, num_heads=3,
    )
    with pytest.raises(ValueError, match="distillation token"):
        convert_checkpoint(distilled.state_dict(), architecture="deit_tiny")


# === On-the-fly loading from a Hugging Face cache, offline ===


def _add_snapshot(cache, repo_id, files, commit="c" * 40):
    """Store `files` ({path_in_repo: local file}) as huggingface_hub does."""
    repo_cache = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    for path_in_repo, source in files.items():
        with open(source, "rb") as f:
            content = f.read()
        blob = os.path.join(repo_cache, "blobs", hashlib.sha256(content).hexdigest())
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(content)
        link = os.path.join(repo_cache, "snapshots", commit, path_in_repo)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
    os.makedirs(os.path.join(repo_cache, "refs"), exist_ok=True)
    with open(os.path.join(repo_cache, "refs", "main"), "w") as f:
        f.write(commit)


def _load_on_the_fly(loads):
    """Subprocess entry point: run each (class, handle, kwargs) on images."""
    import keras_ssl.models as models

    images = np.load(os.environ["KERAS_SSL_TEST_IMAGES"])
    results = {}
    for key, (class_name, handle, kwargs) in loads.items():
        try:
            model = getattr(models, class_name).from_preset(handle, **kwargs)
            if hasattr(model, "preprocessor") and model.preprocessor:
                outputs = model(model.preprocessor(images))
            else:
                outputs = model(images.astype("float32"))
            results[key] = keras.ops.convert_to_numpy(outputs).tolist()
        except Exception as e:
            results[key] = f"{type(e).__name__}: {e}"
    print(json.dumps(results))


@pytest.fixture(scope="module")
def on_the_fly(tmp_path_factory, raw_images):
    root = tmp_path_factory.mktemp("on_the_fly")
    cache = str(root / "hub")
    from timm.models._hub import save_for_hf

    # Their pretrained_cfg names crop_pct 1 (resize 32 -> 32): the logits
    # stay exact, and a converter that ignored the cfg would crop.
    vit = with_crop_pct(small_timm_vit(), 1.0)
    save_for_hf(vit, str(root / "vit"), safe_serialization=True)
    _add_snapshot(cache, "timm/vit_test.tiny", {
        f: str(root / "vit" / f) for f in os.listdir(root / "vit")
    })
    resnet = with_crop_pct(
        perturb_resnet(timm.create_model("resnet18", num_classes=10)), 1.0
    )
    save_for_hf(resnet, str(root / "resnet"), safe_serialization=True)
    _add_snapshot(cache, "timm/resnet18.test", {
        f: str(root / "resnet" / f) for f in os.listdir(root / "resnet")
    })
    alpha = perturb(ReferenceCRATEAlpha(32, 8, dim=48, depth=2, heads=3, dim_head=16, classes=10))
    torch.save(alpha.state_dict(), str(root / "alpha.pth"))
    _add_snapshot(cache, "crate/alpha", {"torch/alpha_b8.pth": str(root / "alpha.pth")})
    np.save(str(root / "images.npy"), raw_images)
    loads = {
        "vit_classifier": ("ViTImageClassifier", "hf://timm/vit_test.tiny", {}),
        "vit_backbone": ("ViTBackbone", "hf://timm/vit_test.tiny", {}),
        "resnet": (
            "ResNetImageClassifier", "hf://timm/resnet18.test",
            {"image_shape": (32, 32, 3)},
        ),
        "alpha": ("CRATEImageClassifier", "hf://crate/alpha/torch/alpha_b8.pth", {"num_heads": 3}),
        "absent_file": ("CRATEBackbone", "hf://crate/alpha/torch/absent.pth", {}),
    }
    python_path = [
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        os.path.dirname(os.path.dirname(os.path.abspath(keras_ssl.__file__))),
        os.environ.get("PYTHONPATH", ""),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(python_path),
        "HF_HOME": str(root),
        "HF_HUB_CACHE": cache,
        "HF_HUB_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_SSL_TEST_IMAGES": str(root / "images.npy"),
    }
    # torch before TensorFlow: torchvision after it crashes (see conftest).
    code = (
        "import sys, json, torch, torchvision; from tests import test_convert; "
        "test_convert._load_on_the_fly(json.loads(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(loads)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    return outputs, {"vit": vit, "resnet": resnet, "alpha": alpha}


def test_on_the_fly_timm_from_offline_cache(on_the_fly, raw_images):
    outputs, references = on_the_fly
    vit, resnet = references["vit"], references["resnet"]
    for key in ("vit_classifier", "vit_backbone", "resnet"):
        assert not isinstance(outputs[key], str), outputs[key]
    np.testing.assert_allclose(
        outputs["vit_classifier"],
        reference_outputs(vit, timm_transformed(vit, raw_images, crop_pct=1.0)),
        atol=ATOL, rtol=0,
    )
    images = torch.tensor(raw_images, dtype=torch.float32).permute(0, 3, 1, 2)
    with torch.no_grad():
        features = vit.forward_features(images).numpy()
    np.testing.assert_allclose(outputs["vit_backbone"], features, atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        outputs["resnet"],
        reference_outputs(
            resnet, timm_transformed(resnet, raw_images, crop_pct=1.0)
        ),
        atol=ATOL, rtol=0,
    )


def test_on_the_fly_file_inside_a_repository(on_the_fly, raw_images):
    outputs, references = on_the_fly
    assert not isinstance(outputs["alpha"], str), outputs["alpha"]
    inputs = normalised(raw_images, IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_allclose(
        outputs["alpha"], reference_outputs(references["alpha"], inputs),
        atol=ATOL, rtol=0,
    )
    assert outputs["absent_file"].startswith("FileNotFoundError")
    assert "not in the local Hugging Face cache" in outputs["absent_file"]
    assert "hf download crate/alpha torch/absent.pth" in outputs["absent_file"]


def test_crate_alpha_backbone_config_round_trip():
    backbone = CRATEBackbone(
        image_shape=(16, 16, 3), patch_size=4, hidden_dim=24, num_layers=1,
        num_heads=3, variant="crate_alpha",
    )
    assert backbone.blocks[0].layer_norm_epsilon == 1e-6
    assert backbone.final_norm.epsilon == 1e-5
    restored = CRATEBackbone.from_config(backbone.get_config())
    restored.set_weights(backbone.get_weights())
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3))
    np.testing.assert_allclose(
        to_numpy(restored(images)), to_numpy(backbone(images)), atol=1e-6
    )
    with pytest.raises(ValueError, match="Unknown CRATE `variant`"):
        CRATEBackbone(image_shape=(16, 16, 3), patch_size=4, variant="alpha")


def test_convert_script_writes_a_loadable_preset(tmp_path):
    reference = perturb(ReferenceCRATE(32, 8, dim=48, depth=1, heads=3, dim_head=16, classes=10))
    torch.save({"state_dict": reference.state_dict()}, str(tmp_path / "crate.pth"))
    script = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "scripts", "convert_crate.py",
    )
    result = subprocess.run(
        [sys.executable, script, str(tmp_path / "crate.pth"),
         str(tmp_path / "preset"), "--num-heads", "3"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "CRATEImageClassifier" in result.stdout
    classifier = keras_ssl.models.CRATEImageClassifier.from_preset(
        str(tmp_path / "preset")
    )
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3))
    np.testing.assert_allclose(
        to_numpy(classifier(images)),
        reference_outputs(
            reference, torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2)
        ),
        atol=ATOL, rtol=0,
    )
