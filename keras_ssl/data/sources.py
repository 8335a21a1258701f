"""Turns a dataset spec (TFDS name, image folder, arrays, sample) into a source.

A source is an unbatched `tf.data.Dataset` of `(raw, label)` pairs plus a
`decode` function mapping `raw` (an image or a file path) to a float32 image
`[H, W, 3]` in [0, 255], so every kind of spec feeds the same pipeline.
"""

import dataclasses
import difflib
import os
import warnings

import numpy as np
import tensorflow as tf

from keras_ssl.data import sample
from keras_ssl.utils.validation import check_image_shape

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Folder names recognised as splits, mapped to our split names.
SPLIT_FOLDERS = {
    "train": "train",
    "test": "test",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
}
FOLDER_LAYOUTS = (
    "`<root>/<split>/<class>/*.jpg` (split folders train/validation/test) "
    "or `<root>/<class>/*.jpg`"
)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What `load_dataset(..., with_info=True)` tells about the data.

    Attributes:
        name: str, the TFDS name, folder path, `"arrays"` or the sample name.
        kind: str, one of `"tfds"`, `"folder"`, `"arrays"`, `"sample"`.
        split: str, the split that was loaded.
        class_names: list of str (index = label id), or `None` if unknown.
        num_classes: int, or `None` if unknown.
        num_examples: int, the number of images in the split (one epoch).
    """

    name: str
    kind: str
    split: str
    class_names: list
    num_classes: int
    num_examples: int


@dataclasses.dataclass
class Source:
    dataset: tf.data.Dataset
    decode: callable
    # Static `(height, width)` of every image, or None when sizes vary.
    image_shape: tuple
    info: DatasetInfo


def canonical_split(split):
    return SPLIT_FOLDERS.get(split, split)


def check_validation_fraction(validation_fraction):
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            "`validation_fraction` must be in [0, 1); received "
            f"{validation_fraction}."
        )


def holdout_mask(labels, validation_fraction, split_seed):
    """Boolean mask of a stratified, deterministic validation holdout.

    Every class keeps at least one example in the train part and, when it
    has two or more, gives at least one to the validation part.
    """
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(split_seed)
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        if len(indices) < 2:
            continue
        count = int(round(len(indices) * validation_fraction))
        count = min(max(count, 1), len(indices) - 1)
        mask[rng.permutation(indices)[:count]] = True
    return mask


def select_holdout(split, labels, validation_fraction, split_seed, where):
    """Indices of `split` (train or validation) of a split-less collection."""
    if split not in ("train", "validation"):
        raise ValueError(
            f"{where} has no split {split!r}: it has one set of images, "
            "from which `split='train'` and `split='validation'` (with "
            "`validation_fraction` > 0) are taken."
        )
    if validation_fraction == 0.0:
        if split == "validation":
            raise ValueError(
                f"{where} has no validation split. Pass "
                "`validation_fraction` (e.g. 0.1) to hold out a stratified "
                "part of the training images, with the same `split_seed` "
                "for the train and validation calls."
            )
        return np.arange(len(labels))
    mask = holdout_mask(labels, validation_fraction, split_seed)
    return np.flatnonzero(mask if split == "validation" else ~mask)


# -- numpy arrays ------------------------------------------------------------


def check_arrays(images, labels, class_names=None):
    """Validates `(images, labels)` arrays and returns them normalised."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    check_image_shape(images.shape, 3, name="images")
    if not (
        np.issubdtype(images.dtype, np.integer)
        or np.issubdtype(images.dtype, np.floating)
    ):
        raise ValueError(
            f"`images` must be uint8 or float; received dtype {images.dtype}."
        )
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(
            "`images` must hold raw pixel values in [0, 255]; received "
            f"values in [{images.min()}, {images.max()}]."
        )
    if np.issubdtype(images.dtype, np.floating) and images.max() <= 1.0:
        warnings.warn(
            "`images` are float with values in [0, 1]; keras_ssl expects "
            "raw pixels in [0, 255]. Multiply by 255 if they were rescaled.",
            stacklevel=3,
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            "`labels` must be integer class ids of shape [N]; received shape "
            f"{labels.shape}. For one-hot labels pass `labels.argmax(-1)`."
        )
    if len(labels) != len(images):
        raise ValueError(
            f"`images` and `labels` have different lengths: {len(images)} "
            f"images and {len(labels)} labels. Pass one label per image."
        )
    if len(labels) == 0:
        raise ValueError("`images` and `labels` are empty.")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError(
                "`labels` must be integer class ids; received non-integer "
                f"values of dtype {labels.dtype}."
            )
    labels = labels.astype("int32")
    if labels.min() < 0:
        raise ValueError(
            "`labels` must be class ids >= 0; received a label of "
            f"{labels.min()}."
        )
    if class_names is not None and labels.max() >= len(class_names):
        raise ValueError(
            f"`labels` are out of range: the largest label is {labels.max()} "
            f"but there are {len(class_names)} class names, so labels must "
            f"be in [0, {len(class_names) - 1}]."
        )
    return images, labels


def array_source(
    images,
    labels,
    split,
    validation_fraction,
    split_seed,
    class_names=None,
    name="arrays",
    kind="arrays",
):
    images, labels = check_arrays(images, labels, class_names)
    if validation_fraction > 0.0 or split == "validation":
        where = "The sample" if kind == "sample" else "An array spec"
        indices = select_holdout(
            split, labels, validation_fraction, split_seed, where
        )
        images, labels = images[indices], labels[indices]
    if class_names is not None:
        num_classes = len(class_names)
    else:
        num_classes = int(labels.max()) + 1
    info = DatasetInfo(
        name=name,
        kind=kind,
        split=split,
        class_names=None if class_names is None else list(class_names),
        num_classes=num_classes,
        num_examples=len(labels),
    )
    return Source(
        dataset=tf.data.Dataset.from_tensor_slices((images, labels)),
        decode=lambda image: tf.cast(image, tf.float32),
        image_shape=tuple(images.shape[1:3]),
        info=info,
    )


def sample_source(split, validation_fraction, split_seed):
    sample_split = "test" if split == "test" else "train"
    images, labels, class_names = sample.load_sample(
        sample_split, with_class_names=True
    )
    return array_source(
        images,
        labels,
        split,
        # The holdout comes from the train images; test is kept whole.
        0.0 if split == "test" else validation_fraction,
        split_seed,
        class_names=class_names,
        name=sample.SAMPLE_NAMES[1],
        kind="sample",
    )


# -- image folders -----------------------------------------------------------


def _subfolders(path):
    return sorted(
        entry.name
        for entry in os.scandir(path)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def _image_files(path):
    return sorted(
        os.path.join(path, entry.name)
        for entry in os.scandir(path)
        if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _list_images(folder, class_names):
    files, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(folder, class_name)
        if os.path.isdir(class_dir):
            class_files = _image_files(class_dir)
            files.extend(class_files)
            labels.extend([label] * len(class_files))
    return files, np.asarray(labels, dtype="int32")


def folder_source(root, split, image_size, validation_fraction, split_seed):
    root = os.path.expanduser(str(root))
    where = f"Image folder {root!r}"
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{where} does not exist or is not a folder. Pass "
            f"an existing folder laid out as {FOLDER_LAYOUTS}."
        )
    subfolders = _subfolders(root)
    # A split folder is one named like a split that itself holds folders.
    split_dirs = {}
    for folder in subfolders:
        if folder in SPLIT_FOLDERS and _subfolders(os.path.join(root, folder)):
            split_dirs[SPLIT_FOLDERS[folder]] = os.path.join(root, folder)

    if split_dirs:
        # The union of class folders over splits keeps label ids identical
        # between splits even if one split misses a class.
        class_names = sorted(
            {name for path in split_dirs.values() for name in _subfolders(path)}
        )
        if split in split_dirs:
            if validation_fraction > 0.0 and "validation" in split_dirs:
                raise ValueError(
                    f"{root!r} has its own validation folder; leave "
                    "`validation_fraction` at 0."
                )
            files, labels = _list_images(split_dirs[split], class_names)
            if split == "train" and validation_fraction > 0.0:
                indices = select_holdout(
                    split, labels, validation_fraction, split_seed, where
                )
                files = [files[i] for i in indices]
                labels = labels[indices]
        elif split == "validation" and "train" in split_dirs:
            files, labels = _list_images(split_dirs["train"], class_names)
            indices = select_holdout(
                split, labels, validation_fraction, split_seed, where
            )
            files = [files[i] for i in indices]
            labels = labels[indices]
        else:
            raise ValueError(
                f"{where} has no split {split!r}; its split "
                f"folders are {sorted(split_dirs)}."
            )
    else:
        class_names = subfolders
        if not class_names:
            raise ValueError(
                f"{where} has no class folders. Put the images "
                f"in one subfolder per class: {FOLDER_LAYOUTS}."
            )
        files, labels = _list_images(root, class_names)
        indices = select_holdout(
            split, labels, validation_fraction, split_seed, where
        )
        files = [files[i] for i in indices]
        labels = labels[indices]

    if not files:
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found for split "
            f"{split!r} in the class folders of {root!r}; expected "
            f"{FOLDER_LAYOUTS}."
        )

    image_shape = image_size
    if image_size is None:
        # Batching needs one size: take the first image's and check the rest
        # while decoding (reading every header up front would be slow).
        first = tf.io.decode_image(
            tf.io.read_file(files[0]), channels=3, expand_animations=False
        )
        image_shape = tuple(first.shape[:2])
    size_message = (
        f"Images in {root!r} have different sizes (the first is "
        f"{image_shape[0]}x{image_shape[1]}); pass "
        "`image_size=(height, width)` to resize them to one size."
    )

    def decode(path):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
        if image_size is None:
            # The dependency makes this check fail before the later
            # `ensure_shape`, whose error would not name the fix.
            check = tf.debugging.assert_equal(
                tf.shape(image)[:2], image_shape, message=size_message
            )
            with tf.control_dependencies([check]):
                image = tf.identity(image)
        return tf.cast(image, tf.float32)

    info = DatasetInfo(
        name=root,
        kind="folder",
        split=split,
        class_names=class_names,
        num_classes=len(class_names),
        num_examples=len(files),
    )
    return Source(
        dataset=tf.data.Dataset.from_tensor_slices((files, labels)),
        decode=decode,
        image_shape=image_shape,
        info=info,
    )


# -- TensorFlow Datasets -----------------------------------------------------


def _unknown_name_error(name):
    import tensorflow_datasets as tfds

    base = name.split("/")[0].split(":")[0]
    close = difflib.get_close_matches(
        base, tfds.list_builders(with_community_datasets=False), n=3
    )
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown dataset {name!r}: it is neither a TFDS dataset name nor "
        f"an existing folder.{hint} Pass a TFDS image-classification name "
        "(see `tfds.list_builders()`), the path of an image folder, "
        "`(images, labels)` arrays or 'sample'."
    )


def _tfds_split(builder, name, split, validation_fraction):
    """Maps our split name to a TFDS split string."""
    splits = builder.info.splits
    holdout = validation_fraction > 0.0 and "train" in splits
    if holdout and split in ("train", "validation"):
        if "validation" in splits:
            raise ValueError(
                f"TFDS dataset {name!r} has its own validation split; leave "
                "`validation_fraction` at 0."
            )
        # TFDS slices by example index, so the holdout is deterministic (it
        # is not stratified: TFDS cannot slice by label without a full read).
        num_train = splits["train"].num_examples
        cut = num_train - max(1, int(round(num_train * validation_fraction)))
        return f"train[:{cut}]" if split == "train" else f"train[{cut}:]"
    if split in splits or any(c in split for c in "[+"):
        return split
    hint = ""
    if split == "validation":
        hint = (
            " Pass `validation_fraction` (e.g. 0.1) to hold out part of "
            "'train'."
        )
    raise ValueError(
        f"TFDS dataset {name!r} has no split {split!r}; its splits are "
        f"{sorted(splits)}.{hint}"
    )


def tfds_source(name, split, data_dir, download, validation_fraction, seed):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise _unknown_name_error(name) from None

    fix = (
        f"Prepare it on a machine with internet access (`tfds.builder("
        f"{name!r}).download_and_prepare()`) and pass its data directory as "
        "`data_dir`, or save the images as an image folder and pass its "
        "path instead."
    )
    if not builder.is_prepared():
        if not download:
            raise RuntimeError(
                f"TFDS dataset {name!r} is not prepared in "
                f"{builder.data_dir!r} and `download=False`. {fix}"
            )
        try:
            builder.download_and_prepare()
        except Exception as error:
            raise RuntimeError(
                f"TFDS dataset {name!r} is not prepared in "
                f"{builder.data_dir!r} and could not be downloaded and "
                f"prepared ({type(error).__name__}: {error}). {fix}"
            ) from error

    features = builder.info.features
    label_feature = features["label"] if "label" in features else None
    if builder.info.supervised_keys != ("image", "label") or not isinstance(
        label_feature, tfds.features.ClassLabel
    ):
        raise ValueError(
            f"TFDS dataset {name!r} is not an image-classification dataset "
            "with `image` and `label` features (its supervised keys are "
            f"{builder.info.supervised_keys})."
        )
    image_feature_shape = tuple(features["image"].shape)
    channels = image_feature_shape[-1]
    if channels != 1:
        check_image_shape(
            (None,) + image_feature_shape, 3, name=f"TFDS {name!r} images"
        )

    tfds_split = _tfds_split(builder, name, split, validation_fraction)
    dataset = tfds.load(
        name,
        split=tfds_split,
        data_dir=data_dir,
        as_supervised=True,
        download=False,
        shuffle_files=split == "train",
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )

    def decode(image):
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        return tf.cast(image, tf.float32)

    image_shape = image_feature_shape[:2]
    info = DatasetInfo(
        name=name,
        kind="tfds",
        split=split,
        class_names=list(label_feature.names),
        num_classes=label_feature.num_classes,
        num_examples=builder.info.splits[tfds_split].num_examples,
    )
    return Source(
        dataset=dataset.map(
            lambda image, label: (image, tf.cast(label, tf.int32))
        ),
        decode=decode,
        image_shape=None if None in image_shape else image_shape,
        info=info,
    )


# -- dispatch ----------------------------------------------------------------


def resolve_source(
    spec, split, image_size, validation_fraction, split_seed, data_dir,
    download, seed,
):
    """Builds the `Source` of any supported `spec`."""
    check_validation_fraction(validation_fraction)
    split = canonical_split(split)
    if isinstance(spec, dict):
        missing = {"images", "labels"} - set(spec)
        if missing:
            raise ValueError(
                "A dict spec needs the keys 'images' and 'labels' (and "
                f"optionally 'class_names'); missing {sorted(missing)}."
            )
        return array_source(
            spec["images"],
            spec["labels"],
            split,
            validation_fraction,
            split_seed,
            class_names=spec.get("class_names"),
        )
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(
                "An array spec must be a pair `(images, labels)`; received "
                f"a {type(spec).__name__} of length {len(spec)}."
            )
        return array_source(
            spec[0], spec[1], split, validation_fraction, split_seed
        )
    if isinstance(spec, os.PathLike):
        return folder_source(
            spec, split, image_size, validation_fraction, split_seed
        )
    if not isinstance(spec, str):
        raise TypeError(
            "`spec` must be a TFDS name, an image-folder path, "
            "`(images, labels)` arrays, a dict of them or 'sample'; "
            f"received {type(spec).__name__}."
        )
    if spec in sample.SAMPLE_NAMES:
        return sample_source(split, validation_fraction, split_seed)
    if os.path.exists(os.path.expanduser(spec)):
        return folder_source(
            spec, split, image_size, validation_fraction, split_seed
        )
    # Not a folder: a TFDS name (which may hold '/' for a config), unless it
    # is clearly a path.
    looks_like_path = spec.startswith((".", "~", os.sep)) or (
        "/" in spec and not _is_tfds_name(spec)
    )
    if looks_like_path:
        return folder_source(
            spec, split, image_size, validation_fraction, split_seed
        )
    return tfds_source(
        spec, split, data_dir, download, validation_fraction, seed
    )


def _is_tfds_name(spec):
    import tensorflow_datasets as tfds

    base = spec.split("/")[0].split(":")[0]
    return base in tfds.list_builders(with_community_datasets=False)

