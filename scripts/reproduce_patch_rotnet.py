"""Reproduces Table 1 of Patch RotNet / Patch RelNet at CPU scale.

Pham et al., "Self-supervised learning with local attention-aware
feature". Pretrains RotNet, Patch RotNet and Patch RelNet without labels on
the same images with the same budget (images x epochs, batch 64 as in the
paper) on a ResNet-8 (the paper's shallow backbone), then evaluates each
encoder next to a randomly initialised one and a supervised one:

- linear: the frozen encoder's features -> a linear classifier, and the
  paper's two fully connected layers (100 epochs, batch 32);
- tuned: the encoder + two fully connected layers fine-tuned (20 epochs,
  batch 32);
- k-NN: weighted k-NN (k=20, T=0.07) on the frozen features.

Rows are appended to a JSON file as they finish, so an interrupted run
keeps what it measured; the markdown table is printed at the end.

Example (the run in docs/patch_rotnet_reproduction.md):

```
nice -n 19 python scripts/reproduce_patch_rotnet.py \
    --data /work/shared/data/cifar10 --pretrain-images 3000 --epochs 6 \
    --labelled-images 2000 --test-images 2000 --output runs/patch_rotnet.json
python scripts/reproduce_patch_rotnet.py --quick  # bundled sample, minutes
```
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

from keras_ssl.data import load_dataset
from keras_ssl.evaluation import extract_features
from keras_ssl.evaluation import fine_tune
from keras_ssl.evaluation import knn_classify
from keras_ssl.evaluation import linear_probe
from keras_ssl.methods import PatchRelNet
from keras_ssl.methods import PatchRotNet
from keras_ssl.methods import RotNet
from keras_ssl.methods import Supervised
from keras_ssl.models import ResNetBackbone

METHODS = {"rotnet": RotNet, "patch_relnet": PatchRelNet, "patch_rotnet": PatchRotNet}
LABELS = {
    "supervised": "Supervised",
    "random": "Random weight",
    "rotnet": "RotNet",
    "patch_relnet": "Patch RelNet {ratio}",
    "patch_rotnet": "Patch RotNet {ratio}",
}


def load_arrays(data, split, count, seed):
    """`count` shuffled images and labels of a split, as numpy arrays."""
    dataset = load_dataset(
        data, split=split, batch_size=500, shuffle=True, seed=seed,
        image_size=32,
    )
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def new_backbone(seed):
    keras.utils.set_random_seed(seed)
    return ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))


def pretrain(name, args, images, labels):
    """Trains a backbone with a method; returns it and the seconds taken."""
    backbone = new_backbone(args.seed)
    data = load_dataset(
        (images, labels), batch_size=args.batch_size, augment="cifar",
        seed=args.seed,
    )
    if name == "supervised":
        model = Supervised(backbone, num_classes=10)
    elif name == "rotnet":
        model = RotNet(backbone)
    else:
        model = METHODS[name](backbone, patch_ratio=args.patch_ratio, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    start = time.time()
    history = model.fit(data, epochs=args.epochs, verbose=args.verbose)
    seconds = time.time() - start
    return model.backbone, seconds, {
        key: float(values[-1]) for key, values in history.history.items()
    }


def evaluate(backbone, args, labelled, test):
    train_features, train_labels = extract_features(backbone, labelled, verbose=0)
    test_features, test_labels = extract_features(backbone, test, verbose=0)
    row = {}
    for head in ("linear", "two_fc"):
        row[f"linear_{head}"] = linear_probe(
            train_features, train_labels, test_features, test_labels,
            num_classes=10, head=head, epochs=args.linear_epochs,
            seed=args.seed,
        ).accuracy
    predictions = knn_classify(
        train_features, train_labels, test_features, k=args.k, num_classes=10
    )
    row["knn"] = float(np.mean(predictions == test_labels))
    train_data = load_dataset(
        labelled, batch_size=32, augment="cifar", seed=args.seed
    )
    row["tuned"] = fine_tune(
        backbone, train_data, test, num_classes=10, head="two_fc",
        epochs=args.finetune_epochs, seed=args.seed,
    ).accuracy
    return row


def markdown(rows, args):
    lines = [
        "| Method | Linear (1 FC) | Linear (2 FC) | Tuned (2 FC) | k-NN (k="
        f"{args.k}) | Pretext acc. | Pretrain s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        label = LABELS[row["method"]].format(ratio=args.patch_ratio)
        pretext = row.get("final_train_metrics", {}).get("accuracy")
        cells = [
            label,
            *(
                f"{100 * row[key]:.2f}" if key in row else "-"
                for key in ("linear_linear", "linear_two_fc", "tuned", "knn")
            ),
            "-" if pretext is None else f"{100 * pretext:.1f}",
            f"{row.get('pretrain_seconds', 0):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", default="sample",
                        help="CIFAR-10 image folder (e.g. /work/shared/data/"
                             "cifar10), TFDS name or 'sample'.")
    parser.add_argument("--pretrain-images", type=int, default=3000,
                        help="Unlabelled training images for pretraining.")
    parser.add_argument("--labelled-images", type=int, default=2000,
                        help="Labelled training images for the evaluations "
                             "(a subset of the pretraining images).")
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6,
                        help="Pretraining epochs, the same for every method "
                             "(the paper: 200).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patch-ratio", type=float, default=0.4)
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rows", nargs="+",
        default=["random", "supervised", "rotnet", "patch_relnet", "patch_rotnet"],
        choices=list(LABELS),
    )
    parser.add_argument("--output", default="runs/reproduce_patch_rotnet.json")
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="Smoke run on the bundled sample: 500 images, "
                             "1 epoch, short evaluations.")
    args = parser.parse_args(argv)
    if args.quick:
        args.pretrain_images, args.labelled_images, args.test_images = 500, 500, 300
        args.epochs, args.linear_epochs, args.finetune_epochs = 1, 5, 1
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    images, labels = load_arrays(args.data, "train", args.pretrain_images, args.seed)
    labelled = (images[: args.labelled_images], labels[: args.labelled_images])
    test = load_arrays(args.data, "test", args.test_images, args.seed)
    report = {
        "command": "python scripts/reproduce_patch_rotnet.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "backend": keras.backend.backend(),
        "arguments": vars(args),
        "rows": [],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    for name in args.rows:
        print(f"[reproduce] {name}", flush=True)
        row = {"method": name}
        if name == "random":
            backbone = new_backbone(args.seed)
        else:
            backbone, row["pretrain_seconds"], row["final_train_metrics"] = (
                pretrain(name, args, images, labels)
            )
        row.update(evaluate(backbone, args, labelled, test))
        print(f"[reproduce] {name}: {row}", flush=True)
        report["rows"].append(row)
        report["wall_seconds"] = time.time() - started
        with open(args.output, "w") as file:
            json.dump(report, file, indent=2)
    table = markdown(report["rows"], args)
    print(table)
    return report


if __name__ == "__main__":
    main()
