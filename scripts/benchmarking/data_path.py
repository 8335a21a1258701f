"""The end-to-end fit row: `fit` fed by the image-folder loader (file reads,
JPEG decoding and augmentation in `tf.data`) next to the same model fed by
the same images already decoded in memory, so the ratio is the share of
the model's speed the data path keeps."""

import numpy as np

from keras_ssl.data import load_dataset
from scripts.benchmarking.measure import time_interleaved


def end_to_end_fit(build_model, folder, batch_size, warmup, runs, steps):
    """Times `model.fit` for `steps` batches on each data path, interleaved.

    Args:
        build_model: zero-argument function returning a compiled model.
        folder: an image folder with a `train` split (e.g. CIFAR-10 as JPEGs).
        batch_size: int.
        warmup: int. Untimed `fit` calls first (tracing, compilation).
        runs: int. Timed `fit` calls per data path.
        steps: int. Batches per `fit` call.

    Returns:
        `{"folder": timing, "in_memory": timing, "ratio": float}`, each
        timing as `time_interleaved` returns it (images/s of whole `fit`
        calls, so the per-call overhead counts on both paths).
    """
    from_folder = load_dataset(
        folder, split="train", batch_size=batch_size, augment="cifar", seed=0,
        repeat=True,
    )
    decoded = load_dataset(folder, split="train", batch_size=batch_size * steps,
                           shuffle=True, seed=0)
    images, labels = (np.asarray(tensor) for tensor in next(iter(decoded)))
    in_memory = load_dataset(
        (images.astype("uint8"), labels), batch_size=batch_size,
        augment="cifar", seed=0, repeat=True,
    )
    fits = {}
    for name, data in (("folder", from_folder), ("in_memory", in_memory)):
        model = build_model()
        fits[name] = (
            lambda model=model, data=data: model.fit(
                data, steps_per_epoch=steps, epochs=1, verbose=0
            )
        )
    timing = time_interleaved(fits, batch_size * steps, warmup, runs, 1)
    timing["ratio"] = (
        timing["folder"]["images_per_s"] / timing["in_memory"]["images_per_s"]
    )
    return timing
