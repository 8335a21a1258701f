import keras

from keras_ssl.layers.attention import MultiHeadSelfAttention
from keras_ssl.layers.tokens import DropPath


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTBlock(keras.layers.Layer):
    """Pre-norm transformer block of ViT and DeiT, as timm builds it.

    `x = x + MHSA(LN(x))`, then `x = x + MLP(LN(x))` with a GELU MLP
    (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

    Call arguments beyond the tokens: `attention_multiplier` (post-softmax
    multiplier `[B, H, T, T]`, no renormalisation) and `return_attention`
    (also return the attention probabilities `[B, H, T, T]`).

    Args:
        num_heads: int. Attention heads; the head width is
            `hidden_dim // num_heads`.
        mlp_dim: int. Hidden width of the MLP.
        dropout: float. Dropout after the MLP layers.
        attention_dropout: float. Dropout on attention probabilities.
        drop_path_rate: float. Stochastic depth of both residual branches.
        layer_norm_epsilon: float. timm uses 1e-6.
        **kwargs: base layer arguments.
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
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"`hidden_dim`={hidden_dim} is not divisible by "
                f"`num_heads`={self.num_heads}."
            )
        dense_init = keras.initializers.TruncatedNormal(stddev=0.02)
        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="norm1"
        )
        self.attention = MultiHeadSelfAttention(
            self.num_heads,
            hidden_dim // self.num_heads,
            qkv_bias=True,
            attention_dropout=self.attention_dropout,
            kernel_initializer=dense_init,
            dtype=policy,
            name="attention",
        )
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="norm2"
        )
        self.mlp_in = keras.layers.Dense(
            self.mlp_dim,
            activation="gelu",
            kernel_initializer=dense_init,
            dtype=policy,
            name="mlp_in",
        )
        self.mlp_out = keras.layers.Dense(
            hidden_dim, kernel_initializer=dense_init, dtype=policy,
            name="mlp_out",
        )
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy)
        self.drop_path = DropPath(self.drop_path_rate, dtype=policy)
        for layer in (self.norm1, self.attention, self.norm2, self.mlp_in):
            layer.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

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
        tokens = tokens + self.drop_path(attended, training=training)
        hidden = self.dropout(self.mlp_in(self.norm2(tokens)), training=training)
        hidden = self.dropout(self.mlp_out(hidden), training=training)
        tokens = tokens + self.drop_path(hidden, training=training)
        if return_attention:
            return tokens, attention
        return tokens

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout": self.dropout_rate,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
