"""Per-head attention maps of the class token, as HPAH/MPAH's Figure 5."""

import keras
import numpy as np
from keras import ops

from keras_ssl.methods.auxiliary_task import resolve_layer_index


def _parts(model):
    """(backbone, preprocessor) of a backbone, classifier or method."""
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "blocks"):
        raise ValueError(
            "Attention maps need a transformer (CRATE or ViT); received a "
            f"{type(backbone).__name__}."
        )
    return backbone, getattr(model, "preprocessor", None)


def class_token_attention(model, images, layer_index=-1):
    """The class token's attention over the patches, per head.

    Args:
        model: a transformer backbone, classifier or method (`HPAH`, ...).
            Classifiers and methods preprocess raw `[0, 255]` images; a bare
            backbone takes preprocessed ones.
        images: `[B, H, W, 3]` array.
        layer_index: int. Block whose attention to read (-1: the last).

    Returns:
        numpy array `[B, num_heads, grid_rows, grid_cols]`.
    """
    backbone, preprocessor = _parts(model)
    block_index = resolve_layer_index(layer_index, len(backbone.blocks))
    inputs = ops.convert_to_tensor(np.asarray(images, "float32"))
    if preprocessor is not None:
        inputs = preprocessor(inputs)
    tokens = backbone.embed(inputs)
    for block in backbone.blocks[:block_index]:
        tokens = block(tokens)
    _, attention = backbone.blocks[block_index](tokens, return_attention=True)
    rows, cols = backbone.grid_size
    maps = keras.ops.convert_to_numpy(attention)[:, :, 0, 1:]
    return maps.reshape(maps.shape[0], maps.shape[1], rows, cols)


def plot_attention_heads(
    models,
    image,
    layer_index=-1,
    titles=None,
    path="attention_heads.png",
    alpha=0.6,
    cmap="inferno",
):
    """Overlays each head's class-token attention on an image, to PNG.

    One row per model, one column per head after the image itself: the
    view of the HPAH/MPAH paper's Figure 5, where a baseline and an
    HPAH/MPAH model are compared side by side. Each map is normalised to
    its own maximum and upsampled bilinearly over the image.

    Args:
        models: a model or a list of models (backbones, classifiers or
            methods) with the same number of heads.
        image: one raw image `[H, W, 3]` in `[0, 255]`.
        layer_index: int. Block whose attention to show (-1: the last).
        titles: list of row titles (default: the models' class names).
        path: str. PNG file to write.
        alpha: float. Opacity of the attention overlay.
        cmap: str. Matplotlib colour map of the overlay.

    Returns:
        The numpy maps `[num_models, num_heads, grid_rows, grid_cols]`.

    Example:
    ```python
    keras_ssl.visualization.plot_attention_heads(
        [baseline, hpah_model], images[0], titles=["CRATE", "CRATE + HPAH"]
    )
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = models if isinstance(models, (list, tuple)) else [models]
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"`image` must be one [height, width, 3] image; received shape "
            f"{image.shape}. Pass `images[0]`, not the batch."
        )
    titles = titles or [type(model).__name__ for model in models]
    if len(titles) != len(models):
        raise ValueError(
            f"Got {len(titles)} titles for {len(models)} models."
        )
    maps = [class_token_attention(m, image[None], layer_index)[0] for m in models]
    if len({m.shape for m in maps}) != 1:
        raise ValueError(
            "The models have different head counts or patch grids; plot "
            "them separately."
        )
    maps = np.stack(maps)
    num_heads = maps.shape[1]
    height, width = image.shape[:2]
    figure, axes = plt.subplots(
        len(models), num_heads + 1,
        figsize=(1.6 * (num_heads + 1), 1.7 * len(models)),
        squeeze=False,
    )
    shown = np.clip(image, 0, 255).astype("uint8")
    for row, title in enumerate(titles):
        axes[row, 0].imshow(shown)
        axes[row, 0].set_ylabel(title, fontsize=8)
        for head in range(num_heads):
            overlay = maps[row, head] / max(maps[row, head].max(), 1e-12)
            overlay = keras.ops.convert_to_numpy(
                keras.ops.image.resize(
                    overlay[..., None].astype("float32"), (height, width)
                )
            )[..., 0]
            axis = axes[row, head + 1]
            axis.imshow(shown)
            axis.imshow(overlay, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
            if row == 0:
                axis.set_title(f"head {head}", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return maps
