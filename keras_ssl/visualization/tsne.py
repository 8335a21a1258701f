"""t-SNE scatter of features, coloured by class (Patch RotNet's Figure 4)."""

import numpy as np


def tsne_embedding(features, perplexity=30.0, seed=0):
    """2D t-SNE (van der Maaten and Hinton 2008) of `[N, D]` features.

    Args:
        features: `[N, D]` array.
        perplexity: float. Must be below N.
        seed: int. Seeds the embedding.

    Returns:
        `[N, 2]` float array.
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError as error:
        raise ImportError(
            "t-SNE needs scikit-learn: `pip install scikit-learn`."
        ) from error
    features = np.asarray(features, dtype="float32")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(
            f"`features` must be [count >= 2, dim]; received {features.shape}."
        )
    if not 0 < perplexity < len(features):
        raise ValueError(
            f"`perplexity` must be in (0, {len(features)}) (the number of "
            f"points); received {perplexity}."
        )
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed
    ).fit_transform(features)


def plot_tsne(
    features,
    labels,
    path="tsne.png",
    class_names=None,
    perplexity=30.0,
    seed=0,
    title=None,
):
    """Writes a t-SNE scatter of features, one colour per class, as a PNG.

    The Patch RotNet paper (Figure 4) compares such plots of the fine-tuned
    features of Patch RotNet and RotNet.

    Args:
        features: `[N, D]` array, e.g. from
            `keras_ssl.evaluation.extract_features`.
        labels: `[N]` int class ids.
        path: str. Output PNG file.
        class_names: optional list of names for the legend.
        perplexity: float. t-SNE perplexity.
        seed: int. Seeds the embedding.
        title: optional str.

    Returns:
        `path`.

    Example:
    ```python
    features, labels = keras_ssl.evaluation.extract_features(backbone, data)
    keras_ssl.visualization.plot_tsne(features, labels, "tsne.png")
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    if labels.shape != (len(features),):
        raise ValueError(
            f"`labels` must have shape ({len(features)},); received "
            f"{labels.shape}."
        )
    points = tsne_embedding(features, perplexity, seed)
    figure, axis = plt.subplots(figsize=(6, 6))
    colours = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for index, label in enumerate(np.unique(labels)):
        chosen = labels == label
        name = class_names[label] if class_names is not None else str(label)
        axis.scatter(
            points[chosen, 0], points[chosen, 1], s=6,
            color=colours(index % colours.N), label=name,
        )
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(markerscale=3, fontsize=7, loc="best")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
