"""What a loss or a state update must know about the replicas it runs on.

Under a `tf.distribute` strategy each replica computes the loss on its own
shard and the gradients are summed across replicas, so a per-replica mean
must be divided by the number of replicas for the sum to be the gradient of
the global-batch mean (Keras' own losses do this; a `compute_loss` override
that adds its own terms must too). JAX's `keras.distribution` compiles one
program over the global batch, so there nothing needs scaling or gathering.
"""

import keras


def _replica_context():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas_in_sync():
    """Replicas the current step runs on (1 outside a TF strategy)."""
    context = _replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def scale_loss_for_replicas(loss):
    """`loss / num_replicas`: a per-replica mean whose summed gradients are
    the global-batch mean's. Returns `loss` unchanged on one replica."""
    replicas = num_replicas_in_sync()
    if replicas == 1:
        return loss
    return loss / keras.ops.cast(replicas, loss.dtype)


def gather_replicas(x):
    """Concatenates `x` over the replicas, in replica order.

    MoCo and SegAS enqueue the keys of the whole (global) batch, so that
    every replica's queue holds the same negatives. Returns `x` on one
    device and under JAX's `DataParallel` (whose step sees the global batch).
    """
    context = _replica_context()
    if context is None:
        return x
    return context.all_gather(x, axis=0)


def draw_for_replica(draw, batch_size, axis=0):
    """Per-example random numbers that do not depend on the replica count.

    `draw(size)` returns random numbers for `size` examples along `axis`.
    Under a `tf.distribute` strategy every replica shares the seed, so a
    plain draw would give each replica's examples the same numbers; here
    every replica draws for the global batch and keeps its own rows, so the
    run draws exactly what a one-device run of the same global batch draws.
    (On an uneven last batch the replicas' rows may overlap by a few.)

    Args:
        draw: callable, `size -> tensor` with `size` rows along `axis`.
        batch_size: this replica's number of examples (may be a tensor).
        axis: the example axis of `draw`'s result.
    """
    context = _replica_context()
    if context is None:
        return draw(batch_size)
    import tensorflow as tf

    rows = draw(batch_size * context.num_replicas_in_sync)
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.cast(
        batch_size, tf.int32
    )
    indices = start + tf.range(batch_size, dtype=tf.int32)
    return tf.gather(rows, indices, axis=axis)
