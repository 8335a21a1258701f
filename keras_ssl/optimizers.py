"""Optimizers whose semantics match the PyTorch recipes the papers report."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ssl")
class SGDWithL2Decay(keras.optimizers.SGD):
    """SGD with L2 weight decay added to the gradient, as `torch.optim.SGD`.

    Keras' `weight_decay` is decoupled (`w -= lr * wd * w` after the update).
    `torch.optim.SGD(weight_decay=wd)` instead adds `wd * w` to the gradient
    before momentum, so momentum amplifies it (about `1 / (1 - momentum)`,
    10x at 0.9). A paper's "SGD, weight decay 5e-4" means the latter; this
    optimizer reproduces it. The decay applies to every trainable variable,
    as a plain `model.parameters()` optimizer in PyTorch does. Under
    `tf.distribute` the decay is added after the cross-replica gradient
    sum, so it is counted once.

    Args:
        learning_rate: float or a `LearningRateSchedule`.
        momentum: float. Momentum (0.9 in the ResNet recipes).
        nesterov: bool. Nesterov momentum.
        l2_decay: float. The `weight_decay` of the PyTorch recipe.
        **kwargs: other `keras.optimizers.SGD` arguments (not
            `weight_decay`, which would decay a second time).

    Example:
    ```python
    optimizer = keras_ssl.optimizers.SGDWithL2Decay(
        0.1, momentum=0.9, nesterov=True, l2_decay=5e-4
    )
    ```
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=False,
        l2_decay=5e-4,
        name="sgd_with_l2_decay",
        **kwargs,
    ):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "`SGDWithL2Decay` applies `l2_decay` in the gradient; do not "
                "also pass the decoupled `weight_decay`. Received "
                f"weight_decay={kwargs['weight_decay']}."
            )
        if l2_decay < 0:
            raise ValueError(f"`l2_decay` must be >= 0; received {l2_decay}.")
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            name=name,
            **kwargs,
        )
        self.l2_decay = l2_decay

    def update_step(self, gradient, variable, learning_rate):
        # Here, not in `apply`: TF sums gradients across replicas before
        # this point, so the decay is not multiplied by the replica count.
        if self.l2_decay:
            gradient = ops.add(
                ops.cast(gradient, variable.dtype),
                ops.multiply(ops.cast(self.l2_decay, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2_decay"] = self.l2_decay
        return config
