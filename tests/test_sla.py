"""SLA: rotations, joint labels, single/aggregated/self-distilled inference,
training on every backend, save/load and export."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_ssl.methods import SLA
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.ops import rotate_images
from tests.conftest import sample_subset
from tests.conftest import to_numpy


def resnet8(image_shape=(32, 32, 3)):
    return ResNetBackbone.cifar(depth=8, image_shape=image_shape)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.multibackend
@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5])
def test_rotations_match_numpy(turns):
    images = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype("float32")
    expected = np.rot90(images, turns, axes=(1, 2))
    np.testing.assert_array_equal(to_numpy(rotate_images(images, turns)), expected)


@pytest.mark.multibackend
def test_joint_logits_and_inference_match_numpy():
    model = SLA(resnet8(), 10, self_distillation=True)
    head = model.task.head
    head.set_weights([np.random.default_rng(0).normal(size=w.shape) for w in head.get_weights()])
    images, labels = sample_subset(6)
    preprocessed = to_numpy(model.preprocessor(images))
    trace = model.trace(keras.ops.convert_to_tensor(preprocessed), training=False)
    outputs = model.task(trace, training=False)
    joint = to_numpy(outputs["joint_logits"])[:, 0]
    assert joint.shape == (6, 4, 40)
    kernel, bias = (to_numpy(w) for w in head.weights)
    # Each rotation through the plain classifier's features, by hand.
    for turns in range(4):
        rotated = np.rot90(preprocessed, turns, axes=(1, 2)).copy()
        features = to_numpy(model.trace(keras.ops.convert_to_tensor(rotated), training=False)["features"])[:6]
        np.testing.assert_allclose(joint[:, turns], features @ kernel + bias, rtol=1e-4, atol=1e-4)
    expected = {
        "si": joint[:, 0, 0::4],
        "ag": np.mean([joint[:, r, r::4] for r in range(4)], axis=0),
        "sd": to_numpy(model.classifier.predict(images, verbose=0)),
    }
    for mode, logits in expected.items():
        np.testing.assert_allclose(
            model.predict(images, inference=mode, verbose=0), logits, rtol=1e-4, atol=1e-4
        )
    # Loss: joint CE over the 4 rotations plus T^2 KL(agg || single).
    ce = -np.mean([log_softmax(joint[b, r])[labels[b] * 4 + r] for b in range(6) for r in range(4)])
    teacher = log_softmax(expected["ag"])
    single = to_numpy(outputs["classifier_logits"])
    kl = np.mean(np.sum(np.exp(teacher) * (teacher - log_softmax(single)), -1))
    np.testing.assert_allclose(
        to_numpy(model.task.compute_task_loss(outputs, labels)), ce + kl, rtol=1e-4
    )


@pytest.mark.multibackend
def test_rotations_share_one_batchnorm_batch_with_the_originals():
    model = SLA(resnet8(), 10)
    raw = sample_subset(4)[0]
    outputs = model(raw, training=True)
    images = keras.ops.convert_to_tensor(model.preprocessor(raw))
    joint = to_numpy(outputs["sla"]["joint_logits"])[:, 0]
    # By hand: the 4 images and their 12 rotations as one training batch.
    rotated = np.concatenate([np.rot90(to_numpy(images), turns, axes=(1, 2)) for turns in range(4)])
    features = to_numpy(model.backbone(keras.ops.convert_to_tensor(rotated), training=True))
    features = features.mean(axis=(1, 2)).reshape(4, 4, -1).transpose(1, 0, 2)
    kernel, bias = (to_numpy(w) for w in model.task.head.weights)
    np.testing.assert_allclose(joint, features @ kernel + bias, rtol=1e-4, atol=1e-4)
    assert outputs["logits"].shape == (4, 10)
    np.testing.assert_allclose(
        to_numpy(outputs["sla"]["classifier_logits"]), to_numpy(outputs["logits"]), rtol=1e-5
    )


@pytest.mark.multibackend
@pytest.mark.parametrize("self_distillation", [False, True])
def test_fit_lowers_the_loss(self_distillation):
    images, labels = sample_subset(64)
    model = SLA(resnet8(), 10, self_distillation=self_distillation)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, labels, batch_size=16, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    assert "sla_si_accuracy" in history.history


@pytest.mark.multibackend
def test_save_load_and_export(tmp_path):
    images, labels = sample_subset(16)
    model = SLA(resnet8(), 10, self_distillation=True, inference="ag")
    model.compile()
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "sla.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is SLA and restored.inference == "ag"
    np.testing.assert_allclose(
        restored.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )
    for mode in ("si", "sd"):
        folder = str(tmp_path / mode)
        model.export_classifier(folder, inference=mode)
        classifier = keras_hub.models.ImageClassifier.from_preset(folder)
        np.testing.assert_allclose(
            to_numpy(classifier.predict(images, verbose=0)),
            model.predict(images, inference=mode, verbose=0),
            atol=1e-4,
        )


def test_works_with_a_token_backbone():
    backbone = ViTBackbone(image_shape=(32, 32, 3), patch_size=8, hidden_dim=32,
                           num_layers=1, num_heads=2, mlp_dim=64)
    images, labels = sample_subset(16)
    model = SLA(backbone, 10)
    model.compile()
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["sla_loss"][0])


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="`transforms` must be 'rotation'"):
        SLA(resnet8(), 10, transforms="colour")
    with pytest.raises(ValueError, match="images must be square"):
        SLA(resnet8(image_shape=(32, 48, 3)), 10)
    with pytest.raises(ValueError, match="only trained with `self_distillation=True`"):
        SLA(resnet8(), 10, inference="sd")
    with pytest.raises(ValueError, match="`inference` must be one of"):
        SLA(resnet8(), 10, inference="vote")
    with pytest.raises(ValueError, match="`temperature` must be positive"):
        SLA(resnet8(), 10, temperature=0.0)


def test_two_tasks_that_expand_the_batch_are_refused():
    from keras_ssl.methods import RotationLabelTask
    from keras_ssl.methods import Supervised

    with pytest.raises(ValueError, match="Only one auxiliary task may append"):
        Supervised(
            resnet8(), 10, auxiliary_tasks=[RotationLabelTask(), RotationLabelTask(name="sla_2")]
        )
