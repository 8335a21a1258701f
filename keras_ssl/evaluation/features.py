"""Frozen-backbone features of a dataset, batched, with a progress bar."""

import keras
import numpy as np
from keras import ops


def pool_features(outputs, pooling):
    """Pools backbone outputs into `[B, D]` features.

    Args:
        outputs: a ResNet feature map `[B, H, W, C]` or transformer tokens
            `[B, 1 + N, D]` (class token first).
        pooling: "avg" (feature maps), "token" or "mean" (tokens).
    """
    if pooling == "avg":
        return ops.mean(outputs, axis=(1, 2))
    if pooling == "token":
        return outputs[:, 0]
    if pooling == "mean":
        return ops.mean(outputs[:, 1:], axis=1)
    raise ValueError(
        f"`pooling` must be 'avg', 'token' or 'mean'; received '{pooling}'."
    )


def default_pooling(backbone):
    """"token" for transformer backbones, "avg" for feature-map ones."""
    return "token" if hasattr(backbone, "blocks") else "avg"


def resolve_preprocessor(backbone, preprocessor):
    """The backbone family's preprocessor for "default", else as given."""
    if isinstance(preprocessor, str):
        if preprocessor != "default":
            raise ValueError(
                "`preprocessor` must be 'default', None or a preprocessor "
                f"layer; received '{preprocessor}'."
            )
        from keras_ssl.methods.supervised import default_preprocessor

        return default_preprocessor(backbone)
    return preprocessor


class FeatureExtractor(keras.Model):
    """Raw `[0, 255]` images -> preprocessor -> backbone -> pooled features.

    Args:
        backbone: a keras_ssl backbone.
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        **kwargs: base `keras.Model` arguments.
    """

    def __init__(self, backbone, preprocessor="default", pooling=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocessor = resolve_preprocessor(backbone, preprocessor)
        self.pooling = pooling or default_pooling(backbone)

    def call(self, images, training=None):
        if self.preprocessor is not None:
            images = self.preprocessor(images)
        outputs = self.backbone(images, training=training)
        return pool_features(outputs, self.pooling)


def _batches(data, batch_size):
    """Yields `(images, labels or None)` numpy batches from arrays or a
    dataset of `(images, labels)` / images."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(
        data[0], "shape"
    ):
        images, labels = data
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size], labels[start:start + batch_size]
        return
    if hasattr(data, "shape"):
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size], None
        return
    for element in data:
        if isinstance(element, (tuple, list)):
            yield np.asarray(element[0]), np.asarray(element[1])
        else:
            yield np.asarray(element), None


def extract_features(
    backbone,
    data,
    preprocessor="default",
    pooling=None,
    batch_size=256,
    verbose=1,
):
    """Pooled features of a frozen backbone over a whole dataset.

    Args:
        backbone: a keras_ssl backbone, or a `FeatureExtractor`.
        data: a dataset of `(images, labels)` batches (e.g. from
            `keras_ssl.data.load_dataset`), arrays `(images, labels)`, or
            an images array. Images are raw `[0, 255]`.
        preprocessor: "default" (the backbone family's), None or a
            preprocessor layer.
        pooling: None for the family default ("avg" for ResNets, "token"
            for transformers), or "avg", "token", "mean".
        batch_size: int. Batch size for arrays (datasets come batched).
        verbose: 0 or 1. Shows a progress bar.

    Returns:
        `(features, labels)`: float32 `[N, D]` and int `[N]` numpy arrays
        (`labels` is None for unlabelled data).

    Example:
    ```python
    data = keras_ssl.data.load_dataset("sample", split="test", batch_size=100)
    features, labels = keras_ssl.evaluation.extract_features(backbone, data)
    ```
    """
    extractor = backbone
    if not isinstance(backbone, FeatureExtractor):
        extractor = FeatureExtractor(backbone, preprocessor, pooling)
    cardinality = None
    if hasattr(data, "cardinality"):
        cardinality = int(data.cardinality())
        cardinality = cardinality if cardinality > 0 else None
    elif hasattr(data, "shape") or isinstance(data, (tuple, list)):
        count = len(data) if hasattr(data, "shape") else len(data[0])
        cardinality = -(-count // batch_size)
    progress = keras.utils.Progbar(cardinality, verbose=verbose, unit_name="batch")
    features, labels = [], []
    for step, (images, batch_labels) in enumerate(_batches(data, batch_size)):
        # `predict_on_batch` runs the compiled predict function (tf.function,
        # jax.jit) on every backend.
        features.append(np.asarray(extractor.predict_on_batch(images)))
        if batch_labels is not None:
            labels.append(batch_labels)
        progress.update(step + 1)
    features = np.concatenate(features).astype("float32")
    labels = np.concatenate(labels) if labels else None
    return features, labels
