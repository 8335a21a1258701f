"""Occlusion robustness: linear-probe accuracy on complete, randomly
occluded and attention-occluded test images.

The protocol of SegAS (Bai et al. 2024, section 4.2, Table 1 and Figure 3):
the frozen encoder's linear classifier, trained on complete images, is
tested on complete images, on images with a random region occluded, and on
images whose most attended region (the channel-summed last feature map
above a threshold) is occluded, over thresholds 0.4-1.0.
"""

import keras
import numpy as np
from keras import ops

from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.features import resolve_preprocessor
from keras_ssl.evaluation.probes import linear_probe
from keras_ssl.ops.attention_filter import attention_heatmap
from keras_ssl.ops.attention_filter import random_filter


class FeatureMapExtractor(keras.Model):
    """Raw images -> preprocessor -> the backbone's last feature map."""

    def __init__(self, backbone, preprocessor="default", **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocessor = resolve_preprocessor(backbone, preprocessor)

    def call(self, images, training=None):
        if self.preprocessor is not None:
            images = self.preprocessor(images)
        return self.backbone(images, training=training)


def feature_maps(backbone, images, preprocessor="default", batch_size=256):
    """The last feature maps `[N, h, w, C]` of raw images (numpy)."""
    extractor = backbone
    if not isinstance(backbone, FeatureMapExtractor):
        extractor = FeatureMapExtractor(backbone, preprocessor)
    maps = [
        np.asarray(extractor.predict_on_batch(images[start:start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    maps = np.concatenate(maps)
    if maps.ndim != 4:
        raise ValueError(
            "Attention occlusion and CAMs read a convolutional feature map "
            f"[batch, height, width, channels]; the backbone outputs shape "
            f"{maps.shape}."
        )
    return maps


def random_occlusion(images, area=0.25, seed=0):
    """Images with one random rectangle of `area` (fraction) set to 0.

    Args:
        images: `[N, H, W, C]` raw images.
        area: float in (0, 1), the occluded fraction of each image.
        seed: int.

    Returns:
        float32 numpy array of the images' shape.
    """
    images = np.asarray(images, "float32")
    count, height, width = images.shape[:3]
    mask = random_filter(
        (count, height, width), np.full((count,), area, "float32"),
        keras.random.SeedGenerator(seed),
    )
    return images * ops.convert_to_numpy(mask)


def attention_occlusion(backbone, images, threshold, preprocessor="default", batch_size=256):
    """Images with their attended region (heat above `threshold`) set to 0.

    The heat is the channel sum of the backbone's last feature map,
    min-max normalised per image and bilinearly upsampled (as SegAS's
    ApFS). A threshold of 1 occludes (next to) nothing; lower thresholds
    occlude more.

    Args:
        backbone: a backbone with a convolutional feature map.
        images: `[N, H, W, C]` raw images.
        threshold: float in [0, 1].
        preprocessor: "default", None or a preprocessor layer.
        batch_size: int.

    Returns:
        `(occluded, fraction)`: the images and the mean occluded fraction.
    """
    images = np.asarray(images, "float32")
    maps = feature_maps(backbone, images, preprocessor, batch_size)
    heat = ops.convert_to_numpy(attention_heatmap(maps, images.shape[1:3]))
    keep = (heat <= threshold).astype("float32")
    return images * keep, float(1.0 - keep.mean())


def occlusion_robustness(
    backbone,
    train_data,
    test_data,
    num_classes=None,
    random_area=0.25,
    thresholds=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    preprocessor="default",
    epochs=100,
    learning_rate=1e-3,
    batch_size=256,
    seed=0,
):
    """Linear-probe accuracy on complete and occluded test images.

    The linear head is trained once, on the frozen features of the complete
    training images (`linear_probe`), then tested on the complete test
    images, on randomly occluded ones (Table 1 of SegAS) and on
    attention-occluded ones at each threshold (Figure 3).

    Args:
        backbone: a keras_ssl backbone with a convolutional feature map.
        train_data: `(images, labels)` arrays, raw `[0, 255]` images.
        test_data: `(images, labels)` arrays.
        num_classes: int or None (inferred).
        random_area: float, the occluded fraction of the random occlusion.
        thresholds: the attention-occlusion thresholds.
        preprocessor: "default", None or a preprocessor layer.
        epochs: int, the linear head's epochs.
        learning_rate: float, the head's Adam learning rate.
        batch_size: int, for feature extraction.
        seed: int, seeds the head and the random occlusion.

    Returns:
        A dict: `complete`, `random_occlusion` (accuracies),
        `attention_occlusion` (threshold -> accuracy), `occluded_fraction`
        (threshold -> mean occluded area).

    Example:
    ```python
    train = keras_ssl.data.load_sample("train")
    test = keras_ssl.data.load_sample("test")
    result = keras_ssl.evaluation.occlusion_robustness(model.backbone, train, test)
    result["complete"], result["random_occlusion"]
    ```
    """
    train_images, train_labels = train_data
    test_images, test_labels = (np.asarray(part) for part in test_data)

    def features(images):
        return extract_features(
            backbone, np.asarray(images, "float32"), preprocessor,
            batch_size=batch_size, verbose=0,
        )[0]

    probe = linear_probe(
        features(train_images), np.asarray(train_labels), features(test_images),
        test_labels, num_classes=num_classes, epochs=epochs,
        learning_rate=learning_rate, seed=seed,
    )

    def accuracy(images):
        logits = probe.model.predict(features(images), batch_size=1024, verbose=0)
        return float(np.mean(np.argmax(logits, -1) == test_labels))

    result = {
        "complete": probe.accuracy,
        "random_occlusion": accuracy(random_occlusion(test_images, random_area, seed)),
        "attention_occlusion": {},
        "occluded_fraction": {},
    }
    for threshold in thresholds:
        occluded, fraction = attention_occlusion(
            backbone, test_images, threshold, preprocessor, batch_size
        )
        result["attention_occlusion"][float(threshold)] = accuracy(occluded)
        result["occluded_fraction"][float(threshold)] = fraction
    return result
