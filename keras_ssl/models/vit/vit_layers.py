import keras

from keras_ssl.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTBlock(TransformerBlock):
    """Pre-norm transformer block of ViT and DeiT, as timm builds it.

    `x = x + MHSA(LN(x))`, then `x = x + MLP(LN(x))` with a GELU MLP
    (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"). The call
    interface (`attention_multiplier`, `return_attention`) is
    `TransformerBlock`'s.

    Args:
        num_heads: int. Attention heads; the head width is
            `hidden_dim // num_heads`.
        mlp_dim: int. Hidden width of the MLP.
        dropout: float. Dropout after the MLP layers.
        attention_dropout: float. Dropout on attention probabilities.
        drop_path_rate: float. Stochastic depth of both residual branches.
        layer_norm_epsilon: float. timm uses 1e-6.
        **kwargs: `TransformerBlock` and base layer arguments.
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(
            num_heads,
            attention_dropout=attention_dropout,
            drop_path_rate=drop_path_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            **kwargs,
        )
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout

    def kernel_initializer(self):
        return keras.initializers.TruncatedNormal(stddev=0.02)

    def build_feed_forward(self, input_shape, kernel_initializer):
        policy = self.dtype_policy
        self.mlp_in = keras.layers.Dense(
            self.mlp_dim,
            activation="gelu",
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="mlp_in",
        )
        self.mlp_out = keras.layers.Dense(
            input_shape[-1],
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="mlp_out",
        )
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def feed_forward(self, hidden, training=None):
        hidden = self.dropout(self.mlp_in(hidden), training=training)
        return self.dropout(self.mlp_out(hidden), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"mlp_dim": self.mlp_dim, "dropout": self.dropout_rate})
        return config
