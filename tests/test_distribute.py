"""keras_ssl.distribute: every method's first step on two replicas equals
its one-device step on the same global batch (TensorFlow MirroredStrategy,
JAX DataParallel), and the run's bookkeeping (batch split, learning rate,
cluster spec) with its errors."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras
from keras_ssl import distribute
from keras_ssl import methods
from keras_ssl.data import load_dataset
from keras_ssl.data import multi_crop
from keras_ssl.data.contrastive_augment import MoCoV2Augment
from keras_ssl.data.contrastive_augment import SegASViews
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ResNetBackbone
from keras_ssl.models import ViTBackbone
from tests.conftest import sample_subset

BACKEND = keras.backend.backend()
# The data-parallel mode of each backend; PyTorch has none in keras_ssl.
PARALLEL_MODE = {"tensorflow": "mirrored", "jax": "jax-data-parallel"}.get(BACKEND)
BATCH = 8
HEAD = dict(out_dim=32, head_hidden_dim=32, bottleneck_dim=16)
MOCO = dict(hidden_dim=16, projection_dim=8, queue_size=16, seed=0)


def resnet():
    return ResNetBackbone(
        stackwise_num_filters=[4, 8, 8], stackwise_num_blocks=[1, 1, 1],
        image_shape=(16, 16, 3),
    )


def vit():
    return ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, hidden_dim=16, num_layers=1,
        num_heads=2, mlp_dim=32,
    )


def crate():
    return CRATEBackbone(
        image_shape=(16, 16, 3), patch_size=4, hidden_dim=16, num_layers=1,
        num_heads=2,
    )


def labelled():
    images, labels = sample_subset(BATCH)
    return tf.image.resize(images, (16, 16)).numpy(), labels


def unlabelled():
    return labelled()[0]


def augmented(augment, num_views=1):
    dataset = load_dataset(
        labelled(), batch_size=BATCH, augment=augment, num_views=num_views,
        shuffle=False, seed=0,
    )
    views = tf.nest.map_structure(np.asarray, next(iter(dataset))[0])
    return (views,)  # fit's x is the tuple of views


def ready_segas(model):
    # Prototypes as after a first clustering, so the prototype losses and
    # the (random) attention-part filter are part of the step.
    rng = np.random.default_rng(0)
    for prototypes in model.prototypes:
        rows = rng.normal(size=prototypes.shape).astype("float32")
        prototypes.assign(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    model.prototypes_ready.assign(1.0)


# name -> (the method, its global batch: fit's x or (x, y), state to set).
METHODS = {
    "supervised": (lambda: methods.Supervised(resnet(), 10), labelled, None),
    "sfe": (lambda: methods.SFE(resnet(), 10, num_transforms=5, seed=0), labelled, None),
    "sla": (lambda: methods.SLA(resnet(), 10, self_distillation=True), labelled, None),
    "hpah": (lambda: methods.HPAH(vit(), 10, seed=0), labelled, None),
    "mpah": (lambda: methods.MPAH(crate(), 10, top_k=2, seed=0), labelled, None),
    "rotnet": (lambda: methods.RotNet(resnet()), unlabelled, None),
    "patch_rotnet": (lambda: methods.PatchRotNet(resnet(), seed=0), unlabelled, None),
    "patch_relnet": (lambda: methods.PatchRelNet(resnet(), seed=0), unlabelled, None),
    "moco_v2": (
        lambda: methods.MoCoV2(resnet(), **MOCO),
        lambda: augmented(MoCoV2Augment(16), num_views=2),
        None,
    ),
    "segas": (
        lambda: methods.SegAS(resnet(), num_prototypes=(4, 2), memory_size=16, **MOCO),
        lambda: augmented(SegASViews(16, blur_probability=0.0)),
        ready_segas,
    ),
    "dino": (
        lambda: methods.DINO(vit(), **HEAD),
        lambda: augmented(multi_crop(16, 8, num_global=2, num_local=2)),
        None,
    ),
    "mst": (
        lambda: methods.MST(vit(), seed=0, **HEAD),
        lambda: augmented(multi_crop(16, 8, num_global=2, num_local=2)),
        None,
    ),
}


class _AtTrainBegin(keras.callbacks.Callback):
    """Sets the method's state and snapshots its built weights."""

    def __init__(self, prepare):
        super().__init__()
        self.prepare = prepare

    def on_train_begin(self, logs=None):
        if self.prepare is not None:
            self.prepare(self.model)
        self.initial = [ops.convert_to_numpy(w) for w in self.model.weights]


def _replica_values(variable, run):
    if run.strategy is None:
        return [ops.convert_to_numpy(variable)]
    return [v.numpy() for v in run.strategy.experimental_local_results(variable.value)]


def first_step(name, mode):
    """(weights before, every replica's weights after, loss) of one step."""
    build, batch, prepare = METHODS[name]
    data = batch()
    devices = None
    if mode == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    elif mode == "jax-data-parallel":
        import jax

        devices = jax.devices("cpu")[:2]
    if devices is not None:
        assert len(devices) == 2, "conftest.py splits the CPU in two"
    keras.utils.set_random_seed(0)
    with distribute.distribution_scope(mode, devices=devices) as run:
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        if mode == "mirrored":
            distribute.synchronize_batch_norm(model)
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(BATCH)
        snapshot = _AtTrainBegin(prepare)
        history = model.fit(dataset, epochs=1, verbose=0, callbacks=[snapshot])
        after = [_replica_values(w, run) for w in model.weights]
    return model, snapshot.initial, after, history.history["loss"][0]


@pytest.mark.multibackend
@pytest.mark.skipif(PARALLEL_MODE is None, reason="keras_ssl's data parallelism "
                    "runs on TensorFlow and JAX")
@pytest.mark.parametrize("name", METHODS)
def test_first_step_on_two_replicas_equals_one_device(name):
    model, initial, single, single_loss = first_step(name, "none")
    _, parallel_initial, parallel, parallel_loss = first_step(name, PARALLEL_MODE)
    moved = 0
    for variable, before, reference, replicas, start in zip(
        model.weights, initial, single, parallel, parallel_initial
    ):
        np.testing.assert_array_equal(start, before, err_msg=variable.path)
        assert len(replicas) == (2 if PARALLEL_MODE == "mirrored" else 1)
        for copy in replicas:
            # float32 sums in another order: 1e-5 of a step of lr 0.5.
            np.testing.assert_allclose(
                copy, reference[0], rtol=1e-4, atol=2e-5, err_msg=variable.path
            )
        moved += variable.trainable and not np.allclose(reference[0], before)
    # The step changed the weights, so the comparison says something.
    assert moved >= len(model.trainable_weights) // 2, moved
    np.testing.assert_allclose(parallel_loss, single_loss, rtol=1e-4)


def test_batch_split_and_learning_rate_are_explicit():
    run = distribute.Distribution("mirrored", num_replicas=4)
    assert run.per_replica_batch_size(256) == 64
    with pytest.raises(ValueError, match="does not split evenly over 4 replicas"):
        run.per_replica_batch_size(250)
    lr = distribute.scale_learning_rate(0.03, 512, "linear", reference_batch_size=256)
    assert lr == pytest.approx(0.06)
    assert distribute.scale_learning_rate(1e-3, 1024, "sqrt") == pytest.approx(2e-3)
    assert distribute.scale_learning_rate(0.1, 512) == 0.1
    line = run.describe(512, lr, 0.03, scaling="linear")
    assert "MirroredStrategy over 4 replicas" in line
    assert "global batch 512 = 4 x 128 per replica" in line
    assert "learning rate 0.06 = 0.03 x (512 / 256) (linear scaling)" in line
    with pytest.raises(ValueError, match="Unknown learning-rate scaling 'cubic'"):
        distribute.scale_learning_rate(0.1, 512, "cubic")


def test_modes_refuse_the_wrong_backend_and_unknown_names():
    with pytest.raises(ValueError, match="Unknown --distribute 'ddp'"):
        with distribute.distribution_scope("ddp"):
            pass
    wrong = {"tensorflow": "jax-data-parallel", "jax": "mirrored",
             "torch": "mirrored"}[BACKEND]
    with pytest.raises(ValueError, match="needs KERAS_BACKEND="):
        with distribute.distribution_scope(wrong):
            pass
    if BACKEND != "jax":
        with pytest.raises(ValueError, match="multi-worker runs on the JAX backend"):
            with distribute.distribution_scope("multi-worker"):
                pass
    with pytest.raises(ValueError, match="Unknown precision 'float8'"):
        distribute.set_precision("float8")


def test_cluster_spec_names_what_is_wrong():
    spec = distribute.ClusterSpec("10.0.0.1:1234", 2, 1)
    assert distribute.ClusterSpec.from_environment(spec.environment()) == spec
    with pytest.raises(ValueError, match="is not 'host:port'"):
        distribute.ClusterSpec("10.0.0.1", 2, 0)
    with pytest.raises(ValueError, match=r"`process_id` 2 is not in 0..1"):
        distribute.ClusterSpec("h:1", 2, 2)
    with pytest.raises(ValueError, match="KERAS_SSL_PROCESS_ID"):
        distribute.ClusterSpec.from_environment(
            {"KERAS_SSL_COORDINATOR": "h:1", "KERAS_SSL_NUM_PROCESSES": "2"}
        )


def test_synchronized_batch_norm_is_switched_off_for_saving():
    model = methods.Supervised(resnet(), 10)
    if BACKEND != "tensorflow":
        with pytest.raises(ValueError, match="nothing to synchronise"):
            distribute.synchronize_batch_norm(model)
        return
    count = distribute.synchronize_batch_norm(model)
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert count == len(norms) > 0 and all(n.synchronized for n in norms)
    assert distribute.synchronize_batch_norm(model, False) == count
    assert not any(n.get_config()["synchronized"] for n in norms)


@pytest.mark.multibackend
def test_evaluation_pads_the_last_batch_and_leaves_the_padding_out():
    data, info = load_dataset(sample_subset(100), split="train", batch_size=32,
                              shuffle=False, with_info=True)
    padded = distribute.pad_to_full_batches(data, info.num_examples, 32)
    assert int(padded.cardinality()) == 4
    padded = list(padded)
    assert [len(labels) for _, labels, _ in padded] == [32, 32, 32, 32]
    weights = np.concatenate([np.asarray(w) for _, _, w in padded])
    assert weights.sum() == 100 and np.all(weights[100:] == 0)

    model = methods.Supervised(resnet(), num_classes=10)
    images = np.concatenate([np.asarray(x) for x, _ in data])
    labels = np.concatenate([np.asarray(y) for _, y in data])
    logits = np.asarray(model.predict(images, verbose=0), dtype="float64")
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    results = distribute.evaluate_top1(model, data, info.num_examples, 32)
    assert results["accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == labels), abs=1e-6
    )
    assert results["loss"] == pytest.approx(
        -log_probabilities[np.arange(100), labels].mean(), rel=1e-4
    )
