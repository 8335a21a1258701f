import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_ssl import data

CLASS_NAMES = ["cat", "dog", "emu"]


class KerasSslTinyImages(tfds.core.GeneratorBasedBuilder):
    """A tiny TFDS builder prepared offline, for the real TFDS code path."""

    VERSION = tfds.core.Version("1.0.0")
    # No code path: TFDS then skips looking for a checksums file beside this
    # module (which needs the optional `importlib_resources` package).
    code_path = None

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(16, 16, 3)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(12),
            "test": self._generate_examples(6),
        }

    def _generate_examples(self, count):
        rng = np.random.default_rng(count)
        for index in range(count):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            yield index, {"image": image, "label": index % 3}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = tfds.builder("keras_ssl_tiny_images", data_dir=data_dir)
    builder.download_and_prepare()
    return data_dir


def write_images(folder, per_class, size=(16, 16), extension="png"):
    rng = np.random.default_rng(0)
    for class_name in CLASS_NAMES:
        os.makedirs(os.path.join(folder, class_name), exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            if extension == "png":
                encoded = tf.io.encode_png(image)
            else:
                encoded = tf.io.encode_jpeg(image)
            path = os.path.join(folder, class_name, f"{index}.{extension}")
            tf.io.write_file(path, encoded)


@pytest.fixture
def flat_folder(tmp_path):
    write_images(str(tmp_path / "flat"), per_class=10)
    return str(tmp_path / "flat")


@pytest.fixture
def split_folder(tmp_path):
    root = tmp_path / "split"
    write_images(str(root / "train"), per_class=4, extension="jpg")
    write_images(str(root / "test"), per_class=2)
    return str(root)


def arrays(count=12, size=16):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    labels = np.arange(count) % 3
    return images, labels


def check_batch(batch, batch_size, size=16):
    images, labels = batch
    assert images.shape == (batch_size, size, size, 3)
    assert images.dtype == tf.float32
    assert labels.shape == (batch_size,)
    assert labels.dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(images))
    assert float(tf.reduce_max(images)) <= 255.0
    assert float(tf.reduce_max(images)) > 1.0  # raw pixels, not rescaled


def all_labels(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


# -- every kind of spec gives the same batches --------------------------------


def test_tfds_spec(tfds_dir):
    ds, info = data.load_dataset(
        "keras_ssl_tiny_images",
        batch_size=4,
        data_dir=tfds_dir,
        download=False,
        with_info=True,
    )
    check_batch(next(iter(ds)), 4)
    assert info.kind == "tfds"
    assert info.class_names == CLASS_NAMES
    assert info.num_examples == 12
    test = data.load_dataset(
        "keras_ssl_tiny_images", split="test", data_dir=tfds_dir
    )
    assert sorted(all_labels(test)) == [0, 0, 1, 1, 2, 2]


def test_tfds_validation_fraction_slices_train(tfds_dir):
    kwargs = dict(data_dir=tfds_dir, validation_fraction=0.25, with_info=True)
    _, train = data.load_dataset("keras_ssl_tiny_images", **kwargs)
    _, val = data.load_dataset(
        "keras_ssl_tiny_images", split="validation", **kwargs
    )
    assert (train.num_examples, val.num_examples) == (9, 3)


def test_flat_folder_spec(flat_folder):
    ds, info = data.load_dataset(flat_folder, batch_size=4, with_info=True)
    check_batch(next(iter(ds)), 4)
    assert info.class_names == CLASS_NAMES
    assert info.num_examples == 30
    assert sorted(set(all_labels(ds))) == [0, 1, 2]


def test_split_folder_spec_and_resize(split_folder):
    ds, info = data.load_dataset(
        split_folder, split="test", batch_size=6, image_size=8, with_info=True
    )
    check_batch(next(iter(ds)), 6, size=8)
    assert info.num_examples == 6
    assert info.class_names == CLASS_NAMES


def test_array_specs():
    images, labels = arrays()
    ds = data.load_dataset((images, labels), batch_size=4)
    check_batch(next(iter(ds)), 4)
    as_float = {"images": images.astype("float32"), "labels": labels}
    check_batch(next(iter(data.load_dataset(as_float, batch_size=4))), 4)


def test_folder_validation_split_is_stratified_and_disjoint(flat_folder):
    def load(split):
        _, info = data.load_dataset(
            flat_folder, split=split, validation_fraction=0.2, with_info=True
        )
        ds = data.load_dataset(
            flat_folder,
            split=split,
            validation_fraction=0.2,
            shuffle=False,
            batch_size=100,
        )
        return info, all_labels(ds)

    train_info, train_labels = load("train")
    val_info, val_labels = load("validation")
    assert (train_info.num_examples, val_info.num_examples) == (24, 6)
    assert np.bincount(val_labels).tolist() == [2, 2, 2]
    assert np.bincount(train_labels).tolist() == [8, 8, 8]


def test_holdout_is_disjoint_and_deterministic():
    from keras_ssl.data.sources import holdout_mask

    labels = np.repeat(np.arange(4), 25)
    mask = holdout_mask(labels, 0.2, split_seed=3)
    np.testing.assert_array_equal(mask, holdout_mask(labels, 0.2, 3))
    assert np.bincount(labels[mask]).tolist() == [5, 5, 5, 5]
    assert not np.array_equal(mask, holdout_mask(labels, 0.2, 4))


def test_shuffle_with_seed_is_reproducible():
    spec = arrays(count=30)

    def first_labels():
        ds = data.load_dataset(spec, batch_size=30, seed=7)
        return all_labels(ds)

    np.testing.assert_array_equal(first_labels(), first_labels())
    unshuffled = data.load_dataset(spec, batch_size=30, shuffle=False)
    np.testing.assert_array_equal(all_labels(unshuffled), spec[1])


# -- augmentation -------------------------------------------------------------


@pytest.mark.parametrize("augment", ["default", "cifar"])
def test_augmentations_keep_shape_and_range(augment):
    ds = data.load_dataset(arrays(), batch_size=12, augment=augment, seed=0)
    images, _ = next(iter(ds))
    check_batch((images, tf.zeros([12], tf.int32)), 12)
    plain, _ = next(iter(data.load_dataset(arrays(), batch_size=12, seed=0)))
    assert not np.allclose(images.numpy(), plain.numpy())


def test_random_resized_crop_sizes_and_fallback():
    image = tf.random.uniform([40, 30, 3], 0, 255)
    crop = data.random_resized_crop(image, tf.constant([1, 2]), size=(8, 12))
    assert crop.shape == (8, 12, 3)
    # An impossible area range forces torchvision's central-crop fallback,
    # here clamped to the 4:3 ratio of a very wide image.
    wide = tf.random.uniform([10, 100, 3], 0, 255)
    crop = data.random_resized_crop(
        wide, tf.constant([1, 2]), size=10, scale=(2.0, 3.0)
    )
    assert crop.shape == (10, 10, 3)


def test_pad_and_crop_shifts_by_at_most_padding():
    image = tf.ones([8, 8, 3])
    shifted = data.pad_and_crop(image, tf.constant([3, 4]), padding=4)
    assert shifted.shape == (8, 8, 3)
    # At most 4 rows and 4 columns of zeros come in from the padding.
    assert float(tf.reduce_sum(shifted[..., 0])) >= 16.0


def test_callable_augment_with_and_without_seed():
    def with_seed(image, seed):
        return tf.image.stateless_random_flip_up_down(image, seed)

    for augment in (with_seed, lambda image: 255.0 - image):
        ds = data.load_dataset(arrays(), batch_size=4, augment=augment)
        check_batch(next(iter(ds)), 4)


def test_num_views_are_independent():
    ds = data.load_dataset(
        arrays(), batch_size=6, augment="default", num_views=3, seed=0
    )
    views, labels = next(iter(ds))
    assert len(views) == 3
    for view in views:
        check_batch((view, labels), 6)
    assert not np.allclose(views[0].numpy(), views[1].numpy())


def test_multi_crop_views():
    augment = data.multi_crop(16, 8, num_global=2, num_local=3)
    ds = data.load_dataset(arrays(), batch_size=4, augment=augment)
    views, _ = next(iter(ds))
    shapes = [tuple(view.shape) for view in views]
    assert shapes == [(4, 16, 16, 3)] * 2 + [(4, 8, 8, 3)] * 3


# -- bundled sample -----------------------------------------------------------


def test_bundled_sample():
    images, labels, class_names = data.load_sample(
        "train", with_class_names=True
    )
    assert images.shape == (1500, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [150] * 10
    assert class_names[0] == "airplane" and class_names[-1] == "truck"
    test_images, _ = data.load_sample("test")
    assert test_images.shape == (300, 32, 32, 3)
    ds, info = data.load_dataset(
        "sample", split="test", batch_size=8, with_info=True
    )
    check_batch(next(iter(ds)), 8, size=32)
    assert info.num_classes == 10 and info.num_examples == 300


@pytest.mark.multibackend
def test_batches_run_through_keras_model():
    import keras

    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    ds = data.load_dataset(arrays(), batch_size=4, augment="cifar")
    history = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# -- clear errors -------------------------------------------------------------


def test_unknown_tfds_name_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean cifar10"):
        data.load_dataset("cifar_10")


def test_unprepared_tfds_dataset(tmp_path):
    with pytest.raises(RuntimeError, match="not prepared.*data_dir"):
        data.load_dataset("cifar10", data_dir=str(tmp_path), download=False)


def test_tfds_unknown_split(tfds_dir):
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load_dataset(
            "keras_ssl_tiny_images", split="validation", data_dir=tfds_dir
        )


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("./no/such/folder")
    with pytest.raises(ValueError, match="no class folders"):
        data.load_dataset(tmp_path)
    os.makedirs(tmp_path / "cat")
    with pytest.raises(ValueError, match="No images"):
        data.load_dataset(tmp_path)


def test_folder_unsupported_splits(flat_folder, split_folder):
    with pytest.raises(ValueError, match="has no split 'test'"):
        data.load_dataset(flat_folder, split="test")
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load_dataset(flat_folder, split="validation")
    with pytest.raises(ValueError, match="split folders are"):
        data.load_dataset(split_folder, split="unlabelled")


def test_folder_of_mixed_sizes_needs_image_size(tmp_path):
    write_images(str(tmp_path / "a"), per_class=1, size=(16, 16))
    write_images(str(tmp_path / "b"), per_class=1, size=(12, 20))
    ds = data.load_dataset(str(tmp_path / "a"), batch_size=6)
    check_batch(next(iter(ds)), 3)
    os.rename(
        tmp_path / "b" / "cat" / "0.png", tmp_path / "a" / "cat" / "1.png"
    )
    ds = data.load_dataset(str(tmp_path / "a"), shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_size"):
        next(iter(ds))
    ds = data.load_dataset(str(tmp_path / "a"), image_size=(10, 10))
    check_batch(next(iter(ds)), 4, size=10)


def test_bad_arrays():
    images, labels = arrays()
    with pytest.raises(ValueError, match="different lengths"):
        data.load_dataset((images, labels[:5]))
    with pytest.raises(ValueError, match="argmax"):
        data.load_dataset((images, np.eye(3)[labels]))
    with pytest.raises(ValueError, match="out of range"):
        data.load_dataset(
            {"images": images, "labels": labels, "class_names": ["a", "b"]}
        )
    with pytest.raises(ValueError, match=">= 0"):
        data.load_dataset((images, labels - 1))
    with pytest.raises(ValueError, match="batch axis"):
        data.load_dataset((images[0], labels[:1]))
    with pytest.raises(ValueError, match="channels-first"):
        data.load_dataset((np.zeros((4, 3, 8, 8)), labels[:4]))
    with pytest.raises(ValueError, match="missing"):
        data.load_dataset({"images": images})


def test_bad_options():
    with pytest.raises(ValueError, match="needs `augment`"):
        data.load_dataset("sample", num_views=2)
    with pytest.raises(ValueError, match="`augment` must be"):
        data.load_dataset("sample", augment="strong")
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load_dataset("sample", validation_fraction=1.5)
    with pytest.raises(ValueError, match="leave `num_views=1`"):
        data.load_dataset(
            "sample", augment=data.multi_crop(16, 8), num_views=2
        )


def test_drop_remainder_says_how_many_images_it_drops(caplog):
    images = np.zeros((10, 8, 8, 3), "uint8")
    labels = np.arange(10) % 2
    with caplog.at_level("WARNING", logger="keras_ssl.data"):
        dataset = data.load_dataset((images, labels), batch_size=4, drop_remainder=True)
    assert sum(len(batch) for batch, _ in dataset) == 8
    assert "10 images in batches of 4; the last 2 of each epoch are dropped" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="keras_ssl.data"):
        data.load_dataset((images, labels), batch_size=5, drop_remainder=True)
    assert "dropped" not in caplog.text
