"""HPAH and MPAH: the auxiliary targets, training on every backend, export."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_ssl.methods import HPAH
from keras_ssl.methods import MPAH
from keras_ssl.methods import HighestScoringPatchTask
from keras_ssl.methods import MaskedPatchesTask
from keras_ssl.methods import Supervised
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from tests.conftest import sample_subset
from tests.conftest import to_numpy

METHODS = {"hpah": HPAH, "mpah": MPAH}


def small_backbone(family="crate", num_layers=2):
    arguments = dict(
        image_shape=(32, 32, 3), patch_size=8, hidden_dim=32,
        num_layers=num_layers, num_heads=4,
    )
    if family == "vit":
        return ViTBackbone(mlp_dim=64, **arguments)
    return CRATEBackbone(**arguments)


def traced(model, images):
    images = model.preprocessor(images)
    trace = model.trace(images, training=False)
    task = model.auxiliary_tasks[0]
    return trace, task, to_numpy(task(trace, training=False)["head_labels"]), task


@pytest.mark.multibackend
@pytest.mark.parametrize("family", ["crate", "vit"])
@pytest.mark.parametrize("layer_index", [0, -1])
def test_hpah_target_is_the_top_patch_of_the_drawn_head(family, layer_index):
    model = HPAH(small_backbone(family), 10, top_k=2, layer_index=layer_index, seed=3)
    images = sample_subset(6)[0]
    trace = model.trace(model.preprocessor(images), training=False)
    task = model.auxiliary_tasks[0]
    outputs = task(trace, training=False)
    heads = to_numpy(outputs["head_labels"])
    positions = to_numpy(outputs["positions"])
    assert heads.shape == (6, 2) and np.all(heads == heads[:, :1])
    assert np.all((heads >= 0) & (heads < 4))
    # The attention the block itself returns, recomputed independently.
    block = model.backbone.blocks[layer_index]
    tokens, attention = block(
        trace["block_inputs"][layer_index], return_attention=True
    )
    attention, tokens = to_numpy(attention), to_numpy(tokens)
    for sample in range(6):
        row = attention[sample, heads[sample, 0], 0, 1:]
        np.testing.assert_array_equal(positions[sample], np.argsort(-row)[:2])
    # The head predicts from the output tokens of that block at pos + 1.
    selected = tokens[np.arange(6)[:, None], positions + 1]
    np.testing.assert_allclose(
        to_numpy(outputs["head_logits"]),
        to_numpy(task.predict_heads(selected)),
        atol=1e-5,
    )


@pytest.mark.multibackend
@pytest.mark.parametrize("family", ["crate", "vit"])
def test_mpah_masks_only_the_chosen_head_and_keys(family):
    model = MPAH(small_backbone(family), 10, top_k=3, seed=5)
    images = sample_subset(4)[0]
    trace = model.trace(model.preprocessor(images), training=False)
    task = model.auxiliary_tasks[0]
    outputs = task(trace, training=False)
    heads = to_numpy(outputs["head_labels"])
    positions = to_numpy(outputs["positions"])
    block = model.backbone.blocks[-1]
    inputs = trace["block_inputs"][-1]
    _, plain = block(inputs, return_attention=True)
    _, masked = block(
        inputs, attention_multiplier=outputs["attention_multiplier"],
        return_attention=True,
    )
    plain, masked = to_numpy(plain), to_numpy(masked)
    removed = np.zeros(plain.shape, bool)
    for sample in range(4):
        # The masked keys are the head's top-3 class-token scores.
        row = plain[sample, heads[sample], 0, 1:]
        np.testing.assert_array_equal(
            np.sort(positions[sample]), np.sort(np.argsort(-row)[:3])
        )
        removed[sample, heads[sample], :, positions[sample] + 1] = True
    np.testing.assert_array_equal(masked[removed], 0.0)
    np.testing.assert_allclose(masked[~removed], plain[~removed], atol=1e-6)
    assert np.all(plain[removed] > 0)


def test_per_batch_sampling_draws_one_head_for_the_batch():
    model = HPAH(small_backbone(), 10, head_sampling="per_batch", seed=0)
    labels = []
    for _ in range(5):
        trace = model.trace(model.preprocessor(sample_subset(8)[0]))
        labels.append(to_numpy(model.auxiliary_tasks[0](trace)["head_labels"]))
    assert all(np.all(batch == batch[0, 0]) for batch in labels)
    assert len({int(batch[0, 0]) for batch in labels}) > 1  # new draw per step


@pytest.mark.multibackend
@pytest.mark.parametrize("method", METHODS)
def test_fit_lowers_the_loss_and_learns_the_heads(method):
    images, labels = sample_subset(128)
    model = METHODS[method](small_backbone(), 10, aux_weight=1.0, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, labels, batch_size=32, epochs=8, verbose=0)
    losses = history.history["loss"]
    accuracy = history.history[f"{method}_accuracy"]
    assert losses[-1] < 0.8 * losses[0], losses
    # 4 heads: chance is 0.25.
    assert max(accuracy[-2:]) > 0.4, accuracy
    assert f"{method}_loss" in history.history


def test_tasks_compose_in_one_model():
    images, labels = sample_subset(32)
    model = Supervised(
        small_backbone(num_layers=3), 10,
        auxiliary_tasks=[
            HighestScoringPatchTask(layer_index=1, weight=0.2),
            MaskedPatchesTask(weight=0.2),
        ],
    )
    model.compile()
    history = model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    for name in ("loss", "accuracy", "hpah_accuracy", "mpah_accuracy"):
        assert np.isfinite(history.history[name][0])


@pytest.mark.multibackend
@pytest.mark.parametrize("method", METHODS)
def test_save_load_and_export_the_inference_classifier(method, tmp_path):
    images, labels = sample_subset(16)
    model = METHODS[method](small_backbone("vit"), 10, top_k=2, seed=1)
    model.compile()
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model) and restored.top_k == 2
    # The training model keeps the auxiliary head, so a run resumes whole.
    task_weights = model.auxiliary_tasks[0].weights
    for mine, theirs in zip(task_weights, restored.auxiliary_tasks[0].weights):
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))
    expected = to_numpy(model.predict(images, verbose=0))
    np.testing.assert_allclose(to_numpy(restored.predict(images, verbose=0)), expected, atol=1e-5)
    # The exported classifier is the plain classifier, without the head.
    model.export_classifier(str(tmp_path / "preset"))
    classifier = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "preset"))
    assert len(classifier.weights) == len(model.weights) - len(task_weights)
    np.testing.assert_allclose(to_numpy(classifier.predict(images, verbose=0)), expected, atol=1e-5)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="larger than the 16 patches"):
        HPAH(small_backbone(), 10, top_k=17)
    with pytest.raises(ValueError, match="`layer_index`=2 is out of range"):
        MPAH(small_backbone(), 10, layer_index=2)
    with pytest.raises(ValueError, match="needs a transformer backbone"):
        HPAH(ResNetBackbone.cifar(depth=8), 10)
    with pytest.raises(ValueError, match="`head_sampling` must be one of"):
        HPAH(small_backbone(), 10, head_sampling="per_epoch")
    with pytest.raises(ValueError, match="names must be unique"):
        Supervised(
            small_backbone(), 10,
            auxiliary_tasks=[HighestScoringPatchTask(), HighestScoringPatchTask()],
        )


def test_plot_attention_heads_writes_the_figure(tmp_path):
    from keras_ssl.visualization import class_token_attention
    from keras_ssl.visualization import plot_attention_heads

    images = sample_subset(2)[0]
    baseline = Supervised(small_backbone(), 10)
    hpah = HPAH(small_backbone(), 10)
    path = str(tmp_path / "heads.png")
    maps = plot_attention_heads(
        [baseline, hpah], images[0], titles=["CRATE", "CRATE + HPAH"], path=path
    )
    assert maps.shape == (2, 4, 4, 4)
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    # The maps are the class-token rows the last block itself returns.
    trace = baseline.trace(baseline.preprocessor(images[:1]))
    _, attention = baseline.backbone.blocks[-1](
        trace["block_inputs"][-1], return_attention=True
    )
    np.testing.assert_allclose(
        maps[0].reshape(4, 16), to_numpy(attention)[0, :, 0, 1:], atol=1e-5
    )
    np.testing.assert_allclose(
        class_token_attention(baseline, images[:1])[0], maps[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="one \\[height, width, 3\\] image"):
        plot_attention_heads(baseline, images, path=path)
    with pytest.raises(ValueError, match="need a transformer"):
        plot_attention_heads(Supervised(ResNetBackbone.cifar(depth=8), 10), images[0], path=path)
