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
