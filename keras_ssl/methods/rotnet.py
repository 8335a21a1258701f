"""RotNet: self-supervision by predicting image rotations.

Gidaris et al. 2018, "Unsupervised Representation Learning by Predicting
Image Rotations". The baseline of Patch RotNet / Patch RelNet
(`keras_ssl.methods.patch_rotnet`), which subclass `RotationPretext`.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_ssl.methods.method_model import MethodModel
from keras_ssl.methods.supervised import default_preprocessor
from keras_ssl.ops import all_rotations
from keras_ssl.utils.validation import check_image_shape


class RotationPretext(MethodModel):
    """Base of the rotation pretext tasks: views, encoder, head, loss.

    A subclass says how it builds the views of an image (`generate_views`)
    and turns their encoded features into logits (`classify`); the pretext
    labels are fixed by the view order (`pretext_labels`), so no labels
    come from the data. `fit` takes unlabelled images, or `(images,
    labels)` batches whose labels are ignored, so a `load_dataset` dataset
    feeds it as is. Raw `[0, 255]` images go in; the views are built on the
    device, then the backbone's preprocessor runs on them.

    The trained encoder is `model.backbone`; evaluate it with
    `keras_ssl.evaluation` (k-NN, linear probe, fine-tune) or save it with
    `model.backbone.save_to_preset(folder)`.

    Args:
        backbone: a keras_ssl backbone with square inputs.
        preprocessor: "default" (the family's preprocessor), None (inputs
            already preprocessed) or a preprocessor layer.
        pooling: None for the family default ("avg" over a ResNet's feature
            map, "token" for transformers), or "avg", "token", "mean".
        **kwargs: base `keras.Model` arguments.
    """

    num_pretext_classes = None

    def __init__(self, backbone, preprocessor="default", pooling=None, **kwargs):
        super().__init__(**kwargs)
        image_shape = tuple(getattr(backbone, "image_shape", (None,) * 3))
        self.is_token_backbone = hasattr(backbone, "blocks")
        default_pooling = "token" if self.is_token_backbone else "avg"
        pooling = default_pooling if pooling is None else pooling
        allowed = ("token", "mean") if self.is_token_backbone else ("avg",)
        if pooling not in allowed:
            raise ValueError(
                f"`pooling` must be one of {allowed} for a "
                f"{type(backbone).__name__}; received '{pooling}'."
            )
        if image_shape[0] is not None and image_shape[0] != image_shape[1]:
            raise ValueError(
                "Rotation pretext tasks need a backbone with square inputs "
                f"(the rotations must share one shape); the backbone's "
                f"image_shape is {image_shape}."
            )
        if isinstance(preprocessor, str):
            if preprocessor != "default":
                raise ValueError(
                    "`preprocessor` must be 'default', None or a "
                    f"preprocessor layer; received '{preprocessor}'."
                )
            preprocessor = default_preprocessor(backbone)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.pooling = pooling

    def generate_views(self, images):
        """The pretext views of a batch: `[B, V, S, S, C]`."""
        raise NotImplementedError

    def classify(self, features):
        """Pretext logits `[B, L, num_pretext_classes]` from view features
        `[B, V, D]`."""
        raise NotImplementedError

    def pretext_labels(self):
        """The pretext label of each of the `L` logit rows of an image."""
        return ops.arange(self.num_pretext_classes, dtype="int32")

    def encode(self, images, training=None):
        """Pooled backbone features `[N, D]` of preprocessed images."""
        outputs = self.backbone(images, training=training)
        if self.pooling == "avg":
            return ops.mean(outputs, axis=(1, 2))
        if self.pooling == "token":
            return outputs[:, 0]
        return ops.mean(outputs[:, 1:], axis=1)

    def call(self, images, training=None):
        check_image_shape(images.shape, 3)
        views = self.generate_views(images)
        num_views = views.shape[1]
        flat = ops.reshape(views, (-1,) + tuple(views.shape[2:]))
        if self.preprocessor is not None:
            flat = self.preprocessor(flat)
        features = self.encode(flat, training=training)
        features = ops.reshape(features, (-1, num_views, features.shape[-1]))
        return self.classify(features)

    def _flat_targets(self, y_pred):
        # [B, L, classes] -> per-row labels, tiled over the batch.
        labels = ops.broadcast_to(self.pretext_labels()[None], ops.shape(y_pred)[:2])
        return (
            ops.reshape(labels, (-1,)),
            ops.reshape(y_pred, (-1, y_pred.shape[-1])),
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        # Labels from the data (if any) are ignored: the targets are the
        # transformations, the same for every image.
        labels, logits = self._flat_targets(y_pred)
        return super().compute_loss(x, labels, logits, None, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, logits = self._flat_targets(y_pred)
        return super().compute_metrics(x, labels, logits)

    def fit(self, x=None, y=None, **kwargs):
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras warns if asked to.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, **kwargs)

    def compile(self, optimizer="adamw", loss="auto", metrics="auto", **kwargs):
        """Compiles with cross-entropy on the pretext logits.

        Args:
            optimizer: optimizer or its name.
            loss: "auto" for sparse categorical cross-entropy on logits,
                averaged over all the views (the paper's Eq. 1).
            metrics: "auto" for the pretext accuracy.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "preprocessor": keras.saving.serialize_keras_object(
                    self.preprocessor
                ),
                "pooling": self.pooling,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(
                config["preprocessor"]
            )
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_ssl")
class RotNet(RotationPretext):
    """RotNet: 4-way classification of the image's rotation.

    Gidaris et al. 2018, "Unsupervised Representation Learning by Predicting
    Image Rotations". Each image gives its 4 rotations r_k (0, 90, 180, 270
    degrees counter-clockwise); the encoder feature of each -> Dense(4)
    predicts k. The loss is the cross-entropy averaged over the 4 views.
    `fit` ignores labels (see `RotationPretext`).

    Args:
        backbone: a keras_ssl backbone with square inputs.
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8)
    model = keras_ssl.methods.RotNet(backbone)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(keras_ssl.data.load_dataset("sample", batch_size=64), epochs=5)
    ```
    """

    num_pretext_classes = 4

    def __init__(self, backbone, preprocessor="default", pooling=None, **kwargs):
        super().__init__(backbone, preprocessor, pooling, **kwargs)
        self.head = keras.layers.Dense(4, name="rotation_head")

    def generate_views(self, images):
        """The 4 rotations `[B, 4, S, S, C]`; view k is rotated k x 90."""
        return all_rotations(images)

    def classify(self, features):
        return self.head(features)
