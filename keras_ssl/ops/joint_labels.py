"""Joint labels: a class and a self-supervised label predicted together.

SLA (Lee et al. 2020) and SFE (Yang et al.) train a classifier over
`num_classes * num_transforms` joint labels. Layout used everywhere here:
joint label `y * num_transforms + j` for class `y` and transformation `j`,
so the logits `[..., N * K]` reshape to `[..., N, K]` with the class
first.
"""

import keras
from keras import ops


def joint_labels(labels, num_transforms):
    """`[B, K]` joint labels `y * K + j` for the K transformations."""
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    return labels * num_transforms + ops.arange(num_transforms, dtype="int32")


def conditional_logits(joint_logits, num_transforms):
    """The class logits of each map given its known transformation.

    Args:
        joint_logits: `[B, K, N * K]`: the joint logits of map `j` at row j.
        num_transforms: int. K.

    Returns:
        `[B, K, N]`: row j holds the N logits of column j of map j, whose
        softmax is `P(y | x_j, j)`.
    """
    shape = ops.shape(joint_logits)
    by_class = ops.reshape(
        joint_logits, (shape[0], num_transforms, -1, num_transforms)
    )
    diagonal = ops.eye(num_transforms, dtype=joint_logits.dtype)
    return ops.sum(by_class * diagonal[None, :, None, :], axis=-1)


def joint_cross_entropy(joint_logits, labels):
    """Mean over the batch and the K maps of the joint-label cross-entropy.

    Args:
        joint_logits: `[B, K, N * K]`: the joint logits of map `j` at row j.
        labels: int `[B]` class labels.
    """
    num_transforms = ops.shape(joint_logits)[1]
    targets = joint_labels(labels, num_transforms)
    return ops.mean(
        keras.losses.sparse_categorical_crossentropy(
            targets, ops.cast(joint_logits, "float32"), from_logits=True
        )
    )


def self_distillation_loss(teacher_logits, student_logits, temperature=1.0):
    """`T^2 * KL(softmax(teacher / T) || softmax(student / T))`, batch mean.

    The teacher (the aggregated joint prediction) is not trained by this
    term: its logits are detached.
    """
    teacher = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
    student = ops.cast(student_logits, "float32")
    teacher_log_p = ops.log_softmax(teacher / temperature, axis=-1)
    student_log_p = ops.log_softmax(student / temperature, axis=-1)
    kl = ops.sum(
        ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1
    )
    return temperature**2 * ops.mean(kl)
