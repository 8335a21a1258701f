"""RotNet, Patch RotNet and Patch RelNet: views, labels, training."""

import keras
import numpy as np
import pytest

from keras_ssl.data import load_dataset
from keras_ssl.methods import PatchRelNet
from keras_ssl.methods import PatchRotNet
from keras_ssl.methods import RotNet
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.ops import all_rotations
from keras_ssl.ops import paste_patches
from tests.conftest import sample_subset
from tests.conftest import to_numpy

METHODS = {"rotnet": RotNet, "patch_rotnet": PatchRotNet, "patch_relnet": PatchRelNet}


def resnet8():
    return ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))


def bilinear_resize(image, size):
    """Reference bilinear resize (half-pixel centres, no antialiasing)."""
    def taps(in_size):
        source = (np.arange(size) + 0.5) * in_size / size - 0.5
        source = np.clip(source, 0, in_size - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, source - low

    rows_low, rows_high, row_weight = taps(image.shape[0])
    cols_low, cols_high, col_weight = taps(image.shape[1])
    top = (
        image[rows_low][:, cols_low] * (1 - col_weight)[None, :, None]
        + image[rows_low][:, cols_high] * col_weight[None, :, None]
    )
    bottom = (
        image[rows_high][:, cols_low] * (1 - col_weight)[None, :, None]
        + image[rows_high][:, cols_high] * col_weight[None, :, None]
    )
    weight = row_weight[:, None, None]
    return top * (1 - weight) + bottom * weight


@pytest.mark.multibackend
def test_rotations_equal_numpy_rot90():
    images = sample_subset(3)[0]
    rotations = to_numpy(all_rotations(images))
    assert rotations.shape == (3, 4, 32, 32, 3)
    for k in range(4):
        np.testing.assert_array_equal(
            rotations[:, k], np.rot90(images, k, axes=(1, 2))
        )


@pytest.mark.multibackend
def test_paste_puts_each_patch_in_its_box():
    images = np.zeros((2, 6, 7, 1), "float32")
    patches = np.arange(2 * 2 * 3, dtype="float32").reshape(2, 2, 3, 1) + 1
    pasted = to_numpy(paste_patches(images, patches, np.array([[0, 4], [3, 1]])))
    expected = images.copy()
    expected[0, 0:2, 4:7] = patches[0]
    expected[1, 3:5, 1:4] = patches[1]
    np.testing.assert_array_equal(pasted, expected)


@pytest.mark.multibackend
@pytest.mark.parametrize("method", ["patch_rotnet", "patch_relnet"])
def test_patched_images_are_the_upright_image_with_the_resized_rotation(method):
    images = sample_subset(4)[0]
    model = METHODS[method](resnet8(), patch_ratio=0.4, seed=3)
    offsets = to_numpy(model.sample_offsets(images))
    views = to_numpy(model.generate_views(images, offsets))
    assert views.shape == (4, 8, 32, 32, 3)
    side = 13  # round(0.4 * 32)
    for b, (row, col) in enumerate(offsets):
        assert 0 <= row <= 32 - side and 0 <= col <= 32 - side
        box = np.zeros((32, 32), bool)
        box[row:row + side, col:col + side] = True
        for k in range(4):
            rotated = np.rot90(images[b], k)
            np.testing.assert_array_equal(views[b, k], rotated)
            patched = views[b, 4 + k]
            np.testing.assert_array_equal(patched[~box], images[b][~box])
            np.testing.assert_allclose(
                patched[row:row + side, col:col + side],
                bilinear_resize(rotated, side),
                atol=1e-3,
            )


def test_paste_positions_are_uniform_over_the_valid_range():
    model = PatchRotNet(resnet8(), patch_ratio=0.4, seed=0)
    offsets = to_numpy(model.sample_offsets(np.zeros((4000, 32, 32, 3), "float32")))
    # 20 valid corners per axis (0..19), each drawn ~200 times.
    for axis in range(2):
        counts = np.bincount(offsets[:, axis], minlength=20)
        assert len(counts) == 20
        assert counts.min() > 120, counts
    assert not np.array_equal(offsets[:, 0], offsets[:, 1])


@pytest.mark.multibackend
@pytest.mark.parametrize(
    "method, shape, labels",
    [
        ("rotnet", (2, 4, 4), [0, 1, 2, 3]),
        ("patch_rotnet", (2, 8, 8), list(range(8))),
        ("patch_relnet", (2, 4, 4), [0, 1, 2, 3]),
    ],
)
def test_loss_is_cross_entropy_against_the_transformation_labels(
    method, shape, labels
):
    model = METHODS[method](resnet8())
    model.compile()
    images = sample_subset(2)[0]
    y_pred = model(images)
    assert tuple(y_pred.shape) == shape
    np.testing.assert_array_equal(to_numpy(model.pretext_labels()), labels)
    logits = to_numpy(y_pred).reshape(-1, shape[-1])
    targets = np.tile(labels, 2)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(len(targets)), targets].mean()
    # Labels given with the images are ignored.
    loss = model.compute_loss(images, np.array([7, 9]), y_pred)
    np.testing.assert_allclose(to_numpy(loss), expected, rtol=1e-5)


@pytest.mark.multibackend
@pytest.mark.parametrize("method", list(METHODS))
def test_fit_lowers_the_loss_on_real_images(method):
    images, labels = sample_subset(64)
    model = METHODS[method](resnet8(), **({} if method == "rotnet" else {"seed": 0}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # (images, labels): the labels are ignored. The training loss is
    # compared: BatchNorm's moving statistics lag behind in 8 steps.
    losses = model.fit(images, labels, batch_size=32, epochs=4, verbose=0)
    first, last = losses.history["loss"][0], losses.history["loss"][-1]
    assert last < 0.9 * first, (first, last)


@pytest.mark.multibackend
def test_patch_relnet_on_a_transformer_trains_from_a_dataset():
    backbone = ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=32, num_layers=1,
        num_heads=2, mlp_dim=64,
    )
    model = PatchRelNet(backbone, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = load_dataset(sample_subset(16), batch_size=8)
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["accuracy"][0] <= 1.0


def test_save_and_load(tmp_path):
    model = RotNet(resnet8())
    model.compile()
    images = sample_subset(4)[0]
    model.fit(images, epochs=1, verbose=0)
    path = str(tmp_path / "rotnet.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(restored.predict(images, verbose=0)),
        to_numpy(model.predict(images, verbose=0)),
        atol=1e-5,
    )
    config = PatchRotNet(resnet8(), patch_ratio=0.3, seed=5).get_config()
    assert PatchRotNet.from_config(config).patch_ratio == 0.3


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.2, "0.4"])
def test_patch_ratio_outside_the_open_unit_interval_is_refused(ratio):
    with pytest.raises(ValueError, match=r"`patch_ratio`.*must be in \(0, 1\)"):
        PatchRotNet(resnet8(), patch_ratio=ratio)


def test_images_too_small_for_the_ratio_are_refused():
    tiny = ResNetBackbone.cifar(depth=8, image_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="too small for patch_ratio=0.1"):
        PatchRelNet(tiny, patch_ratio=0.1)
    with pytest.raises(ValueError, match="too small for patch_ratio=0.9"):
        PatchRotNet(tiny, patch_ratio=0.9)
    unsized = ResNetBackbone.cifar(depth=8, image_shape=(None, None, 3))
    model = PatchRotNet(unsized, patch_ratio=0.2)
    with pytest.raises(ValueError, match="Images of side 5 are too small"):
        model(np.zeros((1, 5, 5, 3), "float32"))


def test_other_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="square inputs"):
        RotNet(ResNetBackbone.cifar(depth=8, image_shape=(32, 48, 3)))
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        RotNet(resnet8(), pooling="token")
    with pytest.raises(ValueError, match="`preprocessor` must be"):
        PatchRotNet(resnet8(), preprocessor="imagenet")
    unsized = ResNetBackbone.cifar(depth=8, image_shape=(None, None, 3))
    with pytest.raises(ValueError, match="need square images"):
        RotNet(unsized)(np.zeros((1, 32, 40, 3), "float32"))
