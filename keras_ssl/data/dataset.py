"""`load_dataset`: one `tf.data` pipeline for every kind of dataset spec."""

import logging

import tensorflow as tf

from keras_ssl.data import augment as augment_lib
from keras_ssl.data import sources

logger = logging.getLogger("keras_ssl.data")


def load_dataset(
    spec,
    split="train",
    batch_size=32,
    image_size=None,
    augment=False,
    num_views=1,
    shuffle=None,
    shuffle_buffer_size=None,
    seed=None,
    validation_fraction=0.0,
    split_seed=0,
    repeat=False,
    drop_remainder=False,
    data_dir=None,
    download=True,
    with_info=False,
):
    """Loads images and labels as a batched `tf.data.Dataset`.

    Every kind of `spec` gives batches of the same structure: `(images,
    labels)` with images float32 `[batch, height, width, 3]` holding raw
    pixel values in [0, 255] (the models' `ImageConverter` rescales them)
    and labels int32 `[batch]`. With `num_views > 1`, or an augmentation
    that returns several views (`multi_crop`), `images` is a tuple of such
    batches, one per view. `tf.data` datasets feed `model.fit` on every
    Keras backend.

    Args:
        spec: the data. One of:
            - a TFDS image-classification name, e.g. `"cifar10"`,
              `"oxford_flowers102"` (with `image` and `label` features);
            - an image-folder path, laid out as `<root>/<split>/<class>/*`
              or `<root>/<class>/*` (`.jpg`, `.jpeg`, `.png`, `.bmp`,
              `.gif`); sorted class-folder names give the label ids;
            - numpy arrays `(images, labels)` or a dict with keys
              `"images"`, `"labels"` and optionally `"class_names"`;
              images uint8 or float in [0, 255], `[N, H, W, 3]`;
            - `"sample"` (or `"cifar10_sample"`): the bundled CIFAR-10
              sample (see `load_sample`).
        split: str, `"train"`, `"validation"` (or `"val"`) or `"test"`;
            for TFDS also any TFDS split string such as `"train[:10%]"`.
        batch_size: int, the number of images per batch.
        image_size: int or `(height, width)`, the output size. Required if
            the images have different sizes; `None` keeps their size.
        augment: `False`/`None`, `"default"` (random resized crop to
            `image_size` + horizontal flip), `"cifar"` (pad-4-and-crop +
            flip), or a callable `(image, seed) -> image` on one float32
            image (a `seed` parameter, if present, gets a stateless seed).
        num_views: int, the number of independently augmented views of each
            image; views come as a tuple (for contrastive and
            self-distillation methods). Needs `augment`.
        shuffle: bool, whether to shuffle. `None` shuffles the train split
            only.
        shuffle_buffer_size: int, the shuffle buffer. `None` uses the whole
            split for arrays and folders (whose elements are file paths) and
            up to 10,000 images for TFDS.
        seed: int, makes shuffling and augmentation reproducible. `None`
            draws them anew each time.
        validation_fraction: float in [0, 1), the part of the training
            images held out as the `"validation"` split when the data has
            none; stratified by class for folders and arrays, the last
            examples of `"train"` for TFDS. Use the same value and
            `split_seed` when loading `"train"` and `"validation"`.
        split_seed: int, the seed of the validation holdout.
        repeat: bool, whether to repeat the data indefinitely.
        drop_remainder: bool, whether to drop the last, smaller batch.
        data_dir: str, the TFDS data directory (default: TFDS's own).
        download: bool, whether TFDS may download and prepare data that is
            not prepared in `data_dir`.
        with_info: bool, whether to also return a `DatasetInfo` (class
            names, number of classes and of examples).

    Returns:
        A `tf.data.Dataset`, or `(dataset, info)` with `with_info=True`.

    Example:
    ```python
    ds, info = keras_ssl.data.load_dataset(
        "sample", batch_size=64, augment="cifar", with_info=True
    )
    info.class_names[:2]  # ['airplane', 'automobile']
    images, labels = next(iter(ds))  # float32 [64, 32, 32, 3], int32 [64]

    # Two views per image for a contrastive method.
    ds = keras_ssl.data.load_dataset(
        "path/to/images", image_size=96, augment="default", num_views=2
    )
    ```
    """
    if num_views < 1:
        raise ValueError(f"`num_views` must be >= 1; received {num_views}.")
    if num_views > 1 and not augment:
        raise ValueError(
            f"`num_views={num_views}` needs `augment`; without augmentation "
            "the views would be identical."
        )
    size = None if image_size is None else augment_lib.to_size(image_size)
    source = sources.resolve_source(
        spec,
        split=split,
        image_size=size,
        validation_fraction=validation_fraction,
        split_seed=split_seed,
        data_dir=data_dir,
        download=download,
        seed=seed,
    )
    out_size = size or source.image_shape
    if out_size is None:
        raise ValueError(
            f"The images of {source.info.name!r} have different sizes; pass "
            "`image_size=(height, width)` to resize them to one size."
        )
    augment_fn = augment_lib.get_augmentation(augment, out_size)
    # The random resized crop samples from the full-resolution image; the
    # other paths resize first so that every view has one size.
    resize_first = augment != "default"

    def make_view(image, view_seed):
        if resize_first and size is not None:
            image = tf.image.resize(image, out_size, method="bilinear")
        if augment_fn is not None:
            image = augment_fn(image, view_seed)
        if isinstance(image, (tuple, list)):
            return tuple(_ensure_image_shape(view) for view in image)
        if callable(augment):
            return _ensure_image_shape(image)
        return tf.ensure_shape(image, tuple(out_size) + (3,))

    def prepare(element, element_seed):
        raw, label = element
        image = source.decode(raw)
        views = [
            make_view(image, tf.stack([element_seed, tf.constant(i, tf.int64)]))
            for i in range(num_views)
        ]
        if isinstance(views[0], tuple):
            if num_views > 1:
                raise ValueError(
                    "The augmentation already returns several views (e.g. "
                    "`multi_crop`); leave `num_views=1`."
                )
            return views[0], label
        return (views[0] if num_views == 1 else tuple(views)), label

    dataset = source.dataset
    if shuffle is None:
        shuffle = sources.canonical_split(split).startswith("train")
    if shuffle:
        if shuffle_buffer_size is None:
            shuffle_buffer_size = source.info.num_examples
            if source.info.kind == "tfds":
                shuffle_buffer_size = min(shuffle_buffer_size, 10_000)
        dataset = dataset.shuffle(
            shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    # A random int per element seeds its stateless augmentations: a fixed
    # `seed` reproduces them, and re-randomising makes each epoch differ.
    element_seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    )
    dataset = tf.data.Dataset.zip((dataset, element_seeds))
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    dropped = source.info.num_examples % batch_size
    if drop_remainder and dropped and not repeat:
        # Shuffled, so a different few each epoch; said so nothing is
        # dropped silently.
        logger.warning(
            "%s split '%s': %d images in batches of %d; the last %d of each "
            "epoch are dropped (drop_remainder=True).",
            source.info.kind, split, source.info.num_examples, batch_size,
            dropped,
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    if with_info:
        return dataset, source.info
    return dataset


def _ensure_image_shape(image):
    """Checks a custom augmentation's output: one `[H, W, 3]` float image."""
    if image.shape.rank != 3 or image.shape[-1] != 3:
        raise ValueError(
            "An augmentation must return one image `[height, width, 3]` (or "
            f"a tuple of them); it returned shape {image.shape}."
        )
    return tf.cast(image, tf.float32)
