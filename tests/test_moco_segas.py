"""MoCo v2 and SegAS: losses against numpy, queue, EMA, prototypes, ApFS,
training on every backend and under MirroredStrategy, bad configuration."""

import json

import keras
import numpy as np
import pytest

from keras_ssl.data import MoCoV2Augment
from keras_ssl.data import SegASViews
from keras_ssl.data import load_dataset
from keras_ssl.methods import MoCoV2
from keras_ssl.methods import SegAS
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.ops import attention_filter
from keras_ssl.ops import attention_heatmap
from keras_ssl.ops import calibrated_target
from keras_ssl.ops import confidence
from keras_ssl.ops import diversity_loss
from keras_ssl.ops import enqueue
from keras_ssl.ops import filter_views
from keras_ssl.ops import hierarchical_kmeans
from keras_ssl.ops import info_nce_logits
from keras_ssl.ops import info_nce_loss
from keras_ssl.ops import kl_divergence
from keras_ssl.ops import random_filter
from tests.conftest import sample_subset
from tests.conftest import save_and_reload
from tests.conftest import to_numpy
from tests.conftest import two_replica_strategy


def tiny_resnet(size=16):
    return ResNetBackbone(
        stackwise_num_filters=[8, 16, 16], stackwise_num_blocks=[1, 1, 1],
        image_shape=(size, size, 3),
    )


SMALL = dict(hidden_dim=32, projection_dim=16, seed=0)
# Milder than the paper's views, so that a tiny model learns in 16 steps.
LIGHT = dict(
    crop_scale=(0.6, 1.0), jitter_probability=0.3, grayscale_probability=0.0,
    blur_probability=0.0,
)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def unit_rows(rng, *shape):
    x = rng.normal(size=shape).astype("float32")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.multibackend
def test_info_nce_matches_numpy():
    rng = np.random.default_rng(0)
    q, k, queue = unit_rows(rng, 4, 8), unit_rows(rng, 4, 8), unit_rows(rng, 6, 8)
    logits = to_numpy(info_nce_logits(q, k, queue, 0.2))
    expected = np.concatenate([(q * k).sum(1, keepdims=True), q @ queue.T], 1) / 0.2
    np.testing.assert_allclose(logits, expected, rtol=1e-5)
    loss = -np.log(softmax(expected)[:, 0]).mean()
    np.testing.assert_allclose(to_numpy(info_nce_loss(logits)), loss, rtol=1e-5)


@pytest.mark.multibackend
def test_queue_enqueues_and_dequeues_in_order():
    queue = keras.Variable(np.zeros((5, 2), "float32"), trainable=False)
    pointer = keras.Variable(0, dtype="int32", trainable=False)
    first = np.arange(6, dtype="float32").reshape(3, 2) + 1
    second = -np.arange(6, dtype="float32").reshape(3, 2) - 1
    enqueue(queue, pointer, first)
    enqueue(queue, pointer, second)
    # Rows 0-2 took `first`; `second` filled rows 3-4, then replaced the
    # oldest entry (row 0) first.
    expected = np.stack([second[2], first[1], first[2], second[0], second[1]])
    np.testing.assert_array_equal(to_numpy(queue), expected)
    assert int(to_numpy(pointer)) == 1


@pytest.mark.multibackend
def test_calibrated_procr_rho_and_diversity_match_numpy():
    similarity = np.array(
        [[0.9, 0.1, -0.3, 0.5], [0.2, 0.25, 0.3, 0.1], [-0.5, 0.8, 0.7, 0.0]],
        "float32",
    )
    labels = np.array([0, 3, 1])
    # Eq. 6 with mu_s the sample's mean similarity, Eq. 7, Eq. 8.
    suppressed = np.where(
        similarity < similarity.mean(1, keepdims=True), -1.0, similarity
    )
    p = softmax(suppressed / 0.1)
    entropy = -(p * np.log(p)).sum(1)
    rho = p.max(1) * (1 - entropy / np.log(4))
    np.testing.assert_allclose(to_numpy(confidence(p)), rho, rtol=1e-5)
    onehot = np.eye(4)[labels]
    threshold = float(np.sort(rho)[:2].mean())  # one sample below (Eq. 9)
    target = np.where(
        (rho < threshold)[:, None], onehot,
        rho[:, None] * p + (1 - rho[:, None]) * onehot,
    )
    result = to_numpy(calibrated_target(similarity, labels, 0.1, threshold))
    np.testing.assert_allclose(result, target, rtol=1e-5, atol=1e-7)
    assert (rho < threshold).sum() == 1

    logits = np.array([[1.0, 0.0, 2.0, -1.0], [0.5, 0.5, 0.0, 0.0],
                       [0.0, 3.0, 1.0, 0.0]], "float32")
    q = softmax(logits)
    kl = np.where(target > 0, target * (np.log(np.maximum(target, 1e-12)) - np.log(q)), 0)
    np.testing.assert_allclose(
        to_numpy(kl_divergence(target, np.log(q))), kl.sum(1).mean(), rtol=1e-5
    )

    rng = np.random.default_rng(1)
    p1, p2 = (softmax(rng.normal(size=(3, 4))).astype("float32") for _ in range(2))
    z1, z2 = unit_rows(rng, 3, 5), unit_rows(rng, 3, 5)
    c = p1.argmax(1)
    hinge = np.maximum(0, p2[np.arange(3), c] - p1[np.arange(3), c] + 0.1)
    expected = hinge.mean() + (z1 * z2).sum(1).mean()
    np.testing.assert_allclose(
        to_numpy(diversity_loss([p1], [p2], z1, z2, 0.1)), expected, rtol=1e-5
    )


def test_hierarchical_kmeans_recovers_separable_clusters():
    rng = np.random.default_rng(0)
    # 6 tight clusters in 3 well-separated pairs.
    pairs = unit_rows(rng, 3, 16) * 10
    centres = np.concatenate([pairs + unit_rows(rng, 3, 16), pairs - unit_rows(rng, 3, 16)])
    truth = np.repeat(np.arange(6), 50)
    points = centres[truth] + 0.01 * rng.normal(size=(300, 16))
    prototypes, parents, assignments = hierarchical_kmeans(points, (6, 3), seed=0)
    assert prototypes[0].shape == (6, 16) and prototypes[1].shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(prototypes[0], axis=1), 1, rtol=1e-5)
    # The level-1 clusters are the true ones (up to their numbering) ...
    mapping = {t: a for t, a in zip(truth, assignments)}
    assert len(set(mapping.values())) == 6
    np.testing.assert_array_equal(assignments, [mapping[t] for t in truth])
    # ... and level 2 joins each pair (clusters t and t + 3).
    level_two = parents[0][assignments]
    for t in range(3):
        assert level_two[truth == t][0] == level_two[truth == t + 3][0]
    assert len(set(level_two)) == 3
    np.testing.assert_array_equal(parents[1], [0, 1, 2])


@pytest.mark.multibackend
def test_apfs_removes_the_hot_region_and_follows_the_rate():
    images = sample_subset(2)[0][:, :16, :16] + 1.0
    feature_map = np.zeros((2, 4, 4, 3), "float32")
    feature_map[:, 1:3, 1:3] = 5.0  # the hot part: the middle of the image
    heatmap = to_numpy(attention_heatmap(feature_map, (16, 16)))
    assert heatmap.shape == (2, 16, 16, 1)
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0
    seed = keras.random.SeedGenerator(0)
    views, filtered, used_random = map(to_numpy, filter_views(
        images, heatmap, np.ones(2, "float32"), 100.0, 0.5, seed, 0.0
    ))
    assert filtered.all() and not used_random.any()
    hot = heatmap[..., 0] > 0.6
    cold = heatmap[..., 0] < 0.4
    assert hot.any() and cold.any()
    assert np.abs(views[hot]).max() < 1e-3 * np.abs(images[hot]).max()
    np.testing.assert_allclose(views[cold], images[cold], rtol=1e-3)
    mask = to_numpy(attention_filter(heatmap, 100.0, 0.5))

    # The random alternative erases a rectangle of the same area.
    area = np.full((400,), 0.25, "float32")
    erased = 1 - to_numpy(random_filter((400, 16, 16), area, seed))
    np.testing.assert_allclose(erased.mean(), 0.25, atol=0.03)
    assert np.allclose(erased.mean(axis=(1, 2, 3)), 0.25, atol=0.08)
    assert 0.1 < (1 - mask).mean() < 0.6

    # Hardness-adaptive: image i is filtered with probability rho_i, and
    # half of the filtered ones by the random mask.
    rate = np.repeat(np.array([0.0, 0.3, 0.8, 1.0], "float32"), 500)
    batch = np.ones((2000, 4, 4, 3), "float32")
    heat = np.zeros((2000, 4, 4, 1), "float32")
    _, filtered, used_random = map(to_numpy, filter_views(
        batch, heat, rate, 100.0, 0.5, seed
    ))
    rates = filtered.reshape(4, 500).mean(1)
    np.testing.assert_allclose(rates, [0.0, 0.3, 0.8, 1.0], atol=0.06)
    np.testing.assert_allclose(used_random.sum() / filtered.sum(), 0.5, atol=0.05)


def views_dataset(augment, count=32, batch_size=8):
    """Real images, two views each: MoCo's augmentation drawn twice, or
    SegAS's pair."""
    num_views = 2 if isinstance(augment, MoCoV2Augment) else 1
    return load_dataset(
        sample_subset(count), batch_size=batch_size, image_size=16,
        augment=augment, num_views=num_views, seed=0,
    )


def weights_of(variables):
    return [to_numpy(v).copy() for v in variables]


@pytest.mark.multibackend
def test_moco_key_encoder_follows_the_ema_and_queues_the_keys():
    model = MoCoV2(tiny_resnet(), queue_size=16, momentum=0.9, **SMALL)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    query, key = model.query_weights(), model.key_weights()
    # Copies, not shared variables; the optimizer sees only the query.
    assert not {id(v) for v in query} & {id(v) for v in key}
    trainable = {id(v) for v in model.trainable_variables}
    assert {id(v) for v in query} <= trainable
    assert not {id(v) for v in key} & trainable
    for q, k in zip(weights_of(query), weights_of(key)):
        np.testing.assert_array_equal(q, k)
    # Move the keys away from the queries so the EMA is visible.
    for variable in key:
        variable.assign(to_numpy(variable) + 1.0)
    query_before, key_before = weights_of(query), weights_of(key)

    (queries_view, keys_view), _ = next(iter(views_dataset(
        MoCoV2Augment(16, blur_probability=0.0), count=8
    )))
    queries_view, keys_view = np.asarray(queries_view), np.asarray(keys_view)
    model.train_on_batch((queries_view, keys_view))
    for q0, k0, k1 in zip(query_before, key_before, weights_of(key)):
        np.testing.assert_allclose(k1, 0.9 * k0 + 0.1 * q0, rtol=1e-5, atol=1e-6)
    assert any(
        not np.allclose(q0, q1) for q0, q1 in zip(query_before, weights_of(query))
    )
    # The step's keys (computed after the EMA) are queued at rows 0..7.
    keys = model.embed(
        model.key_backbone(model.preprocess(keys_view), training=True),
        model.key_projector,
    )
    np.testing.assert_allclose(to_numpy(model.queue)[:8], to_numpy(keys), atol=1e-4)
    assert int(to_numpy(model.queue_pointer)) == 8


@pytest.mark.multibackend
def test_moco_and_segas_fit_with_falling_loss_on_real_images_and_save(tmp_path):
    moco = MoCoV2(tiny_resnet(), queue_size=16, momentum=0.9, **SMALL)
    moco.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = views_dataset(MoCoV2Augment(16, **LIGHT))
    moco.fit(data, epochs=1, verbose=0)  # fills the queue with real keys
    losses = moco.fit(data, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.95 * losses[0], losses

    segas = SegAS(
        tiny_resnet(), num_prototypes=(8, 4), memory_size=32, queue_size=16,
        momentum=0.9, cluster_every=10, **SMALL,
    )
    segas.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = views_dataset(SegASViews(16, weak_scale=(0.6, 1.0), **LIGHT))
    segas.fit(data, epochs=1, verbose=0)  # fills the bank: no prototypes yet
    assert float(to_numpy(segas.prototypes_ready)) == 0.0
    assert int(to_numpy(segas.memory_count)) == 32
    # Epoch 0 of this fit clusters the bank; the prototype losses now count.
    losses = segas.fit(data, epochs=3, verbose=0).history["loss"]
    assert float(to_numpy(segas.prototypes_ready)) == 1.0
    assert len(segas.clustering_seconds) == 1
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.95 * losses[0], losses
    prototypes = to_numpy(segas.prototypes[0])
    np.testing.assert_allclose(np.linalg.norm(prototypes, axis=1), 1, rtol=1e-4)

    # A `.keras` file keeps every piece of state (queue, memory bank,
    # prototypes, optimizer) and the loaded model resumes `fit`.
    loaded = save_and_reload(segas, str(tmp_path / "segas.keras"))
    resumed = loaded.fit(data, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(resumed[0]), resumed


def test_segas_trains_under_mirrored_strategy_with_global_negatives():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    strategy = two_replica_strategy()
    with strategy.scope():
        model = SegAS(
            tiny_resnet(), num_prototypes=(8, 4), memory_size=32,
            queue_size=16, **SMALL,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = views_dataset(SegASViews(16, blur_probability=0.0), batch_size=16)
    history = model.fit(data, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # Each step queued the keys of the global batch of 16, not a replica's 8.
    assert int(to_numpy(model.memory_count)) == 32
    assert int(to_numpy(model.queue_pointer)) == 0  # 4 steps of 16 in 16 rows
    assert int(to_numpy(model.memory_pointer)) == 0
    assert float(to_numpy(model.prototypes_ready)) == 1.0
    replicas = model.queue.value.values
    np.testing.assert_array_equal(to_numpy(replicas[0]), to_numpy(replicas[1]))


def test_bad_configuration_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="fewer prototypes than samples"):
        SegAS(tiny_resnet(), num_prototypes=(100, 10), memory_size=50, **SMALL)
    vit = ViTBackbone(
        image_shape=(16, 16, 3), patch_size=8, hidden_dim=16, num_layers=1,
        num_heads=2, mlp_dim=32,
    )
    with pytest.raises(ValueError, match="convolutional feature map"):
        SegAS(vit, num_prototypes=(8, 4), memory_size=32, **SMALL)
    with pytest.raises(ValueError, match="`num_prototypes` must be decreasing"):
        SegAS(tiny_resnet(), num_prototypes=(4, 8), memory_size=32, **SMALL)
    with pytest.raises(ValueError, match="`momentum`"):
        MoCoV2(tiny_resnet(), momentum=1.0, **SMALL)
    with pytest.raises(ValueError, match="`negative_rule`"):
        SegAS(tiny_resnet(), num_prototypes=(8, 4), memory_size=32,
              negative_rule="median", **SMALL)
    model = MoCoV2(tiny_resnet(), queue_size=16, **SMALL)
    with pytest.raises(ValueError, match="two augmented views per image"):
        model(np.zeros((2, 16, 16, 3), "float32"))


def test_keras_ssl_pretrain_segas(tmp_path):
    # moco_v2 shares this path but for the augmentation and the class.
    method = "segas"
    from PIL import Image

    from keras_ssl import cli

    images, labels = sample_subset(32)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype("uint8")).save(folder / f"{index}.png")
    output = tmp_path / "run"
    status = cli.main([
        "pretrain", "--method", method, "--backbone", "resnet8",
        "--dataset", str(tmp_path / "images"), "--image-size", "16",
        "--batch-size", "16", "--epochs", "2", "--queue-size", "32",
        "--num-prototypes", "8,4", "--optimizer", "sgd",
        "--learning-rate", "0.03", "--weight-decay", "1e-4",
        "--schedule", "cosine", "--output", str(output), "--verbose", "0",
    ])
    assert status == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["train_examples"] == 32
    assert np.isfinite(metrics["pretext_loss"])
    assert 0.0 <= metrics["pretext_accuracy"] <= 1.0
    assert (output / "backbone" / "config.json").exists()
