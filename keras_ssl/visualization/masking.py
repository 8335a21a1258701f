"""MST's Figure 2: the attention-guided mask next to a random one."""

import keras
import numpy as np
from keras import ops

from keras_ssl.methods.dino import encode_tokens


def mst_masks(model, images, mask_probability=None, seed=0):
    """Teacher attention, random and attention-guided masks of images.

    Args:
        model: an `MST` model.
        images: raw `[B, H, W, 3]` images in `[0, 255]` at the backbone's
            size.
        mask_probability: float or None (the model's `mask_probability`).
            A figure reads better with more masked patches than training
            uses.
        seed: int. Seeds both masks' draws (one draw serves both, so they
            differ only by the candidate restriction).

    Returns:
        `(attention, random_mask, guided_mask)`, numpy `[B, rows, cols]`:
        the teacher's last-layer class-token attention averaged over heads
        (Eq. 4), the mask of Eq. 3 and that of Eq. 5.
    """
    if not hasattr(model, "mask_candidates"):
        raise ValueError(
            f"`model` must be an MST model; received a {type(model).__name__}."
        )
    probability = mask_probability or model.mask_probability
    inputs = model.preprocess(np.asarray(images, "float32"))
    _, attention = encode_tokens(
        model.teacher_backbone, inputs, return_attention=True
    )
    importance = model.patch_importance(attention)
    candidates = keras.ops.convert_to_numpy(model.mask_candidates(importance))
    importance = keras.ops.convert_to_numpy(importance)
    draw = np.random.default_rng(seed).uniform(size=importance.shape)
    random_mask = draw < probability
    guided_mask = random_mask & candidates
    shape = (len(importance),) + tuple(model.backbone.grid_size)
    return tuple(x.reshape(shape) for x in (importance, random_mask, guided_mask))


def plot_mst_masks(model, images, path="mst_masks.png", mask_probability=0.5,
                   seed=0):
    """Writes the MST paper's Figure 2 for each image, one row each: (a)
    the input, (b) the teacher's attention, (c) a random mask, (d) the
    attention-guided mask. Masked patches are drawn grey.

    Args:
        model: an `MST` model (its teacher gives the attention).
        images: raw `[B, H, W, 3]` images in `[0, 255]`.
        path: str. PNG file to write.
        mask_probability: float or None. Probability of masking a candidate
            (None: the model's own).
        seed: int.

    Returns:
        `mst_masks`' arrays.

    Example:
    ```python
    keras_ssl.visualization.plot_mst_masks(mst_model, images[:4])
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images, "float32")
    attention, random_mask, guided_mask = mst_masks(
        model, images, mask_probability, seed
    )
    height, width = images.shape[1:3]

    def upsample(grid):
        return ops.convert_to_numpy(ops.image.resize(
            grid[..., None].astype("float32"), (height, width),
            interpolation="nearest",
        ))[..., 0]

    titles = ("(a) input", "(b) attention", "(c) random mask",
              "(d) attention-guided")
    figure, axes = plt.subplots(len(images), 4, figsize=(6.4, 1.7 * len(images)),
                                squeeze=False)
    for row, image in enumerate(np.clip(images, 0, 255).astype("uint8")):
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(upsample(attention[row]), cmap="inferno")
        for column, mask in ((2, random_mask[row]), (3, guided_mask[row])):
            shown = np.where(upsample(mask)[..., None] > 0.5, 128, image)
            axes[row, column].imshow(shown.astype("uint8"))
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return attention, random_mask, guided_mask
