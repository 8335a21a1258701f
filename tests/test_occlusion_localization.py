"""Occlusion robustness and CAM localisation on images with known content."""

import keras
import numpy as np
import pytest

from keras_ssl.evaluation import attention_occlusion
from keras_ssl.evaluation import box_iou
from keras_ssl.evaluation import cam_localization
from keras_ssl.evaluation import occlusion_robustness
from keras_ssl.evaluation import random_occlusion


def pooling_backbone():
    """A "backbone" whose feature map is the image averaged over 4x4 cells,
    so channel c of the map is where colour c is."""
    return keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.AveragePooling2D(4)]
    )


def squares(count, seed=0):
    """Black images with one red (class 0) or green (class 1) square on the
    4-pixel grid; returns images, labels and the true boxes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 32, 32, 3), "float32")
    labels = np.arange(count) % 2
    boxes = []
    for i, label in enumerate(labels):
        top, left = rng.integers(0, 5, size=2) * 4
        side = 12
        images[i, top:top + side, left:left + side, label] = 255.0
        boxes.append([top / 32, left / 32, (top + side) / 32, (left + side) / 32])
    return images, labels, np.asarray(boxes, "float32")


@pytest.mark.multibackend
def test_cam_boxes_find_the_known_objects():
    images, labels, boxes = squares(6)
    kernel = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], "float32")
    result = cam_localization(
        pooling_backbone(), kernel, images, labels, boxes, preprocessor=None
    )
    assert result["top1_cls"] == 1.0
    assert result["gt_known_loc"] == 1.0 and result["top1_loc"] == 1.0
    assert result["iou"].min() > 0.7
    # A box elsewhere is missed; a wrong class keeps GT-known, not Top-1.
    moved = boxes.copy()
    moved[0] = [0.0, 0.0, 0.1, 0.1] if boxes[0][0] > 0.2 else [0.8, 0.8, 1.0, 1.0]
    result = cam_localization(
        pooling_backbone(), kernel, images, labels, moved, preprocessor=None
    )
    assert result["gt_known_loc"] == pytest.approx(5 / 6)
    result = cam_localization(
        pooling_backbone(), kernel, images, labels, boxes,
        bias=np.array([0.0, 1e4], "float32"), preprocessor=None,
    )
    assert result["gt_known_loc"] == 1.0
    assert result["top1_cls"] == pytest.approx(0.5)
    assert result["top1_loc"] == pytest.approx(0.5)
    np.testing.assert_allclose(
        box_iou([[0, 0, 0.5, 0.5]], [[0.25, 0, 0.75, 0.5]]), [1 / 3], rtol=1e-6
    )


@pytest.mark.multibackend
def test_occlusions_remove_what_they_should():
    images, labels, _ = squares(8)
    occluded = random_occlusion(images + 1.0, area=0.25, seed=0)
    np.testing.assert_allclose((occluded == 0).mean(), 0.25, atol=0.05)
    hidden, fraction = attention_occlusion(
        pooling_backbone(), images, 0.3, preprocessor=None
    )
    # Every square is the hot region (its bilinear corners reach 0.39).
    assert hidden.max() == 0.0
    assert 0.14 < fraction < 0.35
    kept, fraction = attention_occlusion(
        pooling_backbone(), images, 1.0, preprocessor=None
    )
    np.testing.assert_array_equal(kept, images)
    assert fraction == 0.0

    # A probe that reads the square's colour: right on complete images,
    # chance once the attended square is occluded.
    train, test = squares(40, seed=1), squares(20, seed=2)
    result = occlusion_robustness(
        pooling_backbone(), train[:2], test[:2], num_classes=2,
        thresholds=(0.3, 1.0), preprocessor=None, epochs=30,
        learning_rate=0.1,
    )
    assert result["complete"] == 1.0
    assert result["attention_occlusion"][1.0] == 1.0
    assert result["attention_occlusion"][0.3] == 0.5
    assert result["occluded_fraction"][1.0] == 0.0
    assert 0.0 <= result["random_occlusion"] <= 1.0
