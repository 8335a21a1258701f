"""Reproduces MST against DINO and the random-mask ablation (Tables 1 and 4).

Li et al. 2021, "MST: Masked Self-Supervised Transformer for Visual
Representation". Pretrains DINO, MST with a random mask (Table 4's
"Random Mask") and MST (attention-guided mask) without labels with the same
budget, data order and seeds, then evaluates each frozen encoder, next to a
randomly initialised one, by weighted k-NN (k = 20 and 200, T = 0.07) and a
linear probe on its class token, on the whole test split.

Resumable: finished (method, seed) rows are kept in the JSON output and
skipped on a rerun; an interrupted pretraining resumes from its
`BackupAndRestore` checkpoint under `--run-dir`.

CPU scale (CIFAR-10 train images without labels, ViT patch 4, 32x32):

```
nice -n 19 python scripts/reproduce_mst.py --data /work/shared/data/cifar10 \\
    --backbone vit --epochs 30 --seeds 0 1 --output runs/mst.json
python scripts/reproduce_mst.py --backbone crate ...   # the CRATE rows
python scripts/reproduce_mst.py --quick                # bundled sample, minutes
python scripts/reproduce_mst.py --print-paper-recipe
```

The paper's recipe (DeiT-S/16 at 224, AdamW lr 2e-3 at batch 1024, weight
decay 0.04 -> 0.4, 10 warm-up epochs then cosine, 100 epochs, DINO's
multi-crop) is `PAPER_RECIPE`; `--recipe paper --data <imagenet folder>`
runs it unchanged on GPUs (under a `tf.distribute.MirroredStrategy` over
the visible GPUs with TensorFlow; the batch is global).
"""

import argparse
import contextlib
import json
import os
import sys
import time

import keras
import numpy as np

from keras_ssl import evaluation
from keras_ssl.data import load_dataset
from keras_ssl.data import multi_crop
from keras_ssl.methods import DINO
from keras_ssl.methods import MST
from keras_ssl.models import CRATEBackbone
from keras_ssl.models import ViTBackbone
from keras_ssl.optimizers import AdamWCosineWeightDecay

ROWS = ("random", "dino", "mst_random_mask", "mst")
LABELS = {
    "random": "Random init",
    "dino": "DINO",
    "mst_random_mask": "MST, random mask",
    "mst": "MST (attention-guided)",
}
# Table 1 (DeiT-S, 300 epochs, linear / k-NN) and Table 4 (100 epochs,
# linear) of the paper.
PAPER = {"dino": "75.2 / 72.8", "mst": "76.3 / 75.0", "mst_random_mask": "63.2 / -"}
CPU_RECIPE = dict(
    image_size=32, patch_size=4, hidden_dim=192, num_layers=6, num_heads=3,
    batch_size=128, learning_rate=5e-4, warmup_epochs=3, out_dim=4096,
    local_crops=6, local_size=16, blur_sigma=(0.1, 0.3),
    probe_epochs=100,
)
# Section 4.1 and appendices E, G: DINO's settings for the rest.
PAPER_RECIPE = dict(
    image_size=224, patch_size=16, hidden_dim=384, num_layers=12, num_heads=6,
    batch_size=1024, learning_rate=2e-3, warmup_epochs=10, out_dim=65536,
    local_crops=8, local_size=96, blur_sigma=(0.1, 2.0), epochs=100,
    probe_epochs=100,
)


def load_arrays(data, split, count, image_size):
    """Up to `count` images and labels of a split (one fixed order)."""
    # Shuffled with a fixed seed: a prefix of a class-sorted split (the
    # bundled sample) would hold few classes.
    dataset = load_dataset(data, split=split, batch_size=500, shuffle=True, seed=0,
                           image_size=image_size)
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
        if count and sum(len(part) for part in images) >= count:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images[:count], labels[:count]) if count else (images, labels)


def new_backbone(args, seed):
    keras.utils.set_random_seed(seed)
    shape = (args.image_size, args.image_size, 3)
    common = dict(image_shape=shape, patch_size=args.patch_size,
                  hidden_dim=args.hidden_dim, num_layers=args.num_layers,
                  num_heads=args.num_heads)
    if args.backbone == "crate":
        return CRATEBackbone(**common)
    return ViTBackbone(**common, mlp_dim=4 * args.hidden_dim)


def distribution_scope():
    """All visible GPUs under TensorFlow; otherwise the default device."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy().scope()
    return contextlib.nullcontext()


def pretrain(name, args, images, seed):
    """Pretrains one method; returns the backbone, seconds, last metrics."""
    crops = multi_crop(
        args.image_size, args.local_size, num_global=2,
        num_local=args.local_crops, colour=True, blur_sigma=args.blur_sigma,
    )
    # The same seed gives every method the same image order and crops; the
    # labels are zeros, so none can leak into pretraining.
    unlabelled = (images, np.zeros(len(images), "int32"))
    data = load_dataset(unlabelled, batch_size=args.batch_size, augment=crops,
                        seed=seed, drop_remainder=True)
    steps_per_epoch = len(images) // args.batch_size
    total = args.epochs * steps_per_epoch
    warmup = min(args.warmup_epochs * steps_per_epoch, total - 1)
    with distribution_scope():
        backbone = new_backbone(args, seed)
        common = dict(out_dim=args.out_dim,
                      teacher_temperature_warmup_epochs=min(30, args.epochs))
        if name == "dino":
            model = DINO(backbone, **common)
        else:
            strategy = "random" if name == "mst_random_mask" else "attention"
            model = MST(backbone, mask_strategy=strategy, seed=seed, **common)
        # DINO's rule: the learning rate scales with the batch / 256; the
        # paper's 2e-3 is at 1024.
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=total - warmup, alpha=1e-3,
            warmup_target=args.learning_rate, warmup_steps=warmup,
        )
        model.compile(optimizer=AdamWCosineWeightDecay(
            schedule, weight_decay=0.04, final_weight_decay=0.4,
            decay_steps=total, clipnorm=3.0,
        ))
    side, local = args.image_size, args.local_size
    globals_ = [np.zeros((1, side, side, 3), "float32")] * 2
    locals_ = [np.zeros((1, local, local, 3), "float32")] * args.local_crops
    model((*globals_, *locals_))  # built weights for BackupAndRestore
    backup = os.path.join(args.run_dir, f"{args.backbone}_{name}_seed{seed}")
    start = time.time()
    history = model.fit(
        data, epochs=args.epochs, verbose=args.verbose,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )
    return model.backbone, time.time() - start, {
        key: float(values[-1]) for key, values in history.history.items()
    }


def evaluate(backbone, train, test, args, seed):
    """k-NN (k 20 and 200, T 0.07) and linear probe on the class token."""
    train_features, train_labels = evaluation.extract_features(
        backbone, load_dataset(train, batch_size=256, shuffle=False), verbose=0
    )
    test_features, test_labels = evaluation.extract_features(
        backbone, load_dataset(test, batch_size=256, shuffle=False), verbose=0
    )
    row = {}
    for k in (20, 200):
        predictions = evaluation.knn_classify(
            train_features, train_labels, test_features, k=k, temperature=0.07
        )
        row[f"knn_{k}"] = float(np.mean(predictions == test_labels))
    probe = evaluation.linear_probe(
        train_features, train_labels, test_features, test_labels,
        epochs=args.probe_epochs, batch_size=256, seed=seed,
    )
    row["linear"] = float(probe.accuracy)
    return row


def markdown(rows):
    """Mean +- std over seeds, in points, next to the paper."""
    lines = [
        "| Backbone | Method | k-NN k=20 | k-NN k=200 | linear | paper (linear / k-NN) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for backbone in sorted({row["backbone"] for row in rows}):
        for name in ROWS:
            picked = [r for r in rows if r["method"] == name and r["backbone"] == backbone]
            if not picked:
                continue

            def cell(key):
                values = 100 * np.asarray([r[key] for r in picked])
                return f"{values.mean():.2f} ± {values.std():.2f}"

            lines.append(
                f"| {backbone} | {LABELS[name]} (n={len(picked)}) | "
                f"{cell('knn_20')} | {cell('knn_200')} | {cell('linear')} | "
                f"{PAPER.get(name, '-')} |"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/cifar10")
    parser.add_argument("--recipe", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--backbone", choices=("vit", "crate"), default="vit")
    parser.add_argument("--pretrain-images", type=int, default=0,
                        help="0: the whole train split.")
    parser.add_argument("--test-images", type=int, default=0,
                        help="0: the whole test split.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--output", default="runs/reproduce_mst.json")
    parser.add_argument("--run-dir", default="runs/reproduce_mst")
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="The bundled sample, a tiny ViT, 1 epoch: a "
                             "smoke run.")
    parser.add_argument("--print-paper-recipe", action="store_true")
    args = parser.parse_args(argv)
    recipe = PAPER_RECIPE if args.recipe == "paper" else CPU_RECIPE
    for key, value in recipe.items():
        if key != "epochs" or args.recipe == "paper":
            setattr(args, key, value)
    if args.quick:
        args.data, args.pretrain_images, args.test_images = "sample", 200, 100
        args.epochs, args.seeds, args.probe_epochs = 1, [0], 2
        args.hidden_dim, args.num_layers, args.num_heads = 32, 1, 2
        args.batch_size, args.out_dim, args.local_crops = 50, 256, 2
        args.warmup_epochs = 0
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
        "command": "python scripts/reproduce_mst.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "backend": keras.backend.backend(),
    })
    report.setdefault("arguments", {})[args.backbone] = vars(args)
    done = {(r["backbone"], r["method"], r["seed"]) for r in report["rows"]}
    train = load_arrays(args.data, "train", args.pretrain_images, args.image_size)
    test = load_arrays(args.data, "test", args.test_images, args.image_size)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    for seed in args.seeds:
        for name in args.rows:
            if (args.backbone, name, seed) in done:
                continue
            print(f"[reproduce] {args.backbone} {name} seed {seed}", flush=True)
            row = {"backbone": args.backbone, "method": name, "seed": seed}
            if name == "random":
                backbone = new_backbone(args, seed)
            else:
                backbone, row["pretrain_seconds"], row["final_train_metrics"] = (
                    pretrain(name, args, train[0], seed)
                )
            row.update(evaluate(backbone, train, test, args, seed))
            print(f"[reproduce] {row}", flush=True)
            report["rows"].append(row)
            report["wall_seconds_this_run"] = time.time() - started
            with open(args.output, "w") as file:
                json.dump(report, file, indent=2)
    print(markdown(report["rows"]))
    return report


if __name__ == "__main__":
    main()
