"""CAM localisation: GT-known Loc and Top-1 Loc from class activation maps.

Zhou et al. 2016, "Learning Deep Features for Discriminative Localization"
(CAM): for a linear head on globally averaged features, the map of class c
is `sum_k w_{k,c} f_k` over the last feature map f. The box is that of the
largest connected region of the map above `threshold` times its maximum.
A box is correct when its IoU with the ground-truth box is at least 0.5:
GT-known Loc scores the map of the true class, Top-1 Loc also needs the
top-1 class right (the metrics of SegAS's Table 2).
"""

import numpy as np
from keras import ops

from keras_ssl.evaluation.occlusion import feature_maps


def class_activation_maps(maps, kernel, classes):
    """CAMs `[N, h, w]` of `classes` from feature maps `[N, h, w, C]` and a
    linear head's kernel `[C, num_classes]`."""
    weights = np.asarray(kernel)[:, np.asarray(classes)]  # [C, N]
    return np.einsum("nhwc,cn->nhw", maps, weights)


def cam_boxes(cams, image_size, threshold=0.2):
    """Boxes `[N, 4]` (ymin, xmin, ymax, xmax; normalised to [0, 1]).

    Each map is bilinearly upsampled to `image_size`, min-max normalised,
    and thresholded at `threshold`; the box encloses the largest connected
    (8-neighbour) region above it.
    """
    from scipy import ndimage

    height, width = image_size
    upsampled = ops.convert_to_numpy(
        ops.image.resize(np.asarray(cams, "float32")[..., None], (height, width),
                         interpolation="bilinear")
    )[..., 0]
    boxes = []
    for cam in upsampled:
        cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
        regions, count = ndimage.label(cam >= threshold, structure=np.ones((3, 3)))
        if count == 0:
            boxes.append([0.0, 0.0, 1.0, 1.0])
            continue
        sizes = ndimage.sum(np.ones_like(cam), regions, range(1, count + 1))
        rows, cols = np.nonzero(regions == 1 + int(np.argmax(sizes)))
        boxes.append([
            rows.min() / height, cols.min() / width,
            (rows.max() + 1) / height, (cols.max() + 1) / width,
        ])
    return np.asarray(boxes, "float32")


def box_iou(first, second):
    """IoU of matching rows of two `[N, 4]` (ymin, xmin, ymax, xmax) arrays."""
    first, second = np.asarray(first), np.asarray(second)
    top = np.maximum(first[:, 0], second[:, 0])
    left = np.maximum(first[:, 1], second[:, 1])
    bottom = np.minimum(first[:, 2], second[:, 2])
    right = np.minimum(first[:, 3], second[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)

    def area(b):
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    return inter / np.maximum(area(first) + area(second) - inter, 1e-12)


def cam_localization(
    backbone,
    kernel,
    images,
    labels,
    boxes,
    bias=None,
    threshold=0.2,
    preprocessor="default",
    batch_size=256,
):
    """GT-known Loc, Top-1 Loc and Top-1 Cls of a CAM classifier.

    The classifier is the backbone's averaged last feature map followed by
    a linear head (e.g. `linear_probe(...).model`'s Dense layer, or a
    keras_ssl ResNet `ImageClassifier`'s `output_dense`).

    Args:
        backbone: a backbone with a convolutional feature map.
        kernel: `[C, num_classes]` linear head weights.
        images: `[N, H, W, 3]` raw images.
        labels: `[N]` int true classes.
        boxes: `[N, 4]` ground-truth boxes, (ymin, xmin, ymax, xmax)
            normalised to [0, 1] (TFDS `caltech_birds2011`'s `bbox`).
        bias: `[num_classes]` head bias, or None.
        threshold: float, the CAM threshold (fraction of its maximum).
        preprocessor: "default", None or a preprocessor layer.
        batch_size: int.

    Returns:
        A dict: `gt_known_loc`, `top1_loc`, `top1_cls` (fractions),
        `iou` `[N]`, `boxes` `[N, 4]` (predicted for the true class) and
        `predictions` `[N]`.

    Example:
    ```python
    head = keras_ssl.evaluation.linear_probe(*train, *test).model.layers[-1]
    result = keras_ssl.evaluation.cam_localization(
        backbone, head.kernel.numpy(), images, labels, boxes, head.bias.numpy()
    )
    result["gt_known_loc"], result["top1_loc"]
    ```
    """
    images = np.asarray(images, "float32")
    labels = np.asarray(labels)
    kernel = np.asarray(ops.convert_to_numpy(kernel))
    maps = feature_maps(backbone, images, preprocessor, batch_size)
    logits = maps.mean(axis=(1, 2)) @ kernel
    if bias is not None:
        logits = logits + np.asarray(ops.convert_to_numpy(bias))
    predictions = logits.argmax(-1)
    predicted = cam_boxes(
        class_activation_maps(maps, kernel, labels), images.shape[1:3], threshold
    )
    iou = box_iou(predicted, boxes)
    located = iou >= 0.5
    correct = predictions == labels
    return {
        "gt_known_loc": float(located.mean()),
        "top1_loc": float((located & correct).mean()),
        "top1_cls": float(correct.mean()),
        "iou": iou,
        "boxes": predicted,
        "predictions": predictions,
    }
