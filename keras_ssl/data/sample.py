"""The bundled CIFAR-10 sample, for examples, smoke tests and quick runs."""

import os

import numpy as np

SAMPLE_NAMES = ("sample", "cifar10_sample")
SAMPLE_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "sample", "cifar10_sample.npz"
)


def load_sample(split="train", with_class_names=False):
    """Loads the bundled CIFAR-10 sample as numpy arrays.

    A stratified subset of CIFAR-10 (JPEG re-encoded): 150 train and 30 test
    images per class, 32x32 RGB, shipped with the package (built by
    `scripts/make_sample_dataset.py`). Labels are the official CIFAR-10 ids.

    Args:
        split: str, `"train"` or `"test"`.
        with_class_names: bool, whether to also return the class names.

    Returns:
        `(images, labels)`: uint8 `[N, 32, 32, 3]` and int32 `[N]`; with
        `with_class_names=True`, `(images, labels, class_names)`.

    Example:
    ```python
    images, labels = keras_ssl.data.load_sample("test")
    images.shape  # (300, 32, 32, 3)
    ```
    """
    if split not in ("train", "test"):
        raise ValueError(
            f"The sample has the splits 'train' and 'test'; received "
            f"split={split!r}. For a validation set use "
            "`load_dataset('sample', split='validation', "
            "validation_fraction=0.1)`."
        )
    with np.load(SAMPLE_PATH) as data:
        images = data[f"x_{split}"]
        labels = data[f"y_{split}"].astype("int32")
        class_names = [str(name) for name in data["class_names"]]
    if with_class_names:
        return images, labels, class_names
    return images, labels
