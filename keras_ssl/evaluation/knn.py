"""Weighted k-nearest-neighbour classification of frozen features."""

import numpy as np


def knn_classify(
    train_features,
    train_labels,
    test_features,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=512,
):
    """Weighted k-NN of Wu et al. 2018, as used by DINO and MST.

    Features are L2-normalised; each test feature takes its `k` most
    cosine-similar train features, each voting for its class with weight
    `exp(similarity / temperature)`; the class with the largest total wins.
    Runs in test batches of `batch_size` (one matmul and one
    `argpartition` each), so 50k train x 10k test features take seconds.

    Args:
        train_features: `[N, D]` array.
        train_labels: `[N]` int class ids.
        test_features: `[M, D]` array.
        k: int. Neighbours per test feature (10, 20, 100 or 200 in the
            literature). Defaults to 20.
        temperature: float > 0. Defaults to 0.07 (DINO).
        num_classes: int or None (then `max(train_labels) + 1`).
        batch_size: int. Test features per batch.

    Returns:
        `[M]` int64 predicted class ids.

    Example:
    ```python
    predictions = knn_classify(train_features, train_labels, test_features)
    accuracy = np.mean(predictions == test_labels)
    ```
    """
    train_features = np.asarray(train_features, dtype="float32")
    test_features = np.asarray(test_features, dtype="float32")
    train_labels = np.asarray(train_labels).astype("int64")
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError(
            "`train_features` and `test_features` must be 2D [count, dim]; "
            f"received shapes {train_features.shape} and {test_features.shape}."
        )
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"Train features have {train_features.shape[1]} dims but test "
            f"features have {test_features.shape[1]}."
        )
    if train_labels.shape != (len(train_features),):
        raise ValueError(
            f"`train_labels` must have shape ({len(train_features)},); "
            f"received {train_labels.shape}."
        )
    if not isinstance(k, int) or not 1 <= k <= len(train_features):
        raise ValueError(
            f"`k` must be an int in [1, {len(train_features)}] (the number "
            f"of train features); received {k}."
        )
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0; received {temperature}.")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    train_features = _normalise(train_features)
    test_features = _normalise(test_features)
    predictions = np.empty(len(test_features), dtype="int64")
    rows = np.arange(min(batch_size, len(test_features)))[:, None]
    for start in range(0, len(test_features), batch_size):
        similarity = test_features[start:start + batch_size] @ train_features.T
        batch_rows = rows[: len(similarity)]
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(similarity[batch_rows, neighbours] / temperature)
        votes = np.zeros((len(similarity), num_classes), dtype="float64")
        np.add.at(votes, (batch_rows, train_labels[neighbours]), weights)
        predictions[start:start + batch_size] = votes.argmax(axis=1)
    return predictions


def _normalise(features):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)
