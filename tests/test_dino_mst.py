"""DINO and MST: teacher EMA, loss and centre, attention-guided mask,
decoder, training on every backend and under MirroredStrategy."""

import json
import math
import os

import keras
import numpy as np
import pytest

from keras_ssl.data import load_dataset
from keras_ssl.data import multi_crop
from keras_ssl.methods import DINO
from keras_ssl.methods import MST
from keras_ssl.methods.dino import dino_cross_entropy
from keras_ssl.methods.dino import encode_tokens
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.optimizers import AdamWCosineWeightDecay
from tests.conftest import sample_subset
from tests.conftest import save_and_reload
from tests.conftest import to_numpy
from tests.conftest import two_replica_strategy

SMALL_HEAD = dict(out_dim=128, head_hidden_dim=64, bottleneck_dim=32)


def tiny_vit(image_size=32, patch_size=4, num_layers=2):
    return ViTBackbone(
        image_shape=(image_size, image_size, 3), patch_size=patch_size,
        hidden_dim=32, num_layers=num_layers, num_heads=2, mlp_dim=64,
    )


def tiny_crate():
    return CRATEBackbone(
        image_shape=(16, 16, 3), patch_size=4, hidden_dim=32, num_layers=1,
        num_heads=2,
    )


def real_views(count, size=32, num_local=2, seed=0):
    """Multi-crop views (2 global `size`, `num_local` of half the side) of
    real CIFAR images, as numpy arrays."""
    data = load_dataset(
        sample_subset(count), batch_size=count, shuffle=False, seed=seed,
        augment=multi_crop(size, size // 2, num_global=2, num_local=num_local),
    )
    return tuple(np.asarray(view) for view in next(iter(data))[0])


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.multibackend
def test_teacher_is_the_student_ema_after_one_step_and_shares_nothing():
    model = DINO(tiny_vit(16, num_layers=1), **SMALL_HEAD)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    pairs = model.teacher_pairs()
    assert len(pairs) == len(model.backbone.weights) + len(model.head.weights)
    student_ids = {id(v) for v in model.backbone.weights + model.head.weights}
    assert not student_ids & {id(t) for t, _ in pairs}
    assert not model.teacher_backbone.trainable_weights
    teacher_before = [to_numpy(t) for t, _ in pairs]
    student_before = [to_numpy(s) for _, s in pairs]
    model.fit(real_views(8, size=16), batch_size=8, epochs=1, verbose=0)
    m = 0.996  # the cosine schedule at step 0
    for (teacher, student), t0, s0 in zip(pairs, teacher_before, student_before):
        np.testing.assert_allclose(
            to_numpy(teacher), m * t0 + (1 - m) * s0, rtol=1e-5, atol=1e-6,
            err_msg=teacher.path,
        )
    # The student moved by its own gradient step; the teacher did not
    # follow it (no shared buffers).
    kernel = model.backbone.blocks[0].mlp_in.kernel
    index = [id(s) for _, s in pairs].index(id(kernel))
    assert np.abs(to_numpy(kernel) - student_before[index]).max() > 1e-4
    assert np.abs(to_numpy(kernel) - to_numpy(pairs[index][0])).max() > 1e-4
    assert float(to_numpy(model.step)) == 1.0


@pytest.mark.multibackend
def test_dino_loss_and_centring_match_numpy():
    rng = np.random.default_rng(0)
    views, batch, dim = 4, 3, 128
    student = rng.normal(size=(views, batch, dim)).astype("float32")
    teacher = rng.normal(size=(2, batch, dim)).astype("float32")
    center = rng.normal(size=(1, dim)).astype("float32") * 0.1

    model = DINO(tiny_vit(), **SMALL_HEAD)
    model.set_schedule(epochs=50, steps_per_epoch=10)
    model.center.assign(center)
    model.step.assign(150.0)  # epoch 15 of the 30-epoch warm-up
    temperature = 0.04 + 0.03 * 15 / 29  # np.linspace(0.04, 0.07, 30)[15]
    np.testing.assert_allclose(
        float(to_numpy(model.teacher_temperature_now())), temperature, rtol=1e-5
    )
    targets = softmax((teacher - center) / temperature)
    log_student = np.log(softmax(student / 0.1))
    terms = [
        -(targets[i] * log_student[j]).sum(-1).mean()
        for i in range(2) for j in range(views) if i != j
    ]
    assert len(terms) == 6
    loss = model.compute_loss(
        y_pred={"student": student, "teacher": teacher}, training=True
    )
    np.testing.assert_allclose(float(to_numpy(loss)), np.mean(terms), rtol=1e-5)
    expected_center = 0.9 * center + 0.1 * teacher.reshape(-1, dim).mean(0)
    np.testing.assert_allclose(to_numpy(model.center), expected_center, rtol=1e-5,
                               atol=1e-7)
    # Float16 logits: the loss is computed in float32 and stays finite.
    half = dino_cross_entropy(
        (student * 30).astype("float16"), (teacher * 30).astype("float16"),
        center, 0.1, 0.04,
    )
    assert np.isfinite(float(to_numpy(half)))
    # Momentum: cosine from 0.996 to 1 over the 500 steps (now at 151).
    np.testing.assert_allclose(
        float(to_numpy(model.momentum_now())),
        1 - 0.5 * 0.004 * (1 + math.cos(math.pi * 151 / 500)),
        rtol=1e-6,
    )


@pytest.mark.multibackend
def test_attention_guided_mask_only_takes_low_attention_candidates():
    model = MST(tiny_vit(), seed=0, **SMALL_HEAD)
    rng = np.random.default_rng(1)
    batch, heads, patches = 512, 2, 64
    attention = softmax(rng.normal(size=(batch, heads, 1 + patches, 1 + patches)))
    attention = attention.astype("float32")
    importance = attention[:, :, 0, 1:].mean(1)
    lowest = np.argsort(importance, axis=-1)[:, :8]  # the lowest 1/8
    candidates = np.zeros((batch, patches), bool)
    np.put_along_axis(candidates, lowest, True, axis=-1)

    mask = to_numpy(model.global_token_mask(attention, training=True))
    assert mask.shape == (batch, patches)
    assert not (mask & ~candidates).any()
    assert not mask[np.arange(batch), importance.argmax(-1)].any()
    rate = mask[candidates].mean()
    assert abs(rate - 0.1) < 0.02, rate
    assert model.global_token_mask(attention, training=False) is None

    random = MST(tiny_vit(), mask_strategy="random", mask_probability=0.1,
                 seed=0, **SMALL_HEAD)
    random_mask = to_numpy(random.global_token_mask(attention, training=True))
    assert abs(random_mask.mean() - 0.1) < 0.01
    assert (random_mask & ~candidates).any()


def test_only_the_students_global_views_are_masked_and_restored():
    # TensorFlow only (the masking ops run on each backend in the test
    # above): eager passes cost half a minute on JAX.
    # p = 1 and half the 64 patches as candidates: 32 masked per view.
    model = MST(tiny_vit(), candidate_fraction=0.5, mask_probability=1.0,
                seed=0, **SMALL_HEAD)
    views = real_views(4)
    outputs = model(views, training=True)
    mask = to_numpy(outputs["token_mask"])
    assert mask.shape == (8, 64) and (mask.sum(-1) == 32).all()
    restored = to_numpy(outputs["restored"])
    assert restored.shape == (8, 32, 32, 3)

    global_images = model.preprocess(np.concatenate(views[:2]))
    local_images = model.preprocess(np.concatenate(views[2:]))
    teacher = model.teacher_head(
        encode_tokens(model.teacher_backbone, global_images)[:, 0]
    )
    np.testing.assert_allclose(
        to_numpy(outputs["teacher"]).reshape(8, -1), to_numpy(teacher),
        rtol=1e-4, atol=1e-5,
    )
    gate = model.last_layer_gate()
    local = model.head(encode_tokens(model.backbone, local_images)[:, 0],
                       last_layer_gate=gate)
    unmasked = model.head(encode_tokens(model.backbone, global_images)[:, 0],
                          last_layer_gate=gate)
    student = to_numpy(outputs["student"])
    np.testing.assert_allclose(student[2:].reshape(8, -1), to_numpy(local),
                               rtol=1e-4, atol=1e-5)
    assert np.abs(student[:2].reshape(8, -1) - to_numpy(unmasked)).max() > 1e-3


@pytest.mark.multibackend
def test_fit_on_real_images_gives_a_finite_falling_loss():
    # MST's loss holds DINO's. The centre is frozen here: in DINO's first
    # steps the centring raises the teacher's entropy, and with it the
    # loss, by design.
    model = MST(tiny_vit(num_layers=1), center_momentum=1.0,
                freeze_last_layer_epochs=0, **SMALL_HEAD)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(real_views(32), batch_size=16, epochs=4, verbose=0,
                        shuffle=False).history
    for name in ("loss", "dino_loss", "restoration_loss"):
        assert np.isfinite(history[name]).all(), history
        assert history[name][-1] < 0.85 * history[name][0], history


@pytest.mark.multibackend
def test_a_trained_mst_saved_as_keras_file_loads_and_resumes(tmp_path):
    model = MST(tiny_vit(image_size=16), seed=0, **SMALL_HEAD)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    views = real_views(8, size=16)
    model.fit(views, batch_size=8, epochs=1, verbose=0)
    # Student, teacher, centre, step counters and the optimizer's state.
    loaded = save_and_reload(model, str(tmp_path / "mst.keras"))
    history = loaded.fit(views, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert float(to_numpy(loaded.step)) == 2.0



def test_mst_on_crate_trains_under_mirrored_strategy_with_the_global_centre():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    crops = multi_crop(16, 8, num_global=2, num_local=2, colour=True,
                       blur_sigma=(0.1, 1.0))
    data = load_dataset(sample_subset(8), batch_size=8, augment=crops, seed=0,
                        shuffle=False).cache()
    strategy = two_replica_strategy()
    with strategy.scope():
        model = MST(tiny_crate(), seed=0, **SMALL_HEAD)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    # One device: the centre after the step is 0.1 x the mean teacher
    # output over the 8 images' 16 global views (the teacher is unmasked).
    views = next(iter(data))[0]
    global_images = model.preprocess(np.concatenate(views[:2]))
    teacher = model.teacher_head(
        encode_tokens(model.teacher_backbone, global_images)[:, 0]
    )
    expected = 0.1 * to_numpy(teacher).mean(0, keepdims=True)
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.distribute_strategy is strategy
    # Each replica saw 4 images; both copies of the centre hold the mean
    # over all 8.
    replicas = strategy.experimental_local_results(model.center.value)
    assert len(replicas) == 2
    for value in replicas:
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_bad_configurations_name_the_argument():
    for fraction in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"`candidate_fraction` must be in \(0, 1\]"):
            MST(tiny_vit(), candidate_fraction=fraction)
    with pytest.raises(ValueError, match=r"`mask_probability` must be in \(0, 1\]"):
        MST(tiny_vit(), mask_probability=0)
    with pytest.raises(ValueError, match="`mask_strategy` must be one of"):
        MST(tiny_vit(), mask_strategy="block")
    resnet = ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
    for method in (DINO, MST):
        with pytest.raises(ValueError, match="`backbone` must be a transformer"):
            method(resnet)
    with pytest.raises(ValueError, match="`patch_size` must be a power of 2"):
        MST(tiny_vit(image_size=24, patch_size=6), **SMALL_HEAD)
    with pytest.raises(ValueError, match="`local_size`.*larger than `global_size`"):
        multi_crop(32, 48)
    model = DINO(tiny_vit(), **SMALL_HEAD)
    big_local = np.zeros((2, 48, 48, 3), "float32")
    small = np.zeros((2, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match="`local_size` must not exceed"):
        model((small, small, big_local))
    with pytest.raises(ValueError, match="`global_size`"):
        model((np.zeros((2, 16, 16, 3), "float32"), small))
    with pytest.raises(ValueError, match="tuple of view batches"):
        model(small)
    with pytest.raises(ValueError, match="`teacher_momentum` must be in"):
        DINO(tiny_vit(), teacher_momentum=1.5)
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        model.fit(load_dataset(sample_subset(8), augment=multi_crop(32, 16),
                               repeat=True), epochs=1)


def test_cosine_weight_decay_spares_biases_and_follows_dino():
    optimizer = AdamWCosineWeightDecay(
        1.0, weight_decay=0.04, final_weight_decay=0.4, decay_steps=100
    )
    for step, decay in ((0, 0.04), (50, 0.22), (200, 0.4)):
        np.testing.assert_allclose(float(optimizer.weight_decay_at(step)), decay,
                                   rtol=1e-5)
    kernel = keras.Variable(np.ones((2, 2), "float32"))
    bias = keras.Variable(np.ones((2,), "float32"))
    optimizer.apply([np.zeros((2, 2), "float32"), np.zeros((2,), "float32")],
                    [kernel, bias])
    # Zero gradients: only the decay moves the kernel, by lr * 0.04.
    np.testing.assert_allclose(to_numpy(kernel), 0.96, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(bias), 1.0)


def test_keras_ssl_pretrain_with_mst_saves_a_backbone(tmp_path, capsys):
    from keras_ssl import cli

    from PIL import Image

    # 40 real images as a folder: the CLI's data path, at test cost.
    images, labels = sample_subset(40)
    for index, (image, label) in enumerate(zip(images, labels)):
        os.makedirs(tmp_path / "images" / str(label), exist_ok=True)
        Image.fromarray(image.astype("uint8")).save(
            tmp_path / "images" / str(label) / f"{index}.png"
        )
    output = str(tmp_path / "mst")
    status = cli.main([
        "pretrain", "--method", "mst", "--backbone", "vit_tiny",
        "--dataset", str(tmp_path / "images"), "--num-layers", "1",
        "--image-size", "16", "--local-crops", "2", "--out-dim", "256",
        "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "20",
        "--output", output, "--verbose", "0",
    ])
    assert status == 0
    with open(f"{output}/metrics.json") as file:
        metrics = json.load(file)
    assert metrics["method"] == "mst" and metrics["train_examples"] == 40
    assert np.isfinite(metrics["pretext_loss"])
    assert metrics["pretext_accuracy"] is None
    assert "pretext loss" in capsys.readouterr().out
    assert os.path.exists(f"{output}/backbone/config.json")


def test_figure_2_masks_and_plot(tmp_path):
    from keras_ssl.visualization import plot_mst_masks

    model = MST(tiny_vit(), seed=0, **SMALL_HEAD)
    images = sample_subset(2)[0]
    path = str(tmp_path / "masks.png")
    attention, random_mask, guided = plot_mst_masks(model, images, path)
    assert os.path.getsize(path) > 0
    assert attention.shape == random_mask.shape == guided.shape == (2, 8, 8)
    # The guided mask is the random draw restricted to the 8 candidates.
    assert not (guided & ~random_mask).any()
    for row in range(2):
        lowest = np.argsort(attention[row].ravel())[:8]
        assert set(np.flatnonzero(guided[row].ravel())) <= set(lowest)
    with pytest.raises(ValueError, match="`model` must be an MST model"):
        plot_mst_masks(DINO(tiny_vit(), **SMALL_HEAD), images, path)
