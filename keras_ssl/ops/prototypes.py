"""Prototype pieces of SegAS: hierarchical k-means, calibrated prototype
distributions (ProCR), the confidence rho and the diversity loss.

Bai et al. 2024, "Attention Shifting to Pursue Optimal Representation for
Adapting Multi-granularity Tasks" (SegAS), section 3. The k-means runs on
the host (numpy, faiss); the rest is backend-agnostic `keras.ops`.
"""

import numpy as np
from keras import ops

NEGATIVE_RULES = ("sample_mean", "batch_max_mean", None)


def kmeans_plusplus(features, num_clusters, seed=0, max_points=5):
    """k-means++ seeding (D^2 sampling, one candidate per step) of at most
    `max_points * num_clusters` rows drawn at random.

    faiss seeds with random rows, which on separable data often puts two
    seeds in one cluster and none in another, and Lloyd steps do not
    recover; k-means++ spreads the seeds. The subsample keeps it to
    seconds for 1,000 clusters.
    """
    rng = np.random.default_rng(seed)
    if len(features) > max_points * num_clusters:
        features = features[rng.choice(len(features), max_points * num_clusters, replace=False)]
    squared = np.einsum("nd,nd->n", features, features)
    centroids = [features[rng.integers(len(features))]]
    distance = np.maximum(squared - 2 * features @ centroids[0] + centroids[0] @ centroids[0], 0)
    for _ in range(1, num_clusters):
        cumulative = np.cumsum(distance)
        index = min(
            int(np.searchsorted(cumulative, rng.random() * cumulative[-1])),
            len(features) - 1,
        )
        centroids.append(features[index])
        new = np.maximum(squared - 2 * features @ features[index] + squared[index], 0)
        distance = np.minimum(distance, new)
    return np.stack(centroids).astype("float32")


def kmeans(features, num_clusters, seed=0, max_iter=20):
    """k-means of the rows of `features`: k-means++ seeds, then faiss's
    Lloyd steps on the CPU.

    One initialisation and at most `max_iter` Lloyd steps: the clustering
    is redone every epoch on drifting embeddings, so a single, short run is
    enough (PCL and HCSC also run faiss for 20 iterations). faiss rather
    than scikit-learn's `KMeans`: on 50,000 x 128 embeddings into 1,000
    clusters it is much faster here (docs/BENCHMARKS.md has the timings).

    Args:
        features: `[N, D]` float array.
        num_clusters: int, at most N.
        seed: int, seeds the initial centroids.
        max_iter: int, the Lloyd steps.

    Returns:
        `(centroids, assignments)`: float32 `[num_clusters, D]` and int32
        `[N]`, each row's nearest centroid.
    """
    import faiss

    features = np.ascontiguousarray(features, "float32")
    if num_clusters > len(features):
        raise ValueError(
            f"Cannot make {num_clusters} clusters of {len(features)} "
            "samples: use fewer prototypes than samples."
        )
    model = faiss.Kmeans(
        features.shape[1], num_clusters, niter=max_iter, seed=seed,
        # Cluster every point (no subsampling) and do not warn about few
        # points per centroid (the upper levels cluster few centroids).
        max_points_per_centroid=len(features), min_points_per_centroid=1,
    )
    model.train(features, init_centroids=kmeans_plusplus(features, num_clusters, seed))
    _, assignments = model.index.search(features, 1)
    return model.centroids.astype("float32"), assignments[:, 0].astype("int32")


def hierarchical_kmeans(features, num_prototypes, seed=0, max_iter=20):
    """Bottom-up hierarchical k-means (SegAS section 3.1, as HCSC).

    Level 1 clusters the (l2-normalised) features into `num_prototypes[0]`
    clusters; level l + 1 clusters the level-l centroids into
    `num_prototypes[l]`. Prototypes are the l2-normalised centroids.

    Args:
        features: `[N, D]` embeddings.
        num_prototypes: decreasing ints `(M_1, ..., M_L)`, `M_1 <= N`.
        seed: int.
        max_iter: int, Lloyd steps per level.

    Returns:
        `(prototypes, parents, assignments)`: per level, prototypes
        `[M_l, D]`; parents `[M_l]` int32, the level-(l + 1) cluster of each
        level-l prototype (the last level maps to itself); assignments of
        the N features at level 1, `[N]` int32.
    """
    points = _normalize(np.asarray(features, "float32"))
    prototypes, parents, assignments = [], [], None
    for level, count in enumerate(num_prototypes):
        centroids, labels = kmeans(points, count, seed + level, max_iter)
        if level == 0:
            assignments = labels
        else:
            parents.append(labels)
        points = _normalize(centroids)
        prototypes.append(points)
    parents.append(np.arange(num_prototypes[-1], dtype="int32"))
    return prototypes, parents, assignments


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def hierarchy_labels(level_one, parents):
    """The cluster of each sample at every level from its level-1 cluster.

    Args:
        level_one: `[B]` int level-1 clusters.
        parents: list of `[M_l]` int parent tables (`hierarchical_kmeans`).

    Returns:
        List of `[B]` int tensors, one per level.
    """
    labels = [level_one]
    for table in parents[:-1]:
        labels.append(ops.take(table, labels[-1], axis=0))
    return labels


def suppress_negatives(similarity, rule="sample_mean"):
    """Sets the similarities of "easy negative" prototypes to -1 (Eq. 6).

    The paper's threshold mu_s is written as a mean of maxima over a set of
    size M while naming the batch size, so it is ambiguous:
    `"sample_mean"` (our default) thresholds each sample at its own mean
    similarity to the M prototypes; `"batch_max_mean"` thresholds every
    sample at the batch mean of the per-sample maximum similarity; None
    keeps all similarities.

    Args:
        similarity: `[B, M]` cosine similarities in [-1, 1].
        rule: "sample_mean", "batch_max_mean" or None.
    """
    if rule is None:
        return similarity
    if rule == "sample_mean":
        threshold = ops.mean(similarity, axis=-1, keepdims=True)
    elif rule == "batch_max_mean":
        threshold = ops.mean(ops.max(similarity, axis=-1))
    else:
        raise ValueError(
            "`negative_rule` must be 'sample_mean', 'batch_max_mean' or "
            f"None; received {rule!r}."
        )
    return ops.where(similarity < threshold, -ops.ones_like(similarity), similarity)


def confidence(probabilities):
    """rho = max(p) * (1 - H(p) / log M) (Eqs. 8 and 11), `[B, M]` -> `[B]`."""
    probabilities = ops.convert_to_tensor(probabilities)
    num = probabilities.shape[-1]
    entropy = -ops.sum(
        probabilities * ops.log(ops.maximum(probabilities, 1e-12)), axis=-1
    )
    return ops.max(probabilities, axis=-1) * (1.0 - entropy / np.log(num))


def calibrated_target(similarity, labels, temperature, threshold, rule="sample_mean"):
    """The calibrated target distribution of the key view (Eqs. 6-9).

    `p = softmax(S_re / temperature)`, rho = `confidence(p)`; the target is
    the one-hot cluster label y where rho < threshold, else
    `rho * p + (1 - rho) * y`.

    Args:
        similarity: `[B, M]` cosine similarities of z^k to the prototypes.
        labels: `[B]` int cluster of each sample at this level.
        temperature: float, tau_k.
        threshold: float, the confidence threshold tau of Eq. 9.
        rule: the `suppress_negatives` rule.

    Returns:
        `[B, M]` target probabilities.
    """
    similarity = ops.convert_to_tensor(similarity)
    probabilities = ops.softmax(suppress_negatives(similarity, rule) / temperature)
    onehot = ops.one_hot(labels, similarity.shape[-1], dtype=probabilities.dtype)
    rho = confidence(probabilities)[:, None]
    mixed = rho * probabilities + (1.0 - rho) * onehot
    return ops.where(rho < threshold, onehot, mixed)


def kl_divergence(target, log_probabilities):
    """Mean over the batch of `KL(target || q)`, `q = exp(log_probabilities)`
    (`0 log 0 = 0`)."""
    target = ops.convert_to_tensor(target)
    log_target = ops.log(ops.maximum(target, 1e-12))
    return ops.mean(ops.sum(target * (log_target - log_probabilities), axis=-1))


def diversity_loss(first, second, first_embeddings, second_embeddings, margin):
    """SegAS's diversity loss (Eq. 12), averaged over the batch.

    `max(0, p2(c) - p1(c) + margin) + z1 . z2`, c = argmax p1: the
    unfiltered view must stay closer than the filtered one to its most
    relevant prototype, and the two embeddings must not overlap. With
    several levels the hinge is averaged over them.

    Args:
        first: list (one per level) of `[B, M_l]` probabilities p^{q1}.
        second: matching list of p^{q2}.
        first_embeddings: `[B, D]` l2-normalised z^{q1}.
        second_embeddings: `[B, D]` l2-normalised z^{q2}.
        margin: float, m.
    """
    first_embeddings = ops.convert_to_tensor(first_embeddings)
    second_embeddings = ops.convert_to_tensor(second_embeddings)
    hinges = []
    for p1, p2 in zip(first, second):
        p1, p2 = ops.convert_to_tensor(p1), ops.convert_to_tensor(p2)
        onehot = ops.one_hot(ops.argmax(p1, axis=-1), p1.shape[-1], dtype=p1.dtype)
        gap = ops.sum((p2 - p1) * onehot, axis=-1)
        hinges.append(ops.mean(ops.relu(gap + margin)))
    overlap = ops.mean(ops.sum(first_embeddings * second_embeddings, axis=-1))
    return ops.mean(ops.stack(hinges)) + overlap
