import math

import keras
import numpy as np
from keras import ops

from keras_ssl.layers.resampling import resample_position_grid


@keras.saving.register_keras_serializable(package="keras_ssl")
class ConvPatchEmbedding(keras.layers.Layer):
    """Splits images into patches with a strided convolution (ViT, DeiT).

    Args:
        hidden_dim: int. Width of the patch tokens.
        patch_size: int. Side of the square patches (kernel and stride).
        use_bias: bool. Whether the projection has a bias.
        **kwargs: base layer arguments.
    """

    def __init__(self, hidden_dim, patch_size, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size
        self.use_bias = use_bias
        self.projection = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=patch_size,
            strides=patch_size,
            padding="valid",
            use_bias=use_bias,
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, images):
        patches = self.projection(images)
        shape = ops.shape(patches)
        return ops.reshape(patches, (shape[0], shape[1] * shape[2], shape[3]))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        grid = [
            None if side is None else side // self.patch_size
            for side in (height, width)
        ]
        num_patches = None if None in grid else grid[0] * grid[1]
        return (batch, num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "patch_size": self.patch_size,
                "use_bias": self.use_bias,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class TokenEmbedding(keras.layers.Layer):
    """Adds the class token, a [MASK] token and learned position embeddings.

    Input: patch tokens `[batch, num_patches, dim]` in row-major grid order.
    Output: `[batch, 1 + num_patches, dim]`, class token first, position
    embeddings added to all tokens (class token included, as in ViT and
    CRATE).

    `token_mask` (`[batch, num_patches]`, true where a patch is masked)
    replaces the chosen patch tokens by a learned [MASK] embedding before the
    position embeddings are added (as in BEiT, iBOT and MST), so a masked
    token still knows where it sits. The [MASK] embedding is frozen by
    default; a method that learns it calls `learn_mask_token()`.

    Weights saved at another grid size are resampled when loaded
    (antialiased bicubic, as timm does), so a model pretrained at 224x224
    fine-tunes at 32x32 or 384x384.

    Args:
        grid_size: `(rows, cols)` of the patch grid.
        hidden_dim: int. Token width.
        position_initializer: initializer of the position embeddings.
        class_token_initializer: initializer of the class token.
        mask_token_initializer: initializer of the [MASK] token.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        grid_size,
        hidden_dim,
        position_initializer="zeros",
        class_token_initializer="zeros",
        mask_token_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.grid_size = tuple(grid_size)
        self.hidden_dim = hidden_dim
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.position_initializer = keras.initializers.get(
            position_initializer
        )
        self.class_token_initializer = keras.initializers.get(
            class_token_initializer
        )
        self.mask_token_initializer = keras.initializers.get(
            mask_token_initializer
        )

    def build(self, input_shape):
        self.class_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            initializer=self.class_token_initializer,
            name="class_token",
        )
        self.position_embedding = self.add_weight(
            shape=(1, 1 + self.num_patches, self.hidden_dim),
            initializer=self.position_initializer,
            name="position_embedding",
        )
        # Frozen until a masking method trains it: a trainable variable
        # that gets no gradient makes Keras warn on every supervised step.
        self.mask_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            initializer=self.mask_token_initializer,
            trainable=False,
            name="mask_token",
        )

    def learn_mask_token(self):
        """Makes the [MASK] embedding trainable (MST and other masking
        methods call this).

        The variable is created anew with its current value: TensorFlow's
        gradient tape only watches variables created trainable, so setting
        `mask_token.trainable = True` would leave it untrained there.
        """
        if self.mask_token.trainable:
            return
        value = keras.ops.convert_to_numpy(self.mask_token)
        del self.mask_token  # untracks the frozen variable
        self._tracker.unlock()
        self.mask_token = self.add_weight(
            shape=value.shape,
            initializer=keras.initializers.Constant(value),
            name="mask_token",
        )
        self._lock_state()

    def call(self, patch_tokens, token_mask=None, grid_size=None):
        if token_mask is not None:
            mask = ops.cast(ops.expand_dims(token_mask, -1), "bool")
            patch_tokens = ops.where(
                mask, ops.cast(self.mask_token, patch_tokens.dtype), patch_tokens
            )
        batch_size = ops.shape(patch_tokens)[0]
        class_tokens = ops.broadcast_to(
            ops.cast(self.class_token, patch_tokens.dtype),
            (batch_size, 1, self.hidden_dim),
        )
        tokens = ops.concatenate([class_tokens, patch_tokens], axis=1)
        position = ops.cast(self.position_embedding, tokens.dtype)
        if grid_size is not None and tuple(grid_size) != self.grid_size:
            position = self.interpolate_positions(position, grid_size)
        return tokens + position

    def interpolate_positions(self, position, grid_size):
        """Position embeddings `[1, 1 + rows * cols, dim]` for another
        grid, differentiably (bicubic, no antialiasing)."""
        grid = ops.reshape(
            position[:, 1:], (1,) + self.grid_size + (self.hidden_dim,)
        )
        grid = ops.image.resize(grid, tuple(grid_size), interpolation="bicubic")
        grid = ops.reshape(grid, (1, -1, self.hidden_dim))
        return ops.concatenate([position[:, :1], grid], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 + self.num_patches, self.hidden_dim)

    def load_own_variables(self, store):
        # The order Keras saves in: class token, position, mask token.
        variables = self._trainable_variables + self._non_trainable_variables
        values = [np.asarray(store[str(i)]) for i in range(len(store.keys()))]
        for i, (variable, value) in enumerate(zip(variables, values)):
            if variable is self.position_embedding and value.shape != tuple(
                variable.shape
            ):
                values[i] = self.resample_positions(value)
            variable.assign(values[i])

    def resample_positions(self, position):
        """Resamples `[1, 1 + N, dim]` embeddings of a square grid."""
        old_side = math.isqrt(position.shape[1] - 1)
        if old_side * old_side != position.shape[1] - 1:
            raise ValueError(
                "Cannot resample position embeddings with "
                f"{position.shape[1] - 1} patch positions: only square grids "
                "can be inferred. Build the backbone with the image shape "
                "the weights were trained at."
            )
        grid = position[0, 1:].reshape(old_side, old_side, -1)
        grid = resample_position_grid(grid, self.grid_size)
        return np.concatenate(
            [position[:, :1], grid.reshape(1, self.num_patches, -1)], axis=1
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": self.grid_size,
                "hidden_dim": self.hidden_dim,
                "position_initializer": keras.initializers.serialize(
                    self.position_initializer
                ),
                "class_token_initializer": keras.initializers.serialize(
                    self.class_token_initializer
                ),
                "mask_token_initializer": keras.initializers.serialize(
                    self.mask_token_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops a whole residual branch per sample.

    Huang et al. 2016, "Deep Networks with Stochastic Depth"; DeiT trains
    ViTs with it.

    Args:
        rate: float. Probability of dropping the branch.
        **kwargs: base layer arguments.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draw = keras.random.uniform(shape, seed=self.seed_generator)
        mask = ops.cast(draw < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
