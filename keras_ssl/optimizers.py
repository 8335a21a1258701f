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


@keras.saving.register_keras_serializable(package="keras_ssl")
class AdamWCosineWeightDecay(keras.optimizers.AdamW):
    """AdamW whose decoupled weight decay follows a cosine, as DINO's.

    Caron et al. 2021 (DINO), whose recipe MST follows: the decay at step
    `t` is `final + 0.5 * (initial - final) * (1 + cos(pi * t /
    decay_steps))`, then `final_weight_decay`; biases and other 1-D
    parameters (norm scales) are not decayed, as DINO's parameter groups.
    The decay is `w -= lr * wd_t * w` before the Adam step, as Keras'
    AdamW.

    Args:
        learning_rate: float or a `LearningRateSchedule`.
        weight_decay: float. Decay at step 0 (DINO: 0.04).
        final_weight_decay: float. Decay at `decay_steps` (DINO: 0.4).
        decay_steps: int. Length of the cosine, the training steps.
        **kwargs: other `keras.optimizers.AdamW` arguments (`clipnorm=3.0`
            is DINO's gradient clipping).

    Example:
    ```python
    optimizer = keras_ssl.optimizers.AdamWCosineWeightDecay(
        5e-4, weight_decay=0.04, final_weight_decay=0.4, decay_steps=10_000,
        clipnorm=3.0,
    )
    ```
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.04,
                 final_weight_decay=0.4, decay_steps=1,
                 name="adamw_cosine_weight_decay", **kwargs):
        if decay_steps < 1:
            raise ValueError(f"`decay_steps` must be >= 1; received {decay_steps}.")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         name=name, **kwargs)
        self.final_weight_decay = final_weight_decay
        self.decay_steps = decay_steps

    def weight_decay_at(self, step):
        progress = ops.minimum(ops.cast(step, "float32") / self.decay_steps, 1.0)
        return self.final_weight_decay + 0.5 * (
            self.weight_decay - self.final_weight_decay
        ) * (1.0 + ops.cos(3.141592653589793 * progress))

    def _apply_weight_decay(self, variables):
        # The scheduled decay is applied per variable in `update_step`.
        return

    def update_step(self, gradient, variable, learning_rate):
        if len(variable.shape) > 1 and self._use_weight_decay(variable):
            decay = ops.cast(self.weight_decay_at(self.iterations), variable.dtype)
            rate = ops.cast(learning_rate, variable.dtype)
            variable.assign(variable - variable * decay * rate)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"final_weight_decay": self.final_weight_decay,
                       "decay_steps": self.decay_steps})
        return config
