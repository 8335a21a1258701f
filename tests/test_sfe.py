"""SFE: channel groups, pool-then-mask, joint labels, inference modes,
training on every backend, save/load and export."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_ssl.methods import SFE
from keras_ssl.methods import DroppedChannelsTask
from keras_ssl.methods import RotationLabelTask
from keras_ssl.methods import Supervised
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.ops import channel_drop_masks
from keras_ssl.ops import channel_groups
from keras_ssl.ops import joint_cross_entropy
from keras_ssl.ops import joint_labels
from tests.conftest import sample_subset
from tests.conftest import to_numpy


def resnet8():
    return ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_masks(permutation, num_groups):
    """Listing 1 of the paper: group g drops permutation[g*C//k:(g+1)*C//k]."""
    channels = len(permutation)
    masks = [np.ones(channels)]
    for group in range(num_groups):
        mask = np.ones(channels)
        mask[permutation[group * channels // num_groups:(group + 1) * channels // num_groups]] = 0
        masks.append(mask)
    return np.stack(masks)


@pytest.mark.parametrize("channels,num_groups", [(64, 8), (32, 4), (30, 8)])
def test_groups_are_disjoint_and_cover_all_channels(channels, num_groups):
    permutation = np.random.default_rng(1).permutation(channels)
    groups = to_numpy(channel_groups(keras.ops.convert_to_tensor(permutation), num_groups))
    masks = to_numpy(channel_drop_masks(keras.ops.convert_to_tensor(permutation), num_groups))
    assert masks.shape == (num_groups + 1, channels)
    np.testing.assert_array_equal(masks[0], 1.0)
    dropped = 1 - masks[1:]
    # Each channel is dropped by exactly one transformation.
    np.testing.assert_array_equal(dropped.sum(0), 1.0)
    np.testing.assert_array_equal(dropped.argmax(0), groups)
    sizes = dropped.sum(1)
    assert sizes.max() - sizes.min() <= (0 if channels % num_groups == 0 else 1)
    np.testing.assert_array_equal(masks, numpy_masks(permutation, num_groups))


def test_joint_labels_and_loss_match_numpy():
    labels = np.array([0, 3, 9])
    np.testing.assert_array_equal(
        to_numpy(joint_labels(labels, 4)),
        [[0, 1, 2, 3], [12, 13, 14, 15], [36, 37, 38, 39]],
    )
    logits = np.random.default_rng(0).normal(size=(3, 4, 40)).astype("float32")
    expected = -np.mean(
        [log_softmax(logits[b, j])[labels[b] * 4 + j] for b in range(3) for j in range(4)]
    )
    np.testing.assert_allclose(to_numpy(joint_cross_entropy(logits, labels)), expected, rtol=1e-5)


def reference_joint_logits(stage_output, permutation, head, num_transforms):
    """The paper's path: mask the K feature maps, then pool each."""
    masks = numpy_masks(permutation, num_transforms - 1)
    maps = stage_output[:, None] * masks[None, :, None, None, :]
    pooled = maps.mean(axis=(2, 3))
    kernel, bias = (to_numpy(w) for w in head.weights)
    return pooled @ kernel + bias


@pytest.mark.multibackend
def test_pool_then_mask_equals_mask_then_pool_and_inference_matches_numpy():
    model = SFE(resnet8(), 10, seed=3)
    images, labels = sample_subset(8)
    # Random heads so that no column is trivially zero.
    for head in model.task.heads:
        head.set_weights([np.random.default_rng(0).normal(size=w.shape) for w in head.get_weights()])
    trace = model.trace(model.preprocessor(images), training=False)
    outputs = model.task(trace, training=False)
    joint = to_numpy(outputs["joint_logits"])
    assert joint.shape == (8, 2, 9, 90)
    for index, stage in enumerate((1, 2)):
        expected = reference_joint_logits(
            to_numpy(trace["stage_outputs"][stage]),
            to_numpy(model.task.permutations[index]),
            model.task.heads[index],
            9,
        )
        np.testing.assert_allclose(joint[:, index], expected, rtol=1e-4, atol=1e-4)
    # Inference modes, from the joint logits by hand: map j's column j.
    conditional = np.stack([joint[:, :, j, j::9] for j in range(9)], axis=2)
    expected = {
        "si": joint[:, -1, 0, 0::9],
        "ag": conditional.mean(axis=(1, 2)),
        "sd": to_numpy(model.classifier.predict(images, verbose=0)),
    }
    for mode, logits in expected.items():
        np.testing.assert_allclose(
            model.predict(images, inference=mode, verbose=0), logits, rtol=1e-4, atol=1e-4
        )
    # The loss: beta * penultimate + last joint CE, plus T^2 KL(agg || single).
    single = to_numpy(outputs["classifier_logits"])
    ce = [
        -np.mean([log_softmax(joint[b, i, j])[labels[b] * 9 + j] for b in range(8) for j in range(9)])
        for i in range(2)
    ]
    teacher = log_softmax(expected["ag"])
    kl = np.mean(np.sum(np.exp(teacher) * (teacher - log_softmax(single)), -1))
    np.testing.assert_allclose(
        to_numpy(model.task.compute_task_loss(outputs, labels)),
        0.5 * ce[0] + ce[1] + kl,
        rtol=1e-4,
    )


@pytest.mark.multibackend
def test_propagated_maps_match_materialised_maps():
    model = SFE(resnet8(), 10, num_transforms=5, transform_stages=(0,), propagate=True, seed=1)
    images = sample_subset(4)[0]
    trace = model.trace(model.preprocessor(images), training=False)
    joint = to_numpy(model.task(trace, training=False)["joint_logits"])
    assert joint.shape == (4, 1, 5, 50)
    masks = numpy_masks(to_numpy(model.task.permutations[0]), 4)
    features = to_numpy(trace["stage_outputs"][0])[:4]
    for j in range(5):
        x = keras.ops.convert_to_tensor((features * masks[j]).astype("float32"))
        for stage in model.backbone.stages[1:]:
            x = stage(x, training=False)
        pooled = to_numpy(x).mean(axis=(1, 2))
        kernel, bias = (to_numpy(w) for w in model.task.heads[0].weights)
        np.testing.assert_allclose(joint[:, 0, j], pooled @ kernel + bias, rtol=1e-4, atol=1e-4)


@pytest.mark.multibackend
def test_propagated_maps_share_one_batchnorm_batch_with_the_originals():
    model = SFE(resnet8(), 10, num_transforms=5, transform_stages=(0,), propagate=True, seed=1)
    raw = sample_subset(4)[0]
    outputs = model(raw, training=True)
    images = keras.ops.convert_to_tensor(model.preprocessor(raw))
    joint = to_numpy(outputs["sfe"]["joint_logits"])[:, 0]
    # By hand: the 4 originals and their 4 x 4 dropped-group maps as one
    # batch of 20 through the later stages, in training mode.
    backbone = model.backbone
    features = to_numpy(backbone.stages[0](backbone.stem(images, training=True), training=True))
    masks = numpy_masks(to_numpy(model.task.permutations[0]), 4)
    x = keras.ops.convert_to_tensor(np.concatenate([features * mask for mask in masks]).astype("float32"))
    for stage in backbone.stages[1:]:
        x = stage(x, training=True)
    pooled = to_numpy(x).mean(axis=(1, 2)).reshape(5, 4, -1).transpose(1, 0, 2)
    kernel, bias = (to_numpy(w) for w in model.task.heads[0].weights)
    np.testing.assert_allclose(joint, pooled @ kernel + bias, rtol=1e-4, atol=1e-4)
    # The supervised loss reads the originals only.
    assert outputs["logits"].shape == (4, 10)


@pytest.mark.multibackend
@pytest.mark.parametrize("options", [{}, {"transform_stages": (1,), "propagate": True, "self_distillation": False}])
def test_fit_lowers_the_loss(options):
    images, labels = sample_subset(64)
    model = SFE(resnet8(), 10, seed=0, **options)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, labels, batch_size=16, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    assert history.history["sfe_si_accuracy"][-1] > 0.1


@pytest.mark.multibackend
def test_validation_reports_only_what_evaluation_measures():
    images, labels = sample_subset(32)
    model = SFE(resnet8(), 10, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(
        images, labels, batch_size=16, epochs=1, verbose=0,
        validation_data=(images, labels),
    )
    # Evaluation runs the classifier alone; the SFE task's metrics are
    # training-only and must not appear as zeros.
    assert "sfe_loss" in history.history
    assert not [name for name in history.history if name.startswith("val_sfe")]
    assert 0.0 < history.history["val_loss"][0]
    results = model.evaluate(images, labels, return_dict=True, verbose=0)
    assert set(results) == {"loss", "accuracy"}


@pytest.mark.multibackend
def test_save_load_keeps_the_permutation_and_export_matches(tmp_path):
    images, labels = sample_subset(16)
    model = SFE(resnet8(), 10, seed=None)  # the permutation lives in variables
    model.compile()
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "sfe.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is SFE and restored.beta == 0.5
    for mine, theirs in zip(model.task.permutations, restored.task.permutations):
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))
        assert sorted(to_numpy(theirs)) == list(range(theirs.shape[0]))
    for mode in ("si", "ag", "sd"):
        np.testing.assert_allclose(
            restored.predict(images, inference=mode, verbose=0),
            model.predict(images, inference=mode, verbose=0),
            atol=1e-5,
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


def test_tasks_compose_with_supervised():
    images, labels = sample_subset(32)
    model = Supervised(
        resnet8(), 10,
        auxiliary_tasks=[DroppedChannelsTask(seed=0), RotationLabelTask()],
    )
    model.compile()
    history = model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    for name in ("loss", "accuracy", "sfe_loss", "sla_loss"):
        assert np.isfinite(history.history[name][0])


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="cannot split into 5 equal groups"):
        SFE(resnet8(), 10, num_transforms=6)
    SFE(resnet8(), 10, num_transforms=6, equal_groups=False)  # Listing 1's split
    with pytest.raises(ValueError, match="needs a backbone exposing `stem`, `stages`"):
        SFE(ViTBackbone(image_shape=(32, 32, 3), patch_size=8, hidden_dim=32,
                        num_layers=1, num_heads=2, mlp_dim=64), 10)
    with pytest.raises(ValueError, match="`inference` must be one of"):
        SFE(resnet8(), 10, inference="mean")
    with pytest.raises(ValueError, match="only trained with `self_distillation=True`"):
        SFE(resnet8(), 10, inference="sd", self_distillation=False)
    with pytest.raises(ValueError, match="pass one stage"):
        SFE(resnet8(), 10, transform_stages=(0, 1), propagate=True)
    with pytest.raises(ValueError, match="`transform_stages`=3 is out of range"):
        SFE(resnet8(), 10, transform_stages=(3,))
    with pytest.raises(ValueError, match="names a stage twice"):
        SFE(resnet8(), 10, transform_stages=(2, -1))
    with pytest.raises(ValueError, match="must be an int >= 2"):
        SFE(resnet8(), 10, num_transforms=1)
    with pytest.raises(ValueError, match="a plain classifier cannot do"):
        SFE(resnet8(), 10).export_classifier("unused", inference="ag")
    with pytest.raises(ValueError, match="no plain-classifier form"):
        SFE(resnet8(), 10, transform_stages=(1,)).export_classifier("unused", inference="si")


def test_cams_explain_the_joint_logits_and_plot(tmp_path):
    from keras_ssl.visualization import class_activation_maps
    from keras_ssl.visualization import plot_cam

    model = SFE(resnet8(), 10, seed=0)
    images, labels = sample_subset(3)
    maps, titles = class_activation_maps(model, images, labels, max_groups=3, normalize=False)
    assert maps.shape == (3, 4, 8, 8)
    assert titles == ["original", "drop group 1", "drop group 2", "drop group 3"]
    # CAM is linear: its spatial mean plus the bias is the logit of (y, j)
    # for the feature with group j dropped.
    trace = model.trace(model.preprocessor(images), training=False)
    joint = to_numpy(model.task(trace)["joint_logits"])[:, -1]
    bias = to_numpy(model.task.heads[-1].bias)
    for j in range(4):
        columns = labels * 9 + j
        np.testing.assert_allclose(
            maps[:, j].mean(axis=(1, 2)) + bias[columns],
            joint[np.arange(3), j, columns],
            rtol=1e-4, atol=1e-4,
        )
    path = plot_cam(model, images, labels, path=str(tmp_path / "cam.png"), max_groups=3)
    import matplotlib.image

    assert matplotlib.image.imread(path).shape[:2] == (3 * 160, 5 * 160)
