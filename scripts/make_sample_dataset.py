"""Builds the bundled CIFAR-10 sample (`keras_ssl/data/sample/*.npz`).

Takes a deterministic, stratified subset of a CIFAR-10 image folder laid out
as `<source>/{train,test}/<class>/*.jpg` (class folders sorted alphabetically
give the official label ids) and writes a compressed npz with `x_train`,
`y_train`, `x_test`, `y_test` (uint8 images `[N, 32, 32, 3]`, int32 labels),
`class_names` and a `source` note.

Example:

```
python scripts/make_sample_dataset.py --source ../shared/data/cifar10 \
    --train-per-class 150 --test-per-class 30 \
    --out keras_ssl/data/sample/cifar10_sample.npz
```
"""

import argparse
import os

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def select_split(split_dir, class_names, per_class, rng):
    """Decodes `per_class` randomly chosen images of every class."""
    images, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(split_dir, class_name)
        files = sorted(
            f
            for f in os.listdir(class_dir)
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if len(files) < per_class:
            raise ValueError(
                f"{class_dir} has {len(files)} images; {per_class} requested."
            )
        # Sorting the chosen indices keeps the file order stable and readable.
        chosen = np.sort(rng.choice(len(files), per_class, replace=False))
        for index in chosen:
            data = tf.io.read_file(os.path.join(class_dir, files[index]))
            image = tf.io.decode_image(
                data, channels=3, expand_animations=False
            )
            images.append(image.numpy())
            labels.append(label)
    return np.stack(images).astype("uint8"), np.asarray(labels, "int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="CIFAR-10 folder.")
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default="keras_ssl/data/sample/cifar10_sample.npz"
    )
    args = parser.parse_args(argv)

    class_names = sorted(os.listdir(os.path.join(args.source, "train")))
    rng = np.random.default_rng(args.seed)
    x_train, y_train = select_split(
        os.path.join(args.source, "train"),
        class_names,
        args.train_per_class,
        rng,
    )
    x_test, y_test = select_split(
        os.path.join(args.source, "test"),
        class_names,
        args.test_per_class,
        rng,
    )
    source = (
        "CIFAR-10 (Krizhevsky, 2009), JPEG re-encoded image folder; "
        f"stratified subset of {args.train_per_class} train and "
        f"{args.test_per_class} test images per class, seed {args.seed}."
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=np.asarray(class_names),
        source=np.asarray(source),
    )
    size_mb = os.path.getsize(args.out) / 2**20
    print(
        f"Wrote {args.out}: {len(x_train)} train + {len(x_test)} test "
        f"images, {size_mb:.2f} MB."
    )


if __name__ == "__main__":
    main()
