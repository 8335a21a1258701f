"""Class activation maps (CAM), with SFE's dropped-group view (Figure 1).

Zhou et al. 2016, "Learning Deep Features for Discriminative Localization":
for a network ending in global average pooling and a linear head, the map
of class y is `sum_c w_{c,y} f[:, :, c]` over the last feature map f.
"""

import numpy as np
from keras import ops

from keras_ssl.methods.sfe import SFE


def _last_feature_map(model, images):
    """Preprocessed images -> the backbone's last feature map `[B, h, w, C]`."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        images = preprocessor(images)
    return ops.convert_to_numpy(model.backbone(images, training=False))


def class_activation_maps(model, images, labels=None, max_groups=4, normalize=True):
    """CAMs of the original feature and, for SFE, of each dropped group.

    For a classifier (a keras_ssl `ImageClassifier` or `Supervised`), one
    map per image from its head. For `SFE`, as in the paper's Figure 1:
    the map of the original feature read by the SI columns of the last joint
    classifier (transformation 0), then, for groups j = 1..`max_groups`, the
    map of the feature with group j dropped read by the columns of
    transformation j.

    Args:
        model: `SFE`, `Supervised` or a keras_ssl ResNet `ImageClassifier`.
        images: `[B, H, W, 3]` raw images (the model preprocesses them).
        labels: int `[B]` classes to explain; None explains the prediction.
        max_groups: int. Dropped groups shown for SFE.
        normalize: bool. Rescale each map to [0, 1]; unnormalised, a map's
            spatial mean plus the head's bias is the logit it explains.

    Returns:
        `(maps, titles)`: maps `[B, M, h, w]` and the M column titles.
    """
    images = np.asarray(images, "float32")
    features = _last_feature_map(model, images)
    if isinstance(model, SFE):
        task = model.task
        if task.stages[-1] != task.last_stage:
            raise ValueError(
                "plot_cam reads the joint classifier on the backbone's last "
                "feature map; build the SFE model with -1 in "
                "`transform_stages`."
            )
        num_transforms = task.num_transforms
        kernel = ops.convert_to_numpy(task.heads[-1].kernel)
        masks = ops.convert_to_numpy(task.masks(len(task.stages) - 1, "float32"))
        shown = min(max_groups, num_transforms - 1) + 1
        if labels is None:
            labels = model.predict(images, inference="si", verbose=0).argmax(-1)
        columns = [
            kernel[:, np.asarray(labels) * num_transforms + j] * masks[j][:, None]
            for j in range(shown)
        ]
        titles = ["original"] + [f"drop group {j}" for j in range(1, shown)]
    else:
        classifier = getattr(model, "classifier", model)
        kernel = ops.convert_to_numpy(classifier.output_dense.kernel)
        if labels is None:
            labels = ops.convert_to_numpy(
                classifier.predict(images, verbose=0)
            ).argmax(-1)
        columns = [kernel[:, np.asarray(labels)]]
        titles = ["CAM"]
    # columns[m]: [C, B], the weights of map m for each image's class.
    maps = np.stack(
        [np.einsum("bhwc,cb->bhw", features, weights) for weights in columns],
        axis=1,
    )
    if not normalize:
        return maps, titles
    low = maps.min(axis=(2, 3), keepdims=True)
    high = maps.max(axis=(2, 3), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12), titles


def plot_cam(
    model,
    images,
    labels=None,
    path="cam.png",
    max_groups=4,
    class_names=None,
    alpha=0.5,
):
    """Draws the CAMs of `class_activation_maps` over the images, as a PNG.

    One row per image: the image, then each map (bilinearly upsampled to the
    image, "jet" colours over the image), as in the SFE paper's Figure 1.

    Args:
        model: `SFE`, `Supervised` or a keras_ssl ResNet `ImageClassifier`.
        images: `[B, H, W, 3]` raw images in [0, 255].
        labels: int `[B]` classes to explain; None explains the prediction.
        path: str. Output PNG file.
        max_groups: int. Dropped groups shown for SFE.
        class_names: optional list of class names for the row labels.
        alpha: float. Opacity of the maps.

    Returns:
        `path`.

    Example:
    ```python
    images, labels = keras_ssl.data.load_sample("test")[:2]
    keras_ssl.visualization.plot_cam(model, images[:4], labels[:4], "cam.png")
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images, "float32")
    maps, titles = class_activation_maps(model, images, labels, max_groups)
    height, width = images.shape[1:3]
    upsampled = ops.convert_to_numpy(
        ops.image.resize(
            np.transpose(maps, (0, 2, 3, 1)), (height, width),
            interpolation="bilinear",
        )
    )
    rows, columns = maps.shape[0], maps.shape[1] + 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.6 * columns, 1.6 * rows), squeeze=False
    )
    shown = np.clip(images / 255.0, 0.0, 1.0)
    for row in range(rows):
        axes[row, 0].imshow(shown[row])
        if labels is not None:
            label = int(np.asarray(labels)[row])
            axes[row, 0].set_ylabel(
                class_names[label] if class_names else str(label), fontsize=8
            )
        for column in range(maps.shape[1]):
            axis = axes[row, column + 1]
            axis.imshow(shown[row])
            axis.imshow(
                upsampled[row, :, :, column], cmap="jet", alpha=alpha,
                vmin=0.0, vmax=1.0,
            )
    for column, title in enumerate(["image", *titles]):
        axes[0, column].set_title(title, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
