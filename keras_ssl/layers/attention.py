import keras
from keras import ops


def _fused_attention_runs(dtype):
    """False where `ops.dot_product_attention` cannot run: JAX's float16
    kernel on CPU asks XLA for a float16 x float16 -> float32 dot, which the
    CPU backend refuses (measured with JAX 0.10)."""
    if dtype != "float16" or keras.backend.backend() != "jax":
        return True
    import jax

    return jax.default_backend() != "cpu"


@keras.saving.register_keras_serializable(package="keras_ssl")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention that exposes and masks its attention maps.

    One implementation serves ViT (separate query, key and value projections,
    fused in one `qkv` matrix, Dosovitskiy et al. 2021) and CRATE's MSSA
    (`tied_qkv=True`: the same projection `w = U^T z` is query, key and value,
    Yu et al. 2023 "White-Box Transformers via Sparse Rate Reduction").

    The layer can return the post-softmax attention probabilities
    `[batch, num_heads, tokens, tokens]`, and can take a multiplier of the
    same shape (broadcastable) applied after the softmax without
    renormalisation, which is how MPAH removes a head's attention to chosen
    patches.

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Width of each head.
        tied_qkv: bool. If `True`, one projection of width
            `num_heads * head_dim` serves as query, key and value (CRATE).
        qkv_bias: bool. Whether the `qkv` projection has a bias.
        output_bias: bool. Whether the output projection has a bias.
        attention_dropout: float. Dropout on the attention probabilities.
        kernel_initializer: initializer of both projections.
        **kwargs: base layer arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        tied_qkv=False,
        qkv_bias=True,
        output_bias=True,
        attention_dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.tied_qkv = tied_qkv
        self.qkv_bias = qkv_bias
        self.output_bias = output_bias
        self.attention_dropout = attention_dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.scale = head_dim**-0.5

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        inner_dim = self.num_heads * self.head_dim
        num_projections = 1 if self.tied_qkv else 3
        self.qkv = keras.layers.Dense(
            num_projections * inner_dim,
            use_bias=self.qkv_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="qkv",
        )
        self.qkv.build(input_shape)
        self.output_projection = keras.layers.Dense(
            hidden_dim,
            use_bias=self.output_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output_projection",
        )
        self.output_projection.build(tuple(input_shape[:-1]) + (inner_dim,))
        self.dropout = keras.layers.Dropout(
            self.attention_dropout, dtype=self.dtype_policy
        )

    def call(
        self,
        inputs,
        attention_multiplier=None,
        return_attention=False,
        training=None,
    ):
        batch_size, num_tokens = ops.shape(inputs)[0], ops.shape(inputs)[1]
        qkv = self.qkv(inputs)
        if self.tied_qkv:
            query = key = value = ops.reshape(
                qkv, (batch_size, num_tokens, self.num_heads, self.head_dim)
            )
        else:
            qkv = ops.reshape(
                qkv, (batch_size, num_tokens, 3, self.num_heads, self.head_dim)
            )
            query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

        needs_probabilities = (
            return_attention
            or attention_multiplier is not None
            or (training and self.attention_dropout > 0)
            or not _fused_attention_runs(self.compute_dtype)
        )
        if needs_probabilities:
            scores = ops.einsum("bqhd,bkhd->bhqk", query, key) * self.scale
            # Softmax in float32 so mixed precision keeps rows summing to 1.
            attention = ops.cast(
                ops.softmax(ops.cast(scores, "float32"), axis=-1),
                self.compute_dtype,
            )
            if attention_multiplier is not None:
                attention = attention * ops.cast(
                    attention_multiplier, self.compute_dtype
                )
            weights = self.dropout(attention, training=training)
            outputs = ops.einsum("bhqk,bkhd->bqhd", weights, value)
        else:
            # The fused kernel is faster and never materialises the maps.
            outputs = ops.dot_product_attention(
                query, key, value, scale=self.scale
            )
        outputs = ops.reshape(
            outputs, (batch_size, num_tokens, self.num_heads * self.head_dim)
        )
        outputs = self.output_projection(outputs)
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
                "tied_qkv": self.tied_qkv,
                "qkv_bias": self.qkv_bias,
                "output_bias": self.output_bias,
                "attention_dropout": self.attention_dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
