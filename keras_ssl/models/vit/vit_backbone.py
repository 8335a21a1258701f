import keras

from keras_ssl.layers.tokens import ConvPatchEmbedding
from keras_ssl.layers.tokens import TokenEmbedding
from keras_ssl.models.token_backbone import TokenBackbone
from keras_ssl.models.token_backbone import check_patch_grid
from keras_ssl.models.vit.vit_layers import ViTBlock

# Widths, heads and depths of ViT/DeiT (Touvron et al. 2021 for tiny/small).
VIT_SIZES = {
    "tiny": {"hidden_dim": 192, "num_heads": 3, "num_layers": 12, "mlp_dim": 768},
    "small": {"hidden_dim": 384, "num_heads": 6, "num_layers": 12, "mlp_dim": 1536},
    "base": {"hidden_dim": 768, "num_heads": 12, "num_layers": 12, "mlp_dim": 3072},
    "large": {
        "hidden_dim": 1024,
        "num_heads": 16,
        "num_layers": 24,
        "mlp_dim": 4096,
    },
}


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTBackbone(TokenBackbone):
    """Vision Transformer backbone (ViT and DeiT), laid out as timm's.

    Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers
    for Image Recognition at Scale"; Touvron et al. 2021, "Training
    data-efficient image transformers & distillation through attention".

    A strided convolution (with bias) embeds patches, a class token is
    prepended and learned position embeddings are added; `num_layers`
    pre-norm blocks follow, then a final LayerNorm. The output is the
    normalised token sequence `[B, 1 + N, hidden_dim]`, class token first.

    The parts are exposed for methods that run the network piece by piece:
    `embed(images, token_mask=None)`, `blocks`, `final_norm` (see
    `TokenBackbone`).

    Args:
        image_shape: `(height, width, channels)`, fixed; divisible by
            `patch_size`.
        patch_size: int. Side of the square patches.
        hidden_dim: int. Token width.
        num_layers: int. Number of transformer blocks.
        num_heads: int. Attention heads per block.
        mlp_dim: int. MLP hidden width (4x `hidden_dim` in ViT/DeiT).
        dropout: float. Dropout on embeddings and MLP outputs.
        attention_dropout: float. Dropout on attention probabilities.
        drop_path_rate: float. Stochastic depth, increasing linearly with
            depth up to this rate (DeiT uses 0.1).
        layer_norm_epsilon: float. timm uses 1e-6.
        dtype: dtype or `keras.DTypePolicy` of the layers.

    Example:
    ```python
    backbone = keras_ssl.models.ViTBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    tokens = backbone(np.zeros((2, 32, 32, 3)))  # (2, 65, 192)
    ```
    """

    named_sizes = VIT_SIZES

    def __init__(
        self,
        image_shape=(224, 224, 3),
        patch_size=16,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        mlp_dim=3072,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        dtype=None,
        **kwargs,
    ):
        grid_size = check_patch_grid(image_shape, patch_size)
        # === Layers ===
        self.patch_embedding = ConvPatchEmbedding(
            hidden_dim, patch_size, dtype=dtype, name="patch_embedding"
        )
        self.token_embedding = TokenEmbedding(
            grid_size,
            hidden_dim,
            position_initializer=keras.initializers.TruncatedNormal(
                stddev=0.02
            ),
            class_token_initializer=keras.initializers.RandomNormal(
                stddev=1e-6
            ),
            mask_token_initializer=keras.initializers.TruncatedNormal(
                stddev=0.02
            ),
            dtype=dtype,
            name="token_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embedding_dropout"
        )
        self.blocks = [
            ViTBlock(
                num_heads,
                mlp_dim,
                dropout=dropout,
                attention_dropout=attention_dropout,
                drop_path_rate=drop_path_rate * i / max(num_layers - 1, 1),
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=dtype,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        # === Functional model ===
        self.build_token_model(image_shape, dtype=dtype, **kwargs)

        # === Config ===
        self.image_shape = tuple(image_shape)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
