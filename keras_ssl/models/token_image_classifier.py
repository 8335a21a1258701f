import keras
from keras import ops
from keras_hub.models import ImageClassifier
from keras_hub.models import Task

from keras_ssl.hub.preset_mixin import PresetMixin


class TokenImageClassifier(PresetMixin, ImageClassifier):
    """Base of the CRATE and ViT classifiers: pool tokens, then Linear.

    keras-hub's `ImageClassifier` pools a 4-D feature map; a token backbone
    needs its own head, as keras-hub's ViT classifier builds.

    Args:
        backbone: a token backbone (`CRATEBackbone`, `ViTBackbone`).
        num_classes: int. Number of classes.
        preprocessor: None or an `ImageClassifierPreprocessor` (resizes and
            normalises raw `[0, 255]` images).
        pooling: "token" (class token, the default of ViT and CRATE) or
            "mean" (mean of the patch tokens, as timm's "avg").
        activation: None for logits, or e.g. "softmax".
        dropout: float. Dropout before the head.
        head_dtype: dtype of the head (default: the backbone's).
    """

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        pooling="token",
        activation=None,
        dropout=0.0,
        head_dtype=None,
        **kwargs,
    ):
        if pooling not in ("token", "mean"):
            raise ValueError(
                f"`pooling` must be 'token' or 'mean'; received '{pooling}'."
            )
        head_dtype = head_dtype or backbone.dtype_policy
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.output_dropout = keras.layers.Dropout(
            dropout, dtype=head_dtype, name="output_dropout"
        )
        self.output_dense = keras.layers.Dense(
            num_classes,
            activation=activation,
            dtype=head_dtype,
            name="predictions",
        )
        # === Functional model ===
        self.pooling = pooling
        inputs = backbone.input
        outputs = self.head(self.pool(backbone(inputs)))
        # Skip ImageClassifier's functional model, which pools 4-D maps.
        Task.__init__(self, inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.activation = activation
        self.dropout = dropout

    def pool(self, tokens):
        """Pools backbone output tokens `[B, 1 + N, D]` into `[B, D]`."""
        if self.pooling == "token":
            return tokens[:, 0]
        return ops.mean(tokens[:, 1:], axis=1)

    def head(self, features, training=None):
        """Logits from pooled features, as the classifier computes them."""
        return self.output_dense(self.output_dropout(features, training=training))

    def get_config(self):
        config = Task.get_config(self)
        config.update(
            {
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config
