import keras

from keras_ssl.layers.attention import MultiHeadSelfAttention
from keras_ssl.layers.tokens import DropPath


class TransformerBlock(keras.layers.Layer):
    """Base of the pre-norm transformer blocks (ViT, CRATE, CRATE-alpha).

    `x = x + MHSA(LN1(x))` through `MultiHeadSelfAttention`, then the
    family's second sub-block `F` on `z = LN2(x)`: the block returns
    `x + F(z)` when `residual_feed_forward` is true (ViT's MLP,
    CRATE-alpha's dictionary step) and `F(z)` otherwise (CRATE's ISTA step).

    The base owns the norms, the attention and the call interface methods
    rely on: `block(tokens, attention_multiplier=None,
    return_attention=False, training=None)`, where `attention_multiplier`
    (`[B, H, T, T]`, broadcastable) multiplies the post-softmax attention
    without renormalisation and `return_attention` also returns the
    attention probabilities `[B, H, T, T]`. A family sets the class
    attributes `tied_qkv`, `qkv_bias`, `output_bias` and
    `residual_feed_forward`, and implements `kernel_initializer()`,
    `build_feed_forward(input_shape, kernel_initializer)` and
    `feed_forward(hidden, training)`. Sub-layer names (`norm1`,
    `attention`, `norm2`, ...) are the weight paths of saved checkpoints.

    Args:
        num_heads: int. Attention heads.
        head_dim: int or None. Width of each head; None for
            `hidden_dim // num_heads`.
        attention_dropout: float. Dropout on attention probabilities.
        drop_path_rate: float or None. Stochastic depth of the residual
            branches; None builds no stochastic-depth layer (CRATE's blocks
            have none, and one more seeded layer would shift the seeds of
            later initialisers).
        layer_norm_epsilon: float. Epsilon of both LayerNorms.
        **kwargs: base layer arguments.
    """

    tied_qkv = False
    qkv_bias = True
    output_bias = True
    residual_feed_forward = True

    def __init__(
        self,
        num_heads,
        head_dim=None,
        attention_dropout=0.0,
        drop_path_rate=None,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def kernel_initializer(self):
        """Initializer of the attention projections."""
        return "glorot_uniform"

    def build_feed_forward(self, input_shape, kernel_initializer):
        """Creates and builds the second sub-block's layers and weights."""
        raise NotImplementedError

    def feed_forward(self, hidden, training=None):
        """The second sub-block on the normalised tokens `LN2(x)`."""
        raise NotImplementedError

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        head_dim = self.head_dim
        if head_dim is None:
            if hidden_dim % self.num_heads:
                raise ValueError(
                    f"`hidden_dim`={hidden_dim} is not divisible by "
                    f"`num_heads`={self.num_heads}."
                )
            head_dim = hidden_dim // self.num_heads
        # One initializer object, shared with the second sub-block: each
        # construction draws a seed, so more would shift later weights.
        kernel_initializer = self.kernel_initializer()
        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="norm1"
        )
        self.attention = MultiHeadSelfAttention(
            self.num_heads,
            head_dim,
            tied_qkv=self.tied_qkv,
            qkv_bias=self.qkv_bias,
            output_bias=self.output_bias,
            attention_dropout=self.attention_dropout,
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="attention",
        )
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="norm2"
        )
        for layer in (self.norm1, self.attention, self.norm2):
            layer.build(input_shape)
        self.build_feed_forward(input_shape, kernel_initializer)
        self.drop_path = None
        if self.drop_path_rate is not None:
            self.drop_path = DropPath(self.drop_path_rate, dtype=policy)

    def residual_branch(self, branch, training=None):
        if self.drop_path is None:
            return branch
        return self.drop_path(branch, training=training)

    def call(
        self,
        tokens,
        attention_multiplier=None,
        return_attention=False,
        training=None,
    ):
        attended = self.attention(
            self.norm1(tokens),
            attention_multiplier=attention_multiplier,
            return_attention=return_attention,
            training=training,
        )
        if return_attention:
            attended, attention = attended
        tokens = tokens + self.residual_branch(attended, training=training)
        outputs = self.feed_forward(self.norm2(tokens), training=training)
        if self.residual_feed_forward:
            outputs = tokens + self.residual_branch(outputs, training=training)
        if return_attention:
            return outputs, attention
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
