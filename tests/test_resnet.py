import keras
import keras_hub
import numpy as np
import pytest

from keras_ssl.models.resnet import ResNetBackbone
from keras_ssl.models.resnet import ResNetImageClassifier
from keras_ssl.models.resnet import ResNetImageClassifierPreprocessor
from keras_ssl.models.resnet import ResNetImageConverter
from keras_ssl.models.resnet import ResNetStage
from keras_ssl.models.resnet import load_torchvision_state_dict


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _expected_trainable_count(
    widths, blocks, block_type, shortcut, stem_kernel, num_classes=None
):
    """Counts conv kernels and BN (gamma, beta) of the ResNet layout."""
    total = stem_kernel**2 * 3 * widths[0] + 2 * widths[0]
    channels = widths[0]
    for stage, (width, num_blocks) in enumerate(zip(widths, blocks)):
        for index in range(num_blocks):
            if block_type == "basic_block":
                out = width
                total += 9 * channels * width + 9 * width * width + 4 * width
            else:
                out = 4 * width
                total += channels * width + 9 * width * width + 4 * width
                total += width * out + 2 * out
            changes_shape = (stage > 0 and index == 0) or channels != out
            if changes_shape and shortcut == "projection":
                total += channels * out + 2 * out
            channels = out
    if num_classes:
        total += channels * num_classes + num_classes
    return total


# He et al. 2016, Table 6 (option A, CIFAR-10); ResNet-164's 1.7M is from
# "Identity Mappings in Deep Residual Networks" (pre-activation; 1.7M too).
PUBLISHED_CIFAR_PARAMS = [
    (8, "identity_pad", None),
    (20, "identity_pad", 0.27),
    (32, "identity_pad", 0.46),
    (44, "identity_pad", 0.66),
    (56, "identity_pad", 0.85),
    (110, "identity_pad", 1.7),
    (164, "projection", 1.7),
]


@pytest.mark.multibackend
@pytest.mark.parametrize("depth,shortcut,millions", PUBLISHED_CIFAR_PARAMS)
def test_cifar_parameter_counts(depth, shortcut, millions):
    backbone = ResNetBackbone.cifar(depth=depth, shortcut=shortcut)
    classifier = ResNetImageClassifier(backbone=backbone, num_classes=10)
    block_type = "bottleneck_block" if depth == 164 else "basic_block"
    num_blocks = (depth - 2) // (9 if depth == 164 else 6)
    expected = _expected_trainable_count(
        [16, 32, 64], [num_blocks] * 3, block_type, shortcut, 3, 10
    )
    assert _trainable_count(classifier) == expected
    if millions is not None:
        digits = len(str(millions).split(".")[1])
        assert round(expected / 1e6, digits) == millions
    assert backbone.stage_output_channels == (
        [64, 128, 256] if depth == 164 else [16, 32, 64]
    )


@pytest.mark.multibackend
def test_resnet20_exact_parameter_counts():
    # Option A: 269,722 parameters (the published 0.27M); projections add
    # 1x1 convs + BN for 16->32 and 32->64: 512 + 64 + 2048 + 128 = 2,752.
    counts = {}
    for shortcut in ("identity_pad", "projection"):
        backbone = ResNetBackbone.cifar(depth=20, shortcut=shortcut)
        classifier = ResNetImageClassifier(backbone=backbone, num_classes=10)
        counts[shortcut] = _trainable_count(classifier)
    assert counts == {"identity_pad": 269_722, "projection": 272_474}


@pytest.mark.multibackend
@pytest.mark.parametrize("depth", [8, 20])
@pytest.mark.parametrize("shortcut", ["projection", "identity_pad"])
def test_cifar_forward(depth, shortcut):
    backbone = ResNetBackbone.cifar(depth=depth, shortcut=shortcut)
    features = _numpy(backbone(_images((2, 32, 32, 3))))
    assert features.shape == (2, 8, 8, 64)
    assert np.all(np.isfinite(features)) and np.all(features >= 0)


@pytest.mark.multibackend
@pytest.mark.parametrize("shortcut", ["projection", "identity_pad"])
def test_bottleneck_forward(shortcut):
    backbone = ResNetBackbone(
        stackwise_num_filters=[4, 8],
        stackwise_num_blocks=[2, 1],
        stackwise_num_strides=[1, 2],
        block_type="bottleneck_block",
        shortcut=shortcut,
    )
    features = _numpy(backbone(_images((2, 9, 9, 3))))
    assert features.shape == (2, 5, 5, 32)
    assert backbone.stage_output_channels == [16, 32]


@pytest.mark.multibackend
def test_cifar_stages_piece_by_piece():
    backbone = ResNetBackbone.cifar(depth=8)
    images = _images((2, 32, 32, 3))
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)(images)
    assert {k: tuple(v.shape) for k, v in pyramid.items()} == {
        "P0": (2, 32, 32, 16),
        "P1": (2, 16, 16, 32),
        "P2": (2, 8, 8, 64),
    }
    x = backbone.stem(images)
    for stage, level in zip(backbone.stages, ["P0", "P1", "P2"]):
        x = stage(x)
        np.testing.assert_allclose(_numpy(x), _numpy(pyramid[level]), 1e-6)
    np.testing.assert_allclose(_numpy(x), _numpy(backbone(images)), 1e-6)


# --- ImageNet layout against torchvision (built once per module). ---


def _random_torchvision_resnet(depth):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(depth)
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # Gammas below 1 keep ResNet-50's activations moderate, so
                # an absolute tolerance on the logits stays meaningful.
                module.weight.uniform_(0.4, 0.9)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.fc.weight.mul_(10.0)
    return model.eval()


@pytest.fixture(scope="module", params=[18, 50])
def torchvision_pair(request):
    depth = request.param
    torch_model = _random_torchvision_resnet(depth)
    classifier = ResNetImageClassifier(
        backbone=ResNetBackbone.imagenet(depth=depth), num_classes=1000
    )
    load_torchvision_state_dict(classifier, torch_model.state_dict())
    return depth, torch_model, classifier


@pytest.mark.multibackend
def test_torchvision_logits_match(torchvision_pair):
    import torch

    _, torch_model, classifier = torchvision_pair
    images = _images((2, 64, 64, 3))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    logits = _numpy(classifier(images, training=False))
    assert np.abs(expected.numpy()).max() > 1.0
    assert np.abs(logits - expected.numpy()).max() <= 1e-4
    assert _trainable_count(classifier) == sum(
        p.numel() for p in torch_model.parameters()
    )


@pytest.mark.multibackend
def test_imagenet_stage_shapes(torchvision_pair):
    depth, _, classifier = torchvision_pair
    backbone = classifier.backbone
    images = _images((2, 64, 64, 3))
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)(images)
    widths = [64, 128, 256, 512] if depth == 18 else [256, 512, 1024, 2048]
    assert backbone.stage_output_channels == widths
    assert {k: tuple(v.shape) for k, v in pyramid.items()} == {
        f"P{level}": (2, 64 // 2**level, 64 // 2**level, width)
        for level, width in zip(range(2, 6), widths)
    }
    x = backbone.stem(images)
    assert tuple(x.shape) == (2, 16, 16, 64)
    for stage in backbone.stages:
        x = stage(x)
    np.testing.assert_allclose(_numpy(x), _numpy(pyramid["P5"]), 1e-6)


@pytest.mark.multibackend
def test_torchvision_loader_errors(torchvision_pair):
    torch = pytest.importorskip("torch")
    depth, torch_model, classifier = torchvision_pair
    state = dict(torch_model.state_dict())
    kernel = _numpy(classifier.backbone.stem.conv1.kernel)

    missing = {k: v for k, v in state.items() if k != "layer2.0.bn1.bias"}
    with pytest.raises(ValueError, match=r"no parameter `layer2\.0\.bn1\.b"):
        load_torchvision_state_dict(classifier, missing)
    extra = {**state, "layer5.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"`layer5\.0\.conv1\.weight` that"):
        load_torchvision_state_dict(classifier, extra)
    wrong = {**state, "conv1.weight": torch.ones(64, 3, 3, 3)}
    with pytest.raises(ValueError, match=r"Shape mismatch for `conv1\.weight`"):
        load_torchvision_state_dict(classifier.backbone, wrong)
    # Nothing is assigned when a check fails.
    np.testing.assert_array_equal(
        _numpy(classifier.backbone.stem.conv1.kernel), kernel
    )


# --- Serialization and presets. ---


def _tiny_classifier():
    backbone = ResNetBackbone.cifar(depth=8, shortcut="identity_pad")
    preprocessor = ResNetImageClassifierPreprocessor(
        image_converter=ResNetImageConverter(image_size=(32, 32))
    )
    return ResNetImageClassifier(
        backbone=backbone, num_classes=4, preprocessor=preprocessor
    )


@pytest.mark.multibackend
def test_config_round_trip():
    classifier = _tiny_classifier()
    images = _images((2, 32, 32, 3))
    for model in (classifier.backbone, classifier):
        restored = model.__class__.from_config(model.get_config())
        assert restored.get_config() == model.get_config()
        restored.set_weights(model.get_weights())
        np.testing.assert_allclose(
            _numpy(restored(images)), _numpy(model(images)), 1e-6
        )
    stage = classifier.backbone.stages[1]
    assert ResNetStage.from_config(stage.get_config()).get_config() == (
        stage.get_config()
    )


@pytest.mark.multibackend
def test_preset_round_trip(tmp_path):
    classifier = _tiny_classifier()
    classifier.save_to_preset(str(tmp_path))
    raw = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3))
    expected = classifier.predict(raw, verbose=0)
    images = _images((2, 32, 32, 3))
    features = _numpy(classifier.backbone(images))

    for cls in (ResNetImageClassifier, keras_hub.models.ImageClassifier):
        restored = cls.from_preset(str(tmp_path))
        assert isinstance(restored, ResNetImageClassifier)
        assert isinstance(
            restored.preprocessor, ResNetImageClassifierPreprocessor
        )
        np.testing.assert_allclose(restored.predict(raw, verbose=0), expected)
    for cls in (ResNetBackbone, keras_hub.models.Backbone):
        restored = cls.from_preset(str(tmp_path))
        assert isinstance(restored, ResNetBackbone)
        np.testing.assert_allclose(_numpy(restored(images)), features)
    converter = keras_hub.layers.ImageConverter.from_preset(str(tmp_path))
    assert isinstance(converter, ResNetImageConverter)
    original = classifier.preprocessor.image_converter.get_config()
    for key in ("image_size", "mean", "std"):
        np.testing.assert_allclose(converter.get_config()[key], original[key])


def test_image_converter_normalizes_like_torchvision():
    converter = ResNetImageConverter()
    pixels = np.random.default_rng(0).integers(0, 256, (1, 4, 4, 3))
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(
        _numpy(converter(pixels.astype("float32"))),
        (pixels / 255.0 - mean) / std,
        atol=1e-5,
    )


# --- Errors. ---


@pytest.mark.multibackend
def test_bad_images_give_clear_errors():
    classifier = _tiny_classifier()
    for model in (classifier.backbone, classifier):
        with pytest.raises(ValueError, match="needs a batch axis"):
            model(np.zeros((32, 32, 3)))
        with pytest.raises(ValueError, match="has 1 channels but the model"):
            model(np.zeros((1, 32, 32, 1)))
        with pytest.raises(ValueError, match="has 1 channels but the model"):
            model(keras.Input((32, 32, 1)))
        with pytest.raises(ValueError, match="looks channels-first"):
            model(np.zeros((1, 3, 32, 32)))


@pytest.mark.parametrize(
    "constructor,depth,message",
    [
        ("cifar", 21, r"CIFAR ResNet depth 21\. Supported depths: 8 \(basic"),
        ("imagenet", 20, r"ImageNet ResNet depth 20\. .*50 \(bottleneck\)"),
    ],
)
def test_unsupported_depth(constructor, depth, message):
    with pytest.raises(ValueError, match=message):
        getattr(ResNetBackbone, constructor)(depth=depth)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"block_type": "basic"}, "`block_type` must be one of"),
        ({"stem_type": "tiny"}, "`stem_type` must be one of"),
        ({"shortcut": "option_a"}, "`shortcut` must be one of"),
        ({"stackwise_num_blocks": [1, 1]}, "of equal length"),
        ({"stackwise_num_strides": [1, 3, 2]}, "powers of two"),
        ({"image_shape": (32, 32, None)}, "known channel count"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetBackbone(**kwargs)


@pytest.mark.parametrize(
    "size, kernel, stride",
    [(3, 3, 1), (4, 3, 2), (5, 3, 2), (2, 1, 2), (7, 7, 2), (6, 3, 1)],
)
def test_fast_tensorflow_conv_gradient_equals_tensorflow_own(size, kernel, stride):
    # The TF-only fast gradient on small maps (at most 16 output pixels)
    # against TF's gradient of a plain Conv2D.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fast gradient replaces a TensorFlow kernel only")
    import tensorflow as tf

    from keras_ssl.models.resnet.resnet_layers import ResNetConv2D

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, size, size, 8)).astype("float32"))
    fast = ResNetConv2D(6, kernel, strides=stride, use_bias=False)
    fast.build(x.shape)
    plain = keras.layers.Conv2D(6, kernel, strides=stride, use_bias=False)
    plain.build(x.shape)
    plain.set_weights(fast.get_weights())
    results = []
    for layer in (fast, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        results.append([y, *tape.gradient(loss, [x, layer.kernel])])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


def _load_fidelity_reference():
    """The plain-PyTorch CIFAR ResNet of `scripts/reference_torch_cifar_resnet.py`."""
    import importlib.util
    import os

    path = os.path.join(
        os.path.dirname(os.path.dirname(__file__)),
        "scripts", "reference_torch_cifar_resnet.py",
    )
    spec = importlib.util.spec_from_file_location("reference_torch_cifar_resnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.multibackend
def test_cifar_resnet_is_the_fidelity_reference_architecture():
    # The presets' fidelity check compares our training with this PyTorch
    # model's; that only means something if the two are the same network.
    import torch

    torch.manual_seed(0)
    reference = _load_fidelity_reference().CifarResNet(depth=20, num_classes=10)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in reference.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    ours = ResNetImageClassifier(
        backbone=ResNetBackbone.cifar(depth=20, image_shape=(32, 32, 3)), num_classes=10
    )
    # Copies: on JAX, assigning a torch tensor's numpy view can alias its
    # memory, and the reference's training-mode call below updates its BN
    # statistics in place.
    torch_tensors = [
        tensor.numpy().copy()
        for name, tensor in reference.state_dict().items()
        if not name.endswith("num_batches_tracked")
    ]
    assert len(torch_tensors) == len(ours.weights)
    for weight, tensor in zip(ours.weights, torch_tensors):
        if tensor.ndim == 4:
            tensor = tensor.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif tensor.ndim == 2:
            tensor = tensor.T
        assert tuple(weight.shape) == tensor.shape, weight.path
        weight.assign(tensor)
    # Per-image colour offsets, so that pooled features differ by image.
    images = _images((4, 32, 32, 3)) + 2 * _images((4, 1, 1, 3), seed=1)
    torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2))
    with torch.no_grad():
        expected_eval = reference.eval()(torch_images).numpy()
        expected_train = reference.train()(torch_images).numpy()
    # Non-trivial logits that differ from image to image.
    assert np.abs(expected_eval).max() > 0.2
    assert np.ptp(expected_eval, axis=0).max() > 0.1
    np.testing.assert_allclose(
        _numpy(ours(images, training=False)), expected_eval, atol=1e-4, rtol=1e-4
    )
    # Training mode: batch statistics, same epsilon.
    np.testing.assert_allclose(
        _numpy(ours(images, training=True)), expected_train, atol=1e-4, rtol=1e-4
    )
    assert _trainable_count(ours) == sum(p.numel() for p in reference.parameters())
