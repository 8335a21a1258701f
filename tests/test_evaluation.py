"""Evaluation protocols: features, k-NN, linear probe, fine-tune, plots."""

import time

import keras
import numpy as np
import pytest

from keras_ssl.data import load_dataset
from keras_ssl.evaluation import extract_features
from keras_ssl.evaluation import fine_tune
from keras_ssl.evaluation import knn_classify
from keras_ssl.evaluation import linear_probe
from keras_ssl.methods import Supervised
from keras_ssl.models import ResNetBackbone
from tests.conftest import sample_subset
from tests.conftest import to_numpy


def brute_force_knn(train, train_labels, test, k, temperature, num_classes):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    predictions = []
    for query in test:
        similarity = train @ query
        order = np.argsort(-similarity)[:k]
        votes = np.zeros(num_classes)
        for index in order:
            votes[train_labels[index]] += np.exp(similarity[index] / temperature)
        predictions.append(np.argmax(votes))
    return np.array(predictions)


@pytest.mark.parametrize(
    "k, temperature, num_classes", [(1, 0.07, 5), (20, 0.07, 10), (200, 0.5, 3)]
)
def test_knn_equals_brute_force(k, temperature, num_classes):
    rng = np.random.default_rng(k)
    train = rng.normal(size=(600, 16)).astype("float32")
    labels = rng.integers(0, num_classes, size=600)
    test = rng.normal(size=(150, 16)).astype("float32")
    predictions = knn_classify(
        train, labels, test, k=k, temperature=temperature,
        num_classes=num_classes, batch_size=64,
    )
    np.testing.assert_array_equal(
        predictions, brute_force_knn(train, labels, test, k, temperature, num_classes)
    )


def test_knn_is_fast_at_cifar_scale():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50_000, 64)).astype("float32")
    labels = rng.integers(0, 10, size=50_000)
    test = rng.normal(size=(10_000, 64)).astype("float32")
    start = time.time()
    predictions = knn_classify(train, labels, test, k=200)
    assert predictions.shape == (10_000,)
    # Well under a minute even on 2 shared CPU cores.
    assert time.time() - start < 60


def test_knn_bad_arguments_are_refused():
    features = np.ones((4, 3), "float32")
    with pytest.raises(ValueError, match=r"`k` must be an int in \[1, 4\]"):
        knn_classify(features, np.zeros(4, int), features, k=5)
    with pytest.raises(ValueError, match="3 dims but test features have 2"):
        knn_classify(features, np.zeros(4, int), features[:, :2])
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(features, np.zeros(4, int), features, k=2, temperature=0)


@pytest.fixture(scope="module")
def trained_features():
    """Features of a ResNet-8 trained briefly (supervised) on the sample."""
    keras.utils.set_random_seed(0)
    backbone = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    model = Supervised(backbone, num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(
        load_dataset("sample", batch_size=64, augment="cifar", seed=0),
        epochs=6, verbose=0,
    )
    train = extract_features(
        backbone, load_dataset("sample", batch_size=250), verbose=0
    )
    test = extract_features(
        backbone, load_dataset("sample", split="test", batch_size=100), verbose=0
    )
    return backbone, train, test


def test_knn_on_real_features_beats_chance(trained_features):
    _, (train, train_labels), (test, test_labels) = trained_features
    assert train.shape == (1500, 64) and test.shape == (300, 64)
    accuracy = np.mean(knn_classify(train, train_labels, test) == test_labels)
    assert accuracy > 0.25, accuracy  # chance: 0.10


@pytest.mark.parametrize("head", ["linear", "two_fc"])
def test_linear_probe_on_real_features_beats_chance(trained_features, head):
    _, train, test = trained_features
    result = linear_probe(*train, *test, head=head, epochs=20, batch_size=64)
    assert result.accuracy > 0.25, result.accuracy
    assert len(result.model.layers) == (1 if head == "linear" else 2)


def test_fine_tune_trains_a_copy(trained_features):
    backbone = trained_features[0]
    before = [to_numpy(w).copy() for w in backbone.weights]
    images, labels = sample_subset(200)
    test = load_dataset("sample", split="test", batch_size=100)
    result = fine_tune(
        backbone, (images, labels), test, num_classes=10, epochs=2, head="two_fc"
    )
    assert result.accuracy > 0.15, result.accuracy
    assert len(result.history.history["loss"]) == 2
    for old, new in zip(before, backbone.weights):
        np.testing.assert_array_equal(old, to_numpy(new))


@pytest.mark.multibackend
def test_extract_features_from_arrays_and_datasets_agree():
    backbone = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    images, labels = sample_subset(20)
    from_arrays, array_labels = extract_features(
        backbone, (images, labels), batch_size=8, verbose=0
    )
    from_dataset, dataset_labels = extract_features(
        backbone, load_dataset((images, labels), batch_size=8, shuffle=False),
        verbose=0,
    )
    assert from_arrays.shape == (20, 64)
    np.testing.assert_allclose(from_arrays, from_dataset, atol=1e-5)
    np.testing.assert_array_equal(array_labels, labels)
    np.testing.assert_array_equal(dataset_labels, labels)
    unlabelled, none = extract_features(backbone, images, verbose=0)
    assert none is None and unlabelled.shape == (20, 64)


def test_bad_head_is_refused():
    features = np.ones((4, 3), "float32")
    labels = np.arange(4)
    with pytest.raises(ValueError, match="`head` must be 'linear' or 'two_fc'"):
        linear_probe(features, labels, features, labels, head="mlp")


def test_tsne_and_gradcam_plots_are_written(tmp_path, trained_features):
    from keras_ssl.methods import PatchRelNet
    from keras_ssl.methods import PatchRotNet
    from keras_ssl.visualization import gradcam_maps
    from keras_ssl.visualization import plot_gradcam
    from keras_ssl.visualization import plot_tsne

    _, (features, labels), _ = trained_features
    path = plot_tsne(features[:200], labels[:200], str(tmp_path / "tsne.png"))
    assert (tmp_path / "tsne.png").stat().st_size > 10_000 and path.endswith(".png")

    images = sample_subset(2)[0]
    backbone = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    for method in (PatchRotNet, PatchRelNet):
        model = method(backbone, seed=0)
        views, maps = gradcam_maps(model, images, offsets=np.array([[0, 0], [5, 9]]))
        assert views.shape == (2, 8, 32, 32, 3) and maps.shape == (2, 8, 8, 8)
        # Scaled to [0, 1] per map (all zero where the ReLU removes all).
        peaks = maps.max(axis=(2, 3))
        assert maps.min() >= 0.0 and np.all(np.isclose(peaks, 1) | (peaks == 0))
        assert np.isclose(peaks, 1).any()
    plot_gradcam(model, images, str(tmp_path / "gradcam.png"))
    assert (tmp_path / "gradcam.png").stat().st_size > 10_000


def test_gradcam_matches_autodiff():
    import tensorflow as tf

    from keras_ssl.methods import PatchRelNet
    from keras_ssl.visualization import gradcam_maps

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference gradient uses tf.GradientTape")
    model = PatchRelNet(ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)))
    images = sample_subset(1)[0]
    offsets = np.array([[3, 4]])
    views, maps = gradcam_maps(model, images, offsets)
    features = model.backbone(model.preprocessor(views[0]), training=False)
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = tf.reduce_mean(features, axis=(1, 2))[None]
        logits = model.classify(pooled)  # [1, 4, 4]
        score = tf.reduce_sum(tf.linalg.diag_part(logits[0]))
    alpha = tf.reduce_mean(tape.gradient(score, features), axis=(1, 2))
    expected = tf.nn.relu(tf.einsum("vhwc,vc->vhw", features, alpha)).numpy()
    expected /= np.maximum(expected.max(axis=(1, 2), keepdims=True), 1e-12)
    np.testing.assert_allclose(maps[0], expected, atol=1e-4)
