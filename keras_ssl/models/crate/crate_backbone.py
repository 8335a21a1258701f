import keras

from keras_ssl.layers.tokens import ConvPatchEmbedding
from keras_ssl.layers.tokens import TokenEmbedding
from keras_ssl.models.crate.crate_layers import CRATEAlphaBlock
from keras_ssl.models.crate.crate_layers import CRATEBlock
from keras_ssl.models.crate.crate_layers import CRATEPatchEmbedding
from keras_ssl.models.token_backbone import TokenBackbone
from keras_ssl.models.token_backbone import check_patch_grid

# Sizes of the official CRATE models (head width = hidden_dim / num_heads).
CRATE_SIZES = {
    "tiny": {"hidden_dim": 384, "num_heads": 6, "num_layers": 12},
    "small": {"hidden_dim": 576, "num_heads": 12, "num_layers": 12},
    "base": {"hidden_dim": 768, "num_heads": 12, "num_layers": 12},
    "large": {"hidden_dim": 1024, "num_heads": 16, "num_layers": 24},
}
VARIANTS = ("crate", "crate_alpha")


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEBackbone(TokenBackbone):
    """CRATE backbone, the white-box transformer of sparse rate reduction.

    Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction"
    (NeurIPS). Exactly the official architecture: patches are flattened and
    embedded by LayerNorm -> Linear -> LayerNorm, a class token is prepended
    and learned positions added, then `num_layers` CRATE blocks each
    compress (MSSA, residual) and sparsify (one ISTA step, no residual).

    The output is `final_norm` applied to every token, `[B, 1 + N, dim]`:
    `final_norm` holds the official head's LayerNorm (`mlp_head.0`), so
    class-token pooling of the output followed by a Linear layer is the
    official classifier exactly. (With mean pooling the norm comes before
    the mean, where the official code normalises after it.)

    The parts are exposed for methods that run the network piece by piece:
    `embed(images, token_mask=None)`, `blocks`, `final_norm`.

    `variant="crate_alpha"` builds CRATE-alpha (Yang et al. 2024, "Scaling
    White-Box Transformers for Vision") as its official code does: a
    strided convolution with bias embeds the patches (no patch
    LayerNorms), and each `CRATEAlphaBlock` is residual around both MSSA
    (output projection without bias) and an overcomplete dictionary step
    (`[dim, 4 * dim]` dictionaries `D` and `D1`). Its block LayerNorms use
    eps 1e-6 while the head LayerNorm (`final_norm`) keeps PyTorch's 1e-5.

    Args:
        image_shape: `(height, width, channels)`, fixed; divisible by
            `patch_size`.
        patch_size: int. Side of the square patches.
        hidden_dim: int. Token width.
        num_layers: int. Number of CRATE blocks.
        num_heads: int. Subspaces (attention heads) per block.
        head_dim: int or None. Subspace width; `hidden_dim // num_heads`
            when None.
        step_size: float. ISTA step size eta.
        sparsity: float. ISTA sparsity penalty lambda.
        dropout: float. Dropout on the embeddings.
        attention_dropout: float. Dropout on attention probabilities.
        layer_norm_epsilon: float or None. Epsilon of the patch and block
            LayerNorms; None for the variant's official value (1e-5 for
            CRATE, 1e-6 for CRATE-alpha).
        variant: "crate" (Yu et al. 2023) or "crate_alpha" (Yang et al.
            2024).
        dtype: dtype or `keras.DTypePolicy` of the layers.

    Example:
    ```python
    backbone = keras_ssl.models.CRATEBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    tokens = backbone(np.zeros((2, 32, 32, 3)))  # (2, 65, 384)

    # CRATE-alpha-B/16.
    alpha = keras_ssl.models.CRATEBackbone.from_size(
        "base", variant="crate_alpha"
    )
    ```
    """

    named_sizes = CRATE_SIZES

    def __init__(
        self,
        image_shape=(224, 224, 3),
        patch_size=16,
        hidden_dim=384,
        num_layers=12,
        num_heads=6,
        head_dim=None,
        step_size=0.1,
        sparsity=0.1,
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_epsilon=None,
        variant="crate",
        dtype=None,
        **kwargs,
    ):
        grid_size = check_patch_grid(image_shape, patch_size)
        if variant not in VARIANTS:
            raise ValueError(
                f"Unknown CRATE `variant`={variant!r}. Choose one of "
                f"{VARIANTS}."
            )
        is_alpha = variant == "crate_alpha"
        if layer_norm_epsilon is None:
            layer_norm_epsilon = 1e-6 if is_alpha else 1e-5
        if head_dim is None:
            if hidden_dim % num_heads:
                raise ValueError(
                    f"`hidden_dim`={hidden_dim} is not divisible by "
                    f"`num_heads`={num_heads}; pass `head_dim` explicitly."
                )
            head_dim = hidden_dim // num_heads
        # === Layers ===
        if is_alpha:
            self.patch_embedding = ConvPatchEmbedding(
                hidden_dim, patch_size, dtype=dtype, name="patch_embedding"
            )
        else:
            self.patch_embedding = CRATEPatchEmbedding(
                hidden_dim,
                patch_size,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=dtype,
                name="patch_embedding",
            )
        # The official model draws both from a standard normal.
        self.token_embedding = TokenEmbedding(
            grid_size,
            hidden_dim,
            position_initializer=keras.initializers.RandomNormal(stddev=1.0),
            class_token_initializer=keras.initializers.RandomNormal(stddev=1.0),
            mask_token_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embedding_dropout"
        )
        block_cls = CRATEAlphaBlock if is_alpha else CRATEBlock
        self.blocks = [
            block_cls(
                num_heads,
                head_dim,
                step_size=step_size,
                sparsity=sparsity,
                attention_dropout=attention_dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=dtype,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        # CRATE-alpha's head LayerNorm (`mlp_head.0`) keeps PyTorch's
        # default epsilon, unlike its blocks.
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-5 if is_alpha else layer_norm_epsilon,
            dtype=dtype,
            name="final_norm",
        )
        # === Functional model ===
        self.build_token_model(image_shape, dtype=dtype, **kwargs)

        # === Config ===
        self.image_shape = tuple(image_shape)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.step_size = step_size
        self.sparsity = sparsity
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.variant = variant

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "step_size": self.step_size,
                "sparsity": self.sparsity,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "variant": self.variant,
            }
        )
        return config
