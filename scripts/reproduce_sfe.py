"""Reproduces SFE's comparison at CPU scale: baseline, SFE-SI/AG/SD, SLA.

Yang et al., "Self-supervised Feature Enhancement" (Tables 1-3): the same
backbone trained by plain supervision, by SFE (two joint classifiers after
the last two stages, K = 9, beta, self-distillation so that one run gives
SI, AG and SD) and by SLA (4 rotations, SI and AG), on the same data stream,
budget and seeds; top-1 accuracy as mean ± std over seeds.

The paper's recipe (CIFAR-100, ResNet-110, SGD lr 0.1, momentum 0.9, weight
decay 1e-4, batch 128, 300 epochs, lr x0.1 at epochs 150 and 225) is
`--depth 110 --epochs 300 --train-images 50000 --schedule step
--num-classes 100` on CIFAR-100 with a GPU.
The CPU default is a few thousand images per epoch for a few epochs with a
cosine schedule; each run is appended to the JSON file as it finishes, so a
stopped job keeps what it measured and `--table-only` rebuilds the table.

Table 3's cost (train-step time and memory of SFE and SLA as ratios to
the baseline, interleaved in one process) is measured by
`scripts/benchmark.py --models resnet20 resnet110 resnet18 --method sfe
sla`.

Example:

```
nice -n 19 python scripts/reproduce_sfe.py /work/shared/data/cifar10 \
    --depth 20 --epochs 10 --train-images 2560 --test-images 2000 --seeds 0 1 2
```
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np

from keras_ssl.data import load_dataset
from keras_ssl.methods import SFE
from keras_ssl.methods import SLA
from keras_ssl.methods import Supervised
from keras_ssl.models import ResNetBackbone

# Column -> (method, inference mode).
COLUMNS = {
    "Baseline": ("baseline", None),
    "SFE-SI": ("sfe", "si"),
    "SFE-AG": ("sfe", "ag"),
    "SFE-SD": ("sfe", "sd"),
    "SLA-SI": ("sla", "si"),
    "SLA-AG": ("sla", "ag"),
}


def build(method, depth, num_classes, beta):
    backbone = ResNetBackbone.cifar(depth=depth, image_shape=(32, 32, 3))
    if method == "baseline":
        return Supervised(backbone, num_classes)
    if method == "sfe":
        return SFE(backbone, num_classes, beta=beta, self_distillation=True)
    return SLA(backbone, num_classes)


def schedule(args, steps_per_epoch):
    total = steps_per_epoch * args.epochs
    if args.schedule == "step":
        # The paper's x0.1 at 50% and 75% of training.
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [total // 2, total * 3 // 4],
            [args.lr, args.lr * 0.1, args.lr * 0.01],
        )
    return keras.optimizers.schedules.CosineDecay(args.lr, total)


def test_arrays(path, count):
    """A fixed random subset of the test split as numpy arrays."""
    data = load_dataset(path, "test", batch_size=250, shuffle=True, seed=0)
    images, labels = [], []
    for batch_images, batch_labels in data.take(-(-count // 250)):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def run(method, seed, args, test_images, test_labels):
    keras.utils.set_random_seed(seed)
    train = load_dataset(
        args.data,
        "train",
        batch_size=args.batch_size,
        augment="cifar",
        seed=seed,
        repeat=True,
        drop_remainder=True,
    )
    steps_per_epoch = args.train_images // args.batch_size
    model = build(method, args.depth, args.num_classes, args.beta)
    model.compile(
        optimizer=keras.optimizers.SGD(
            schedule(args, steps_per_epoch),
            momentum=0.9,
            weight_decay=args.weight_decay,
        )
    )
    started = time.perf_counter()
    model.fit(
        train, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=2
    )
    train_time = time.perf_counter() - started
    accuracy = {}
    for column, (column_method, mode) in COLUMNS.items():
        if column_method != method:
            continue
        kwargs = {} if mode is None else {"inference": mode}
        logits = model.predict(test_images, batch_size=250, verbose=0, **kwargs)
        accuracy[column] = float(np.mean(logits.argmax(-1) == test_labels))
    return {
        "method": method,
        "seed": seed,
        "accuracy": accuracy,
        "train_time_s": train_time,
    }


def table(results, args_line):
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    cells = []
    for column in COLUMNS:
        values = [
            100 * r["accuracy"][column] for r in results if column in r["accuracy"]
        ]
        if not values:
            cells.append("not run")
        elif len(values) == 1:
            cells.append(f"{values[0]:.2f} (1 seed)")
        else:
            cells.append(
                f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
                f" ({len(values)} seeds)"
            )
    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| Seed | " + " | ".join(COLUMNS) + " |", "|---|" + "--:|" * len(COLUMNS)]
    for seed in sorted({r["seed"] for r in results}):
        accuracy = {}
        for r in results:
            if r["seed"] == seed:
                accuracy.update(r["accuracy"])
        lines.append(
            f"| {seed} | "
            + " | ".join(
                f"{100 * accuracy[c]:.2f}" if c in accuracy else "—" for c in COLUMNS
            )
            + " |"
        )
    times = {}
    for r in results:
        times.setdefault(r["method"], []).append(r["train_time_s"])
    lines += ["", "Training time per run (s, mean over seeds): " + ", ".join(
        f"{m} {statistics.mean(t):.0f}" for m, t in times.items()
    )]
    return "\n".join([f"Command: `{args_line}`", "", *lines])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "data", nargs="?", help="CIFAR-10 image folder or TFDS name."
    )
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--train-images", type=int, default=4096,
        help="Images per epoch, drawn from the shuffled training split.",
    )
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--methods", nargs="+", choices=["baseline", "sfe", "sla"],
        default=["baseline", "sfe", "sla"],
    )
    parser.add_argument("--out", default="sfe_reproduction.json")
    parser.add_argument(
        "--table-only", action="store_true",
        help="Print the table of the runs already in `--out`.",
    )
    args = parser.parse_args(argv)
    if args.data is None and not args.table_only:
        parser.error("the data path is required to train")
    return args


def main(argv=None):
    args = parse_args(argv)
    results = []
    args_line = "python scripts/reproduce_sfe.py " + " ".join(
        os.sys.argv[1:] if argv is None else argv
    )
    # What fixes a run's result; resuming must not mix configurations.
    setting = {
        key: getattr(args, key)
        for key in ("num_classes", "depth", "epochs", "train_images", "test_images",
                    "batch_size", "lr", "weight_decay", "schedule", "beta")
    }
    if os.path.exists(args.out):
        with open(args.out) as f:
            stored = json.load(f)
        results = stored["runs"]
        if args.table_only:
            args_line = stored["command"]
        elif stored.get("setting") != setting:
            raise SystemExit(
                f"{args.out} holds runs of another setting ({stored.get('setting')}); "
                "pass a new `--out` for this one."
            )
    if not args.table_only:
        test_images, test_labels = test_arrays(args.data, args.test_images)
        for seed in args.seeds:
            for method in args.methods:
                if any(r["method"] == method and r["seed"] == seed for r in results):
                    continue
                results.append(run(method, seed, args, test_images, test_labels))
                with open(args.out, "w") as f:
                    json.dump(
                        {"command": args_line, "setting": setting, "runs": results},
                        f,
                        indent=2,
                    )
                print(json.dumps(results[-1]), flush=True)
                keras.backend.clear_session()
    print(table(results, args_line))


if __name__ == "__main__":
    main()
