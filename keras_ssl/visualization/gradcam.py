"""Grad-CAM of the rotation pretext tasks on their generated views.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks
via Gradient-based Localization", as in Figure 3 of Pham et al.,
"Self-supervised learning with local attention-aware feature": the map of
each of the 8 generated images for its pretext label.

Grad-CAM weights the channels of the last feature map A by the spatial mean
of the gradient of the class score y_c: `relu(sum_k a_k A_k)` with
`a_k = mean_ij dy_c / dA_k[i, j]`. Our methods end in global average
pooling and a linear head (a concatenation then a linear head for Patch
RelNet), where that gradient is the head's weight `W[k, c] / (h w)` at
every position, so Grad-CAM is computed exactly without autodiff, on any
backend.
"""

import numpy as np
from keras import ops

from keras_ssl.methods.patch_rotnet import PatchRelNet
from keras_ssl.methods.rotnet import RotationPretext


def gradcam_maps(model, images, offsets=None):
    """The generated views of a rotation method and their Grad-CAM maps.

    Args:
        model: `RotNet`, `PatchRotNet` or `PatchRelNet` on a feature-map
            backbone (a ResNet).
        images: `[B, S, S, 3]` raw images.
        offsets: `[B, 2]` patch corners for the patch methods, or None to
            draw them.

    Returns:
        `(views, maps)`: raw views `[B, V, S, S, 3]` and maps `[B, V, h, w]`
        scaled to [0, 1] per map, each for the view's pretext label.
    """
    if not isinstance(model, RotationPretext) or model.is_token_backbone:
        raise ValueError(
            "Grad-CAM here explains RotNet / PatchRotNet / PatchRelNet on a "
            "ResNet backbone (a last feature map, average pooling and a "
            f"linear head); received {type(model).__name__}."
        )
    images = np.asarray(images, "float32")
    if not model.head.built:
        model(images[:1])  # builds the head
    if offsets is None or not hasattr(model, "patch_ratio"):
        views = model.generate_views(images)
    else:
        views = model.generate_views(images, offsets)
    views = ops.convert_to_numpy(views)
    batch, num_views = views.shape[:2]
    flat = views.reshape((-1,) + views.shape[2:])
    preprocessed = flat if model.preprocessor is None else model.preprocessor(flat)
    feature_maps = ops.convert_to_numpy(model.backbone(preprocessed, training=False))
    feature_maps = feature_maps.reshape((batch, num_views) + feature_maps.shape[1:])
    kernel = ops.convert_to_numpy(model.head.kernel)  # [D or 2D, classes]
    if isinstance(model, PatchRelNet):
        # View k (r_k) and view 4 + k (p_k) both feed pair k's logit k,
        # through the first and second halves of the kernel.
        depth = feature_maps.shape[-1]
        weights = np.stack(
            [kernel[:depth, k % 4] if k < 4 else kernel[depth:, k % 4]
             for k in range(num_views)]
        )
    else:
        weights = kernel[:, np.arange(num_views)].T  # view k has label k
    maps = np.maximum(np.einsum("bvhwc,vc->bvhw", feature_maps, weights), 0.0)
    high = maps.max(axis=(2, 3), keepdims=True)
    return views, maps / np.maximum(high, 1e-12)


def plot_gradcam(model, images, path="gradcam.png", offsets=None, alpha=0.5):
    """Writes the generated views and their Grad-CAM maps as a PNG.

    Two rows per image: the views (r_0..r_3 then p_0..p_3 for the patch
    methods), then the maps over them ("jet" colours), as in Figure 3 of
    Pham et al.

    Args:
        model: `RotNet`, `PatchRotNet` or `PatchRelNet` on a ResNet.
        images: `[B, S, S, 3]` raw images in [0, 255].
        path: str. Output PNG file.
        offsets: optional `[B, 2]` patch corners.
        alpha: float. Opacity of the maps.

    Returns:
        `path`.

    Example:
    ```python
    images = keras_ssl.data.load_sample("test")[0][:2]
    keras_ssl.visualization.plot_gradcam(model, images, "gradcam.png")
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views, maps = gradcam_maps(model, images, offsets)
    batch, num_views, size = views.shape[:3]
    upsampled = ops.convert_to_numpy(
        ops.image.resize(
            maps.reshape((-1,) + maps.shape[2:])[..., None], (size, size),
            interpolation="bilinear",
        )
    ).reshape(batch, num_views, size, size)
    names = [f"r{k}" for k in range(4)] + [f"p{k}" for k in range(num_views - 4)]
    figure, axes = plt.subplots(
        2 * batch, num_views, figsize=(1.4 * num_views, 2.8 * batch),
        squeeze=False,
    )
    shown = np.clip(views / 255.0, 0.0, 1.0)
    for b in range(batch):
        for v in range(num_views):
            axes[2 * b, v].imshow(shown[b, v])
            axes[2 * b + 1, v].imshow(shown[b, v])
            axes[2 * b + 1, v].imshow(upsampled[b, v], cmap="jet", alpha=alpha)
            if b == 0:
                axes[0, v].set_title(names[v], fontsize=8)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
