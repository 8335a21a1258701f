"""Mixed precision for every method: float16 compute with float32 variables
and dynamic loss scaling, the loss close to float32's, training finite."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_ssl import distribute
from tests.test_distribute import BATCH
from tests.test_distribute import METHODS

# A few methods on every backend (CI's JAX and PyTorch runs), all on TF.
EVERY_BACKEND = ("supervised", "sfe", "moco_v2", "mst")


def train(name, precision, steps=3):
    build, batch, prepare = METHODS[name]
    data = batch()
    distribute.set_precision(precision)
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(BATCH).repeat(steps)
    losses = []
    callbacks = [keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: prepare and prepare(model),
        on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]),
    )]
    model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks)
    return model, losses


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.multibackend) if name in EVERY_BACKEND
    else name
    for name in METHODS
])
def test_mixed_float16_trains_close_to_float32(name):
    _, reference = train(name, "float32")
    model, losses = train(name, "mixed_float16")
    assert model.compute_dtype == "float16"
    assert all(w.dtype == "float32" for w in model.trainable_weights)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.all(np.isfinite(losses)), losses
    # The first loss is on the same weights: float16 rounding only. Later
    # steps may also differ by a loss-scale step skipped on overflow.
    np.testing.assert_allclose(losses[0], reference[0], rtol=2e-2, atol=1e-3)
