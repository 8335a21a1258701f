"""Linear probe and fine-tuning of a pretrained backbone."""

import dataclasses

import keras
import numpy as np

from keras_ssl.evaluation.features import FeatureExtractor


@dataclasses.dataclass
class ProbeResult:
    """Outcome of `linear_probe` or `fine_tune`.

    Attributes:
        accuracy: float. Top-1 accuracy on the test data.
        model: the trained Keras model (the head for `linear_probe`, raw
            images -> logits for `fine_tune`).
        history: the `History` of `fit`.
    """

    accuracy: float
    model: keras.Model
    history: keras.callbacks.History


def classification_head(num_classes, head="linear", hidden_units=512):
    """A linear head, or the paper's two fully connected layers.

    Args:
        num_classes: int.
        head: "linear" or "two_fc" (Dense(hidden_units, relu) -> Dense).
        hidden_units: int. Width of the hidden layer of "two_fc".
    """
    if head == "linear":
        return keras.Sequential([keras.layers.Dense(num_classes)], name="head")
    if head == "two_fc":
        return keras.Sequential(
            [
                keras.layers.Dense(hidden_units, activation="relu"),
                keras.layers.Dense(num_classes),
            ],
            name="head",
        )
    raise ValueError(f"`head` must be 'linear' or 'two_fc'; received '{head}'.")


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
    )


def _num_classes(num_classes, *labels):
    if num_classes is None:
        return int(max(np.max(part) for part in labels)) + 1
    return num_classes


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    num_classes=None,
    head="linear",
    hidden_units=512,
    epochs=100,
    batch_size=32,
    learning_rate=1e-3,
    seed=0,
    verbose=0,
):
    """Trains a classifier on frozen features (linear evaluation).

    The paper (Pham et al., section 4) trains two fully connected layers
    (`head="two_fc"`) for 100 epochs, batch 32, on features of the frozen
    pretrained encoder; the usual linear evaluation is `head="linear"`.
    Extract the features once with `extract_features`.

    Args:
        train_features: `[N, D]` array.
        train_labels: `[N]` int class ids.
        test_features: `[M, D]` array.
        test_labels: `[M]` int class ids.
        num_classes: int or None (inferred from the labels).
        head: "linear" or "two_fc".
        hidden_units: int. Hidden width of "two_fc" (the paper does not
            give it).
        epochs: int. Defaults to 100 (the paper's).
        batch_size: int. Defaults to 32 (the paper's).
        learning_rate: float. Adam's learning rate.
        seed: int. Seeds the head's initialisation and shuffling.
        verbose: Keras `fit` verbosity.

    Returns:
        A `ProbeResult` (test accuracy, the trained head, the history).

    Example:
    ```python
    train = extract_features(backbone, train_data)
    test = extract_features(backbone, test_data)
    result = linear_probe(*train, *test, head="two_fc")
    result.accuracy
    ```
    """
    num_classes = _num_classes(num_classes, train_labels, test_labels)
    keras.utils.set_random_seed(seed)
    model = classification_head(num_classes, head, hidden_units)
    _compile(model, learning_rate)
    history = model.fit(
        np.asarray(train_features),
        np.asarray(train_labels),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
    results = model.evaluate(
        np.asarray(test_features),
        np.asarray(test_labels),
        batch_size=1024,
        verbose=0,
        return_dict=True,
    )
    return ProbeResult(float(results["accuracy"]), model, history)


class FineTuneClassifier(keras.Model):
    """Raw images -> preprocessor -> backbone -> pooled features -> head."""

    def __init__(self, extractor, head, **kwargs):
        super().__init__(**kwargs)
        self.extractor = extractor
        self.head = head

    def call(self, images, training=None):
        return self.head(self.extractor(images, training=training))


def clone_backbone(backbone):
    """A copy of a backbone with its own weights (same architecture)."""
    copy = backbone.__class__.from_config(backbone.get_config())
    copy.set_weights(backbone.get_weights())
    return copy


def fine_tune(
    backbone,
    train_data,
    test_data,
    num_classes,
    head="linear",
    hidden_units=512,
    epochs=20,
    batch_size=32,
    learning_rate=1e-3,
    preprocessor="default",
    pooling=None,
    seed=0,
    verbose=0,
):
    """Trains a copy of the backbone and a head end to end on labels.

    The paper fine-tunes the pretrained encoder with its two fully
    connected layers for 20 epochs, batch 32. The backbone passed in is not
    changed: a copy is trained.

    Args:
        backbone: a keras_ssl backbone (pretrained or not).
        train_data: a dataset of `(images, labels)` batches or arrays
            `(images, labels)`; raw `[0, 255]` images (augment them in the
            dataset if wanted).
        test_data: the same kinds, for the reported accuracy.
        num_classes: int.
        head: "linear" or "two_fc".
        hidden_units: int. Hidden width of "two_fc".
        epochs: int. Defaults to 20 (the paper's).
        batch_size: int. For arrays; defaults to 32 (the paper's).
        learning_rate: float. Adam's learning rate.
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        seed: int. Seeds the head's initialisation and shuffling.
        verbose: Keras `fit` verbosity.

    Returns:
        A `ProbeResult` whose model maps raw images to logits.

    Example:
    ```python
    train = keras_ssl.data.load_dataset("sample", batch_size=32, augment="cifar")
    test = keras_ssl.data.load_dataset("sample", split="test", batch_size=100)
    result = fine_tune(model.backbone, train, test, num_classes=10)
    ```
    """
    keras.utils.set_random_seed(seed)
    extractor = FeatureExtractor(clone_backbone(backbone), preprocessor, pooling)
    model = FineTuneClassifier(
        extractor, classification_head(num_classes, head, hidden_units)
    )
    _compile(model, learning_rate)
    if isinstance(train_data, (tuple, list)):
        history = model.fit(
            *train_data, epochs=epochs, batch_size=batch_size, verbose=verbose
        )
    else:
        # A dataset shuffles itself; Keras warns if asked to.
        history = model.fit(
            train_data, epochs=epochs, shuffle=False, verbose=verbose
        )
    if isinstance(test_data, (tuple, list)):
        results = model.evaluate(
            *test_data, batch_size=256, verbose=0, return_dict=True
        )
    else:
        results = model.evaluate(test_data, verbose=0, return_dict=True)
    return ProbeResult(float(results["accuracy"]), model, history)
