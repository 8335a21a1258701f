"""MoCo v2: momentum contrast with an MLP head and stronger augmentation.

Chen, Fan, Girshick and He 2020, "Improved Baselines with Momentum
Contrastive Learning" (on He et al. 2020, "Momentum Contrast for
Unsupervised Visual Representation Learning"). The baseline of SegAS
(`keras_ssl.methods.segas`).
"""

import keras
import tensorflow as tf
from keras import ops

from keras_ssl.distribute.replicas import gather_replicas
from keras_ssl.methods.method_model import MethodModel
from keras_ssl.methods.supervised import default_preprocessor
from keras_ssl.ops.contrastive import enqueue
from keras_ssl.ops.contrastive import info_nce_logits
from keras_ssl.ops.contrastive import l2_normalize
from keras_ssl.ops.contrastive import momentum_update
from keras_ssl.utils.validation import check_image_shape


def projection_head(hidden_dim, output_dim, name):
    """MoCo v2's 2-layer MLP head: Dense(hidden) -> ReLU -> Dense(output)."""
    return keras.Sequential(
        [
            keras.layers.Dense(hidden_dim, activation="relu"),
            keras.layers.Dense(output_dim),
        ],
        name=name,
    )


@keras.saving.register_keras_serializable(package="keras_ssl")
class MoCoV2(MethodModel):
    """MoCo v2: contrast a query view against its key and a queue of keys.

    Chen et al. 2020, "Improved Baselines with Momentum Contrastive
    Learning". The query encoder is the backbone, pooled, with a 2-layer
    MLP head (hidden 2048, output 128); the key encoder is a copy of both
    whose weights follow the query's by EMA (`m = 0.999`), updated before
    the keys are computed, as in the official code. Embeddings are
    l2-normalised; the loss is InfoNCE (cross-entropy against the positive,
    column 0) over the key and a FIFO queue of past keys, temperature 0.2.
    The keys of each batch then replace the oldest queue entries. The
    `accuracy` metric is how often the positive has the highest logit.

    `fit` takes batches of two views `(queries, keys)`, each `[B, H, W, 3]`
    raw `[0, 255]` images, with or without labels (ignored): build them with
    `load_dataset(..., augment=keras_ssl.data.MoCoV2Augment(size),
    num_views=2)`. Train as the paper: SGD, momentum 0.9, weight decay 1e-4,
    cosine schedule (`keras-ssl pretrain --method moco_v2` does).

    The queue and the key encoder are non-trainable variables updated in
    `call`, so Keras carries them on every backend. The key encoder's
    BatchNorm uses batch statistics, as in the official code. Our reading
    where we differ: the official code shuffles BatchNorm across GPUs
    ("shuffle BN"); here BatchNorm runs per replica, unshuffled. Under a
    `tf.distribute` strategy the keys of all replicas are gathered before
    they are queued, so every replica holds the same queue (the official
    `concat_all_gather`).

    Args:
        backbone: a keras_ssl backbone (a ResNet's feature map is averaged;
            a transformer's class token is used).
        projection_dim: int, the embedding size. Defaults to 128.
        hidden_dim: int, the MLP head's hidden width. Defaults to 2048.
        queue_size: int, the number of negatives K (65536 for ImageNet;
            size it to the dataset, e.g. 4096 for CIFAR-10). At least the
            global batch size.
        temperature: float, tau. Defaults to 0.2.
        momentum: float in [0, 1), the key encoder's EMA momentum m.
            Defaults to 0.999.
        preprocessor: "default" (the family's preprocessor), None (inputs
            already preprocessed) or a preprocessor layer.
        seed: int or None. Seeds the initial queue (and SegAS's draws).
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(depth=20, image_shape=(32, 32, 3))
    model = keras_ssl.methods.MoCoV2(backbone, queue_size=4096)
    model.compile(optimizer=keras.optimizers.SGD(0.06, momentum=0.9, weight_decay=1e-4))
    data = keras_ssl.data.load_dataset(
        "sample", batch_size=64, num_views=2,
        augment=keras_ssl.data.MoCoV2Augment(32, blur_probability=0.0),
    )
    model.fit(data, epochs=5)
    features = model.backbone.predict(images)  # the pretrained encoder
    ```
    """

    def __init__(
        self,
        backbone,
        projection_dim=128,
        hidden_dim=2048,
        queue_size=65536,
        temperature=0.2,
        momentum=0.999,
        preprocessor="default",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("projection_dim", projection_dim),
            ("hidden_dim", hidden_dim),
            ("queue_size", queue_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive int; received {value!r}."
                )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                "`momentum` is the key encoder's EMA momentum and must be in "
                f"[0, 1), e.g. 0.999; received {momentum}."
            )
        if temperature <= 0:
            raise ValueError(
                f"`temperature` must be positive, e.g. 0.2; received {temperature}."
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
        self.projection_dim = projection_dim
        self.hidden_dim = hidden_dim
        self.queue_size = queue_size
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.is_token_backbone = hasattr(backbone, "blocks")
        self.projector = projection_head(hidden_dim, projection_dim, "projector")
        key_config = backbone.get_config()
        key_config["name"] = f"key_{backbone.name}"
        self.key_backbone = backbone.__class__.from_config(key_config)
        self.key_projector = projection_head(hidden_dim, projection_dim, "key_projector")
        # All state is made here, eagerly: a `build` inside Keras' symbolic
        # build would record the key copy in a stateless scope and drop it.
        feature_dim = backbone.outputs[0].shape[-1]
        for projector in (self.projector, self.key_projector):
            projector.build((None, feature_dim))
        # The key encoder starts as a copy: fresh buffers, not aliases (JAX
        # refuses to donate one buffer twice).
        for key, query in zip(self.key_weights(), self.query_weights()):
            key.assign(ops.convert_to_numpy(query))
        # Excluded from the optimizer, but the layers stay trainable so that
        # the key encoder's BatchNorm uses batch statistics.
        for variable in self.key_backbone.weights + self.key_projector.weights:
            variable.trainable = False
        queue_seed = 0 if seed is None else seed
        self.queue = self.add_weight(
            shape=(queue_size, projection_dim),
            initializer=lambda shape, dtype=None: l2_normalize(
                keras.random.normal(shape, dtype=dtype, seed=queue_seed)
            ),
            trainable=False,
            aggregation="only_first_replica",
            name="queue",
        )
        self.queue_pointer = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False,
            aggregation="only_first_replica", name="queue_pointer",
        )

    def query_weights(self):
        """The query encoder's trainable weights, in key-encoder order."""
        pairs = zip(
            self.backbone.weights + self.projector.weights,
            self.key_backbone.weights + self.key_projector.weights,
        )
        return [query for query, _ in pairs if query.trainable]

    def key_weights(self):
        """The key encoder's weights that follow `query_weights` by EMA."""
        pairs = zip(
            self.backbone.weights + self.projector.weights,
            self.key_backbone.weights + self.key_projector.weights,
        )
        return [key for query, key in pairs if query.trainable]

    def split_views(self, inputs):
        """The two view batches of `inputs`, checked."""
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            raise ValueError(
                f"{type(self).__name__} takes two augmented views per image, "
                "`(view_1, view_2)`, each [batch, height, width, 3]; build "
                "them with `keras_ssl.data.load_dataset(..., augment="
                "keras_ssl.data.MoCoV2Augment(size), num_views=2)` (SegAS: "
                "`augment=keras_ssl.data.SegASViews(size)`). Received "
                f"{type(inputs).__name__}."
            )
        channels = self.backbone.image_shape[-1]
        for view in inputs:
            check_image_shape(view.shape, channels)
        return inputs

    def pool(self, outputs):
        if self.is_token_backbone:
            return outputs[:, 0]
        return ops.mean(outputs, axis=(1, 2))

    def preprocess(self, images):
        return images if self.preprocessor is None else self.preprocessor(images)

    def embed(self, feature_map, projector):
        """l2-normalised head embedding of a backbone output."""
        return l2_normalize(projector(self.pool(feature_map)))

    def encode_keys(self, images, training=None):
        """Key embeddings `[B, D]` (no gradient); with `training`, the EMA
        step runs first."""
        if training:
            momentum_update(self.key_weights(), self.query_weights(), self.momentum)
        outputs = self.key_backbone(images, training=training)
        return ops.stop_gradient(self.embed(outputs, self.key_projector))

    def contrast(self, queries, keys, training=None):
        """InfoNCE logits against the queue; with `training`, the keys of the
        (global) batch are queued afterwards."""
        # A copy: the enqueue below writes the queue in place (PyTorch), and
        # the backward pass still needs the negatives read here.
        negatives = ops.stop_gradient(ops.copy(self.queue.value))
        logits = info_nce_logits(queries, keys, negatives, self.temperature)
        if training:
            enqueue(self.queue, self.queue_pointer, self.gather_keys(keys))
        return logits

    def gather_keys(self, keys):
        keys = gather_replicas(keys)
        if keys.shape[0] is not None and keys.shape[0] > self.queue_size:
            raise ValueError(
                f"`queue_size` ({self.queue_size}) must be at least the "
                f"global batch size ({keys.shape[0]})."
            )
        return keys

    def call(self, inputs, training=None):
        query_view, key_view = self.split_views(inputs)
        outputs = self.backbone(self.preprocess(query_view), training=training)
        queries = self.embed(outputs, self.projector)
        keys = self.encode_keys(self.preprocess(key_view), training=training)
        return self.contrast(queries, keys, training=training)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        # Labels from the data (if any) are ignored: the positive is column 0.
        labels = ops.zeros((ops.shape(y_pred)[0],), dtype="int32")
        return super().compute_loss(x, labels, y_pred, None, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels = ops.zeros((ops.shape(y_pred)[0],), dtype="int32")
        return super().compute_metrics(x, labels, y_pred)

    def fit(self, x=None, y=None, **kwargs):
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras warns if asked to.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, **kwargs)

    def compile(self, optimizer="sgd", loss="auto", metrics="auto", **kwargs):
        """Compiles with InfoNCE (cross-entropy against column 0).

        Args:
            optimizer: optimizer or its name (the paper: SGD, momentum 0.9,
                weight decay 1e-4, cosine schedule).
            loss: "auto" for InfoNCE.
            metrics: "auto" for the contrastive top-1 accuracy.
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
                "projection_dim": self.projection_dim,
                "hidden_dim": self.hidden_dim,
                "queue_size": self.queue_size,
                "temperature": self.temperature,
                "momentum": self.momentum,
                "preprocessor": keras.saving.serialize_keras_object(
                    self.preprocessor
                ),
                "seed": self.seed,
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
