"""Exact evaluation with every batch full, on one device or many processes.

Keras' `DataParallel` gives each JAX process its share of every global
batch. A short final batch is shared unevenly, so the processes run
different numbers of steps: one waits forever in a collective while the
other reports the accuracy of its own share. Padding the last batch with
zero-weight copies of an example keeps every batch full, and Keras'
weighted metrics leave the padding out of the figures.
"""

import keras
import tensorflow as tf


def pad_to_full_batches(dataset, num_examples, batch_size):
    """`(images, labels)` batches -> `(images, labels, weights)` batches of
    exactly `batch_size`, the last one padded with weight-0 copies of the
    first example.

    Args:
        dataset: a batched `tf.data.Dataset` of `(images, labels)`.
        num_examples: int. Examples in `dataset` (as `load_dataset`'s info
            reports).
        batch_size: int. The global batch.
    """
    if num_examples < 1:
        raise ValueError(f"Nothing to evaluate: `num_examples`={num_examples}.")
    examples = dataset.unbatch().map(
        lambda images, labels: (images, labels, tf.constant(1.0))
    )
    padding = (-num_examples) % batch_size
    filler = examples.take(1).map(
        lambda images, labels, _: (images, labels, tf.constant(0.0))
    ).repeat(padding)
    batches = examples.concatenate(filler).batch(batch_size, drop_remainder=True)
    # `unbatch` loses the count, and Keras warns when a dataset of unknown
    # length runs out.
    return batches.apply(
        tf.data.experimental.assert_cardinality(-(-num_examples // batch_size))
    )


def evaluate_top1(model, dataset, num_examples, batch_size, verbose=0):
    """Top-1 accuracy and mean cross-entropy of a classifier over exactly
    `num_examples` examples, the same on every process.

    Recompiles `model` with weighted metrics (its optimizer is kept), so
    call it after training.

    Args:
        model: a model whose outputs are class logits (a keras-hub
            `ImageClassifier` or a keras_ssl method).
        dataset: a batched `tf.data.Dataset` of `(images, labels)`.
        num_examples: int. Examples in `dataset`.
        batch_size: int. The global batch.
        verbose: `evaluate`'s verbosity.

    Returns:
        `{"accuracy": float, "loss": float}`.
    """
    optimizer = getattr(model, "optimizer", None) or "adam"
    model.compile(
        optimizer=optimizer,
        metrics=[],
        weighted_metrics=[
            keras.metrics.SparseCategoricalAccuracy("accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(
                from_logits=True, name="cross_entropy"
            ),
        ],
    )
    results = model.evaluate(
        pad_to_full_batches(dataset, num_examples, batch_size),
        return_dict=True, verbose=verbose,
    )
    # Keras' "loss" divides by the padded count; the weighted metric does not.
    return {
        "accuracy": float(results["accuracy"]),
        "loss": float(results["cross_entropy"]),
    }
