"""Momentum-contrast pieces: InfoNCE logits, the negatives queue, the EMA.

He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation
Learning" (MoCo) and Chen et al. 2020, "Improved Baselines with Momentum
Contrastive Learning" (MoCo v2). Backend-agnostic `keras.ops`; the state
(queue, key encoder) lives in Keras variables that these functions
`assign`, so Keras collects the updates on JAX as it does BatchNorm's.
"""

from keras import ops


def l2_normalize(x, axis=-1, epsilon=1e-12):
    """`x / max(||x||, epsilon)` along `axis` (as `torch.nn.functional.normalize`)."""
    norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x / ops.maximum(norm, epsilon)


def info_nce_logits(queries, keys, negatives, temperature):
    """InfoNCE logits: column 0 the positive `q . k`, then `q . n` per negative.

    The loss is the cross-entropy of these logits against label 0 (the
    MoCo paper's Eq. 1).

    Args:
        queries: `[B, D]` l2-normalised query embeddings.
        keys: `[B, D]` l2-normalised key embeddings, row i the positive of
            query i.
        negatives: `[K, D]` l2-normalised negatives (the queue).
        temperature: float, the softmax temperature tau.

    Returns:
        `[B, 1 + K]` logits.
    """
    positive = ops.sum(queries * keys, axis=-1, keepdims=True)
    negative = ops.matmul(queries, ops.transpose(negatives))
    return ops.concatenate([positive, negative], axis=1) / temperature


def info_nce_loss(logits):
    """Mean cross-entropy of InfoNCE logits against label 0."""
    return ops.mean(ops.logsumexp(logits, axis=-1) - logits[:, 0])


def momentum_update(targets, sources, momentum):
    """EMA step `target <- momentum * target + (1 - momentum) * source`.

    Args:
        targets: list of Keras variables (the key encoder's).
        sources: matching list of variables or tensors (the query
            encoder's).
        momentum: float in [0, 1].
    """
    for target, source in zip(targets, sources):
        target.assign(momentum * target + (1.0 - momentum) * source)


def enqueue(queue, pointer, items):
    """Writes `items` into a ring buffer at `pointer`, then advances it.

    The rows `pointer, pointer + 1, ...` (modulo the queue length) take the
    items in order, so the oldest entries are replaced first (FIFO).

    Args:
        queue: `[K, D]` Keras variable.
        pointer: scalar int32 Keras variable, the next row to write.
        items: `[B, D]` tensor with `B <= K`.
    """
    size = queue.shape[0]
    count = ops.shape(items)[0]
    rows = ops.mod(pointer + ops.arange(count, dtype="int32"), size)
    # The queue stays float32 under mixed precision; the keys may not be.
    items = ops.cast(items, queue.dtype)
    queue.assign(ops.scatter_update(queue, rows[:, None], items))
    pointer.assign(ops.mod(pointer + count, size))
