import keras
from keras import ops

from keras_ssl.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEPatchEmbedding(keras.layers.Layer):
    """CRATE's patch embedding: flatten, LayerNorm, Linear, LayerNorm.

    Each patch is flattened in (row, column, channel) order, as the official
    `Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')` does, so official
    checkpoints load without reordering. No convolution.

    Args:
        hidden_dim: int. Token width.
        patch_size: int. Side of the square patches.
        layer_norm_epsilon: float. PyTorch's default 1e-5.
        **kwargs: base layer arguments.
    """

    def __init__(self, hidden_dim, patch_size, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        patch_dim = self.patch_size * self.patch_size * input_shape[-1]
        policy = self.dtype_policy
        self.patch_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="patch_norm"
        )
        self.projection = keras.layers.Dense(
            self.hidden_dim,
            kernel_initializer=_torch_linear_initializer(),
            dtype=policy,
            name="projection",
        )
        self.token_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="token_norm"
        )
        self.patch_norm.build((None, None, patch_dim))
        self.projection.build((None, None, patch_dim))
        self.token_norm.build((None, None, self.hidden_dim))

    def call(self, images):
        batch, height, width, channels = ops.shape(images)
        size = self.patch_size
        rows, cols = height // size, width // size
        patches = ops.reshape(images, (batch, rows, size, cols, size, channels))
        patches = ops.transpose(patches, (0, 1, 3, 2, 4, 5))
        patches = ops.reshape(patches, (batch, rows * cols, size * size * channels))
        return self.token_norm(self.projection(self.patch_norm(patches)))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        num_patches = None
        if height is not None and width is not None:
            num_patches = (height // self.patch_size) * (width // self.patch_size)
        return (batch, num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "patch_size": self.patch_size,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEBlock(TransformerBlock):
    """One CRATE layer: MSSA compression, then one ISTA sparsification step.

    Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction".
    With pre-norms: `h = x + MSSA(LN1(x))`, then, with `z = LN2(h)`,
    `out = relu(z + eta * (z W - (z W^T) W) - eta * lambda)` — one proximal
    gradient step towards a sparse code of `z` in the dictionary `W`
    (`[dim, dim]`, stored as the official `weight`). There is no residual
    around the ISTA step. MSSA uses one projection as query, key and value.
    The call interface is `TransformerBlock`'s.

    Args:
        num_heads: int. Subspaces (attention heads).
        head_dim: int. Width of each subspace.
        step_size: float. ISTA step size eta (0.1 in the paper).
        sparsity: float. ISTA sparsity penalty lambda (0.1 in the paper).
        attention_dropout: float. Dropout on attention probabilities.
        layer_norm_epsilon: float. PyTorch's default 1e-5.
        **kwargs: `TransformerBlock` and base layer arguments.
    """

    tied_qkv = True
    qkv_bias = False
    residual_feed_forward = False

    def __init__(
        self,
        num_heads,
        head_dim,
        step_size=0.1,
        sparsity=0.1,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(
            num_heads,
            head_dim=head_dim,
            attention_dropout=attention_dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            **kwargs,
        )
        self.step_size = step_size
        self.sparsity = sparsity

    def kernel_initializer(self):
        return _torch_linear_initializer()

    def build_feed_forward(self, input_shape, kernel_initializer):
        hidden_dim = input_shape[-1]
        # Official init: kaiming_uniform_ with its defaults, U(+-sqrt(6/fan)).
        self.dictionary = self.add_weight(
            shape=(hidden_dim, hidden_dim),
            initializer="he_uniform",
            name="dictionary",
        )

    def feed_forward(self, hidden, training=None):
        dictionary = ops.cast(self.dictionary, hidden.dtype)
        # z W - (z W^T) W: the gradient of ||z - W^T-code||^2 at code z.
        gradient = ops.matmul(hidden, dictionary) - ops.matmul(
            ops.matmul(hidden, ops.transpose(dictionary)), dictionary
        )
        return ops.relu(
            hidden + self.step_size * gradient - self.step_size * self.sparsity
        )

    def get_config(self):
        config = super().get_config()
        config.update({"step_size": self.step_size, "sparsity": self.sparsity})
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEAlphaBlock(CRATEBlock):
    """One CRATE-alpha layer: MSSA, then an overcomplete dictionary step.

    Yang et al. 2024, "Scaling White-Box Transformers for Vision"
    (CRATE-alpha). Both sub-blocks are residual: `x = x + MSSA(LN1(x))`,
    then `x = x + ODL(LN2(x))`. With `z = LN2(x)`, the overcomplete
    dictionary learning step runs two proximal steps of a sparse code in
    the dictionary `D` (`[dim, expansion * dim]`) from zero and decodes the
    code with a separate dictionary `D1` of the same shape:
    `z1 = relu(eta * z D - eta * lambda)`,
    `z2 = relu(z1 - eta * ((z1 D^T - z) D) - eta * lambda)`,
    `out = z2 D1^T`. MSSA is CRATE's, with no bias on its output
    projection. The call interface is `TransformerBlock`'s.

    Args:
        num_heads: int. Subspaces (attention heads).
        head_dim: int. Width of each subspace.
        expansion: int. Overcompleteness of the dictionaries (4 in the
            paper).
        step_size: float. Proximal step size eta (0.1 in the paper).
        sparsity: float. Sparsity penalty lambda (0.1 in the paper).
        attention_dropout: float. Dropout on attention probabilities.
        layer_norm_epsilon: float. The official code uses 1e-6.
        **kwargs: `TransformerBlock` and base layer arguments.
    """

    output_bias = False
    residual_feed_forward = True

    def __init__(
        self,
        num_heads,
        head_dim,
        expansion=4,
        step_size=0.1,
        sparsity=0.1,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(
            num_heads,
            head_dim,
            step_size=step_size,
            sparsity=sparsity,
            attention_dropout=attention_dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            **kwargs,
        )
        self.expansion = expansion

    def build_feed_forward(self, input_shape, kernel_initializer):
        hidden_dim = input_shape[-1]
        # Official init: kaiming_uniform_ of a [dim, expansion * dim] tensor,
        # whose fan_in is its second axis.
        dictionary_init = keras.initializers.VarianceScaling(
            scale=2.0 / self.expansion, mode="fan_in", distribution="uniform"
        )
        shape = (hidden_dim, self.expansion * hidden_dim)
        self.dictionary = self.add_weight(
            shape=shape, initializer=dictionary_init, name="dictionary"
        )
        self.decoder = self.add_weight(
            shape=shape, initializer=dictionary_init, name="decoder"
        )

    def feed_forward(self, hidden, training=None):
        dictionary = ops.cast(self.dictionary, hidden.dtype)
        decoder = ops.cast(self.decoder, hidden.dtype)
        threshold = self.step_size * self.sparsity
        code = ops.relu(
            self.step_size * ops.matmul(hidden, dictionary) - threshold
        )
        residual = ops.matmul(code, ops.transpose(dictionary)) - hidden
        code = ops.relu(
            code
            - self.step_size * ops.matmul(residual, dictionary)
            - threshold
        )
        return ops.matmul(code, ops.transpose(decoder))

    def get_config(self):
        config = super().get_config()
        config.update({"expansion": self.expansion})
        return config


def _torch_linear_initializer():
    # nn.Linear's default, U(+-1/sqrt(fan_in)), which the CRATE recipes use.
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )
