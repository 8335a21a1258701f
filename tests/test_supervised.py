"""The Supervised baseline: training on real images on every backend."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_ssl.data import load_dataset
from keras_ssl.methods import Supervised
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from tests.conftest import sample_subset
from tests.conftest import to_numpy

BACKBONES = {
    "vit": lambda: ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=32, num_layers=2,
        num_heads=2, mlp_dim=64,
    ),
    "crate": lambda: CRATEBackbone(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=32, num_layers=2,
        num_heads=2,
    ),
    "resnet": lambda: ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)),
}


def sample_batch(count=64):
    return sample_subset(count)


@pytest.mark.multibackend
@pytest.mark.parametrize("family", BACKBONES)
def test_fit_lowers_the_loss_on_real_images(family):
    images, labels = sample_batch()
    model = Supervised(BACKBONES[family](), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    first = model.evaluate(images, labels, verbose=0, return_dict=True)["loss"]
    model.fit(images, labels, batch_size=32, epochs=8, verbose=0)
    last = model.evaluate(images, labels, verbose=0, return_dict=True)["loss"]
    assert last < 0.8 * first, (first, last)


@pytest.mark.multibackend
def test_fit_on_a_dataset_and_export_the_classifier(tmp_path):
    model = Supervised(BACKBONES["vit"](), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = load_dataset("sample", split="test", batch_size=50, augment="cifar")
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.export_classifier(str(tmp_path))
    restored = keras_hub.models.ImageClassifier.from_preset(str(tmp_path))
    images = sample_batch(4)[0]
    np.testing.assert_allclose(
        to_numpy(restored.predict(images, verbose=0)),
        to_numpy(model.predict(images, verbose=0)),
        atol=1e-5,
    )


@pytest.mark.multibackend
def test_save_and_load_the_training_model(tmp_path):
    model = Supervised(BACKBONES["crate"](), num_classes=10)
    model.compile(optimizer="adamw")
    images, labels = sample_batch(8)
    model.fit(images, labels, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(restored.predict(images, verbose=0)),
        to_numpy(model.predict(images, verbose=0)),
        atol=1e-5,
    )


@pytest.mark.multibackend
def test_labels_out_of_range_are_refused():
    images, labels = sample_batch(8)
    model = Supervised(BACKBONES["resnet"](), num_classes=5)
    model.compile()
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\)"):
        model.fit(images, labels + 5, epochs=1, verbose=0)
    data = load_dataset((images, labels + 5), batch_size=4)
    with pytest.raises(Exception, match="num_classes=5"):
        model.fit(data, epochs=1, verbose=0)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="positive int"):
        Supervised(BACKBONES["vit"](), num_classes=0)
    with pytest.raises(ValueError, match="No keras_ssl classifier"):
        Supervised(keras.Sequential([keras.layers.Dense(2)]), num_classes=2)

