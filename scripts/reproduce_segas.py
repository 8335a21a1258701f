"""Reproduces SegAS's Table 1 (complete vs occluded linear top-1) at CPU scale.

Bai et al. 2024, "Attention Shifting to Pursue Optimal Representation for
Adapting Multi-granularity Tasks". Pretrains MoCo v2, SegAS without ApFS
and full SegAS without labels with the same budget, data order and seeds,
then evaluates each frozen encoder, next to a randomly initialised one,
with `keras_ssl.evaluation.occlusion_robustness`: a linear classifier on
the complete training features, tested on complete, randomly occluded
(25 % of the image) and attention-occluded test images (thresholds
0.4-1.0, the paper's Figure 3).

Resumable: finished (method, seed) rows are kept in the JSON output and
skipped on a rerun; an interrupted pretraining resumes from its
`BackupAndRestore` checkpoint under `--run-dir`.

CPU scale (CIFAR-10, ResNet-20, 32x32):

```
nice -n 19 python scripts/reproduce_segas.py --data /work/shared/data/cifar10 \\
    --pretrain-images 10000 --epochs 30 --seeds 0 1 --output runs/segas.json
python scripts/reproduce_segas.py --quick  # bundled sample, minutes
python scripts/reproduce_segas.py --print-paper-recipe
```

The paper's recipe (ResNet-50, ImageNet-100, 200 epochs, 4 GPUs) is
`PAPER_RECIPE`; `--recipe paper --data <imagenet100 folder>` runs it (under
a `tf.distribute.MirroredStrategy` on the visible GPUs with TensorFlow).
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

from keras_ssl.data import MoCoV2Augment
from keras_ssl.data import SegASViews
from keras_ssl.data import load_dataset
from keras_ssl.evaluation import occlusion_robustness
from keras_ssl.methods import MoCoV2
from keras_ssl.methods import SegAS
from keras_ssl.models import ResNetBackbone

ROWS = ("random", "moco_v2", "segas_without_apfs", "segas")
LABELS = {
    "random": "Random init",
    "moco_v2": "MoCo v2",
    "segas_without_apfs": "SegAS w/o ApFS",
    "segas": "SegAS",
}
# The paper's Table 1 (ImageNet-100, 200 epochs): complete, occluded.
PAPER = {"moco_v2": (78.0, 70.76), "segas_without_apfs": (82.23, 78.94), "segas": (83.94, 83.21)}
CPU_RECIPE = dict(
    depth=20, image_size=32, batch_size=128, learning_rate=0.06,
    queue_size=4096, num_prototypes=(1000, 100, 10), blur_probability=0.0,
)
# Section 4.1: SGD (momentum 0.9, weight decay 1e-4), tau 0.2, 200 epochs.
# The batch, learning rate and queue are MoCo v2's ImageNet ones; the
# prototypes are the paper's ImageNet-1k levels scaled to ImageNet-100's
# ~126k images (our choice; the paper does not give them).
PAPER_RECIPE = dict(
    depth=50, image_size=224, batch_size=256, learning_rate=0.03,
    queue_size=65536, num_prototypes=(3000, 1000, 100), blur_probability=0.5,
    epochs=200,
)


def load_arrays(data, split, count, seed, image_size):
    """`count` shuffled images and labels of a split, as numpy arrays."""
    dataset = load_dataset(
        data, split=split, batch_size=500, shuffle=True, seed=seed,
        image_size=image_size,
    )
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def new_backbone(args, seed):
    keras.utils.set_random_seed(seed)
    shape = (args.image_size, args.image_size, 3)
    if args.depth in (18, 34, 50, 101):
        return ResNetBackbone.imagenet(depth=args.depth, image_shape=shape)
    return ResNetBackbone.cifar(depth=args.depth, image_shape=shape)


def pretrain(name, args, images, labels, seed):
    """Pretrains one method; returns the backbone, seconds and last metrics."""
    backbone = new_backbone(args, seed)
    if name == "moco_v2":
        augment, num_views = MoCoV2Augment(args.image_size, blur_probability=args.blur_probability), 2
    else:
        augment, num_views = SegASViews(args.image_size, blur_probability=args.blur_probability), 1
    # The same seed gives every method the same image order.
    data = load_dataset(
        (images, labels), batch_size=args.batch_size, augment=augment,
        num_views=num_views, seed=seed, drop_remainder=True,
    )
    common = dict(queue_size=args.queue_size, seed=seed)
    if name == "moco_v2":
        model = MoCoV2(backbone, **common)
    else:
        model = SegAS(
            backbone, num_prototypes=args.num_prototypes,
            memory_size=len(images), use_apfs=name == "segas", **common,
        )
    steps = args.epochs * (len(images) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=1e-4)
    )
    side = args.image_size
    zeros = np.zeros((1, side, side, 3), "float32")
    model((zeros, zeros))  # built weights for BackupAndRestore
    backup = os.path.join(args.run_dir, f"{name}_seed{seed}", "backup")
    start = time.time()
    history = model.fit(
        data, epochs=args.epochs, verbose=args.verbose,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )
    return model.backbone, time.time() - start, {
        key: float(values[-1]) for key, values in history.history.items()
    }


def markdown(rows):
    """Mean +- std over seeds per method, in points, next to the paper."""
    lines = [
        "| Method | complete | random occlusion | attention occl. @0.6 | paper (complete / occl.) |",
        "|---|--:|--:|--:|--:|",
    ]
    for name in ROWS:
        picked = [row for row in rows if row["method"] == name]
        if not picked:
            continue

        def cell(values):
            values = 100 * np.asarray(values)
            return f"{values.mean():.2f} ± {values.std():.2f}"

        paper = PAPER.get(name)
        lines.append(
            f"| {LABELS[name]} (n={len(picked)}) "
            f"| {cell([r['complete'] for r in picked])} "
            f"| {cell([r['random_occlusion'] for r in picked])} "
            f"| {cell([r['attention_occlusion']['0.6'] for r in picked])} "
            f"| {'%.2f / %.2f' % paper if paper else '-'} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/cifar10")
    parser.add_argument("--recipe", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--pretrain-images", type=int, default=10000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--output", default="runs/reproduce_segas.json")
    parser.add_argument("--run-dir", default="runs/reproduce_segas")
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="The bundled sample, 300 images, 1 epoch: a smoke run.")
    parser.add_argument("--print-paper-recipe", action="store_true")
    args = parser.parse_args(argv)
    recipe = PAPER_RECIPE if args.recipe == "paper" else CPU_RECIPE
    for key, value in recipe.items():
        if key != "epochs" or args.recipe == "paper":
            setattr(args, key, value)
    if args.quick:
        args.data, args.pretrain_images, args.test_images = "sample", 300, 100
        args.epochs, args.seeds, args.probe_epochs = 2, [0], 5
        args.depth, args.batch_size, args.num_prototypes = 8, 50, (30, 5)
        args.queue_size = 200
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.print_paper_recipe:
        print(json.dumps(PAPER_RECIPE, indent=2))
        return PAPER_RECIPE
    started = time.time()
    report = {"rows": []}
    if os.path.exists(args.output):
        with open(args.output) as file:
            report = json.load(file)
    report.update({
        "command": "python scripts/reproduce_segas.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "backend": keras.backend.backend(),
        "arguments": vars(args),
    })
    done = {(row["method"], row["seed"]) for row in report["rows"]}
    images, labels = load_arrays(args.data, "train", args.pretrain_images, 0, args.image_size)
    test = load_arrays(args.data, "test", args.test_images, 0, args.image_size)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    for seed in args.seeds:
        for name in args.rows:
            if (name, seed) in done:
                continue
            print(f"[reproduce] {name} seed {seed}", flush=True)
            row = {"method": name, "seed": seed}
            if name == "random":
                backbone = new_backbone(args, seed)
            else:
                backbone, row["pretrain_seconds"], row["final_train_metrics"] = (
                    pretrain(name, args, images, labels, seed)
                )
            result = occlusion_robustness(
                backbone, (images, labels), test, num_classes=10,
                epochs=args.probe_epochs, seed=seed,
            )
            # JSON keys are strings.
            result["attention_occlusion"] = {
                f"{k:g}": v for k, v in result["attention_occlusion"].items()
            }
            result["occluded_fraction"] = {
                f"{k:g}": v for k, v in result["occluded_fraction"].items()
            }
            row.update(result)
            print(f"[reproduce] {name} seed {seed}: {row}", flush=True)
            report["rows"].append(row)
            report["wall_seconds_this_run"] = time.time() - started
            with open(args.output, "w") as file:
                json.dump(report, file, indent=2)
    table = markdown(report["rows"])
    print(table)
    return report


if __name__ == "__main__":
    main()
