"""`SGDWithL2Decay` against `torch.optim.SGD(weight_decay=...)`."""

import numpy as np
import pytest
import torch

import keras

from keras_ssl.optimizers import SGDWithL2Decay


@pytest.mark.multibackend
@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_sgd_weight_decay(nesterov):
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(5, 3)).astype("float32")
    gradients = [rng.normal(size=(5, 3)).astype("float32") for _ in range(6)]

    reference = torch.nn.Parameter(torch.tensor(initial))
    torch_sgd = torch.optim.SGD(
        [reference], lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4
    )
    variable = keras.Variable(initial)
    ours = SGDWithL2Decay(0.1, momentum=0.9, nesterov=nesterov, l2_decay=5e-4)
    for gradient in gradients:
        reference.grad = torch.tensor(gradient)
        torch_sgd.step()
        ours.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(variable), reference.detach().numpy(),
        rtol=1e-5, atol=1e-6,
    )
    # Keras' decoupled decay lands elsewhere: the test can tell them apart.
    decoupled = keras.Variable(initial)
    keras_sgd = keras.optimizers.SGD(
        0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4
    )
    for gradient in gradients:
        keras_sgd.apply([keras.ops.convert_to_tensor(gradient)], [decoupled])
    assert not np.allclose(
        keras.ops.convert_to_numpy(decoupled), reference.detach().numpy(),
        rtol=1e-5, atol=1e-6,
    )


def test_rejects_a_second_decay():
    with pytest.raises(ValueError, match="do not also pass the decoupled"):
        SGDWithL2Decay(0.1, weight_decay=1e-4)


def test_round_trips_its_config():
    optimizer = SGDWithL2Decay(0.05, momentum=0.8, nesterov=True, l2_decay=1e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, SGDWithL2Decay)
    assert restored.l2_decay == 1e-4 and restored.nesterov


def test_trains_under_mirrored_strategy_as_on_one_device():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute is TensorFlow's")
    from tests.conftest import two_replica_strategy

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(8, 4)).astype("float32")
    targets = rng.normal(size=(8, 3)).astype("float32")
    initial = [rng.normal(size=(4, 3)).astype("float32"), np.zeros(3, "float32")]

    def train(strategy=None):
        def build():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
            model.set_weights(initial)
            model.compile(
                optimizer=SGDWithL2Decay(0.1, momentum=0.9, nesterov=True, l2_decay=0.5),
                loss="mse",
            )
            return model

        if strategy is None:
            model = build()
        else:
            with strategy.scope():
                model = build()
        model.fit(inputs, targets, batch_size=8, epochs=3, shuffle=False, verbose=0)
        return model.get_weights()

    single, mirrored = train(), train(two_replica_strategy())
    for ours, reference in zip(mirrored, single):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
