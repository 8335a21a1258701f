"""The `keras-ssl` command: train, pretrain, evaluate and list presets."""

import argparse
import contextlib
import json
import os
import sys
import time

ARCHITECTURES = (
    "vit_tiny", "vit_small", "vit_base", "vit_large",
    "crate_tiny", "crate_small", "crate_base", "crate_large",
    "resnet8", "resnet20", "resnet32", "resnet56", "resnet110", "resnet164",
    "resnet18", "resnet34", "resnet50", "resnet101",
)
CIFAR_RESNET_DEPTHS = (8, 20, 32, 56, 110, 164)
PRETRAIN_METHODS = (
    "rotnet", "patch_rotnet", "patch_relnet", "moco_v2", "segas", "dino", "mst",
)
# Methods whose batches are two augmented views of each image.
CONTRASTIVE_METHODS = ("moco_v2", "segas")
# Self-distillation methods, trained on multi-crop views.
DISTILLATION_METHODS = ("dino", "mst")
# What `keras-ssl train --recipe` takes from the command line.
RECIPE_RUN_ARGUMENTS = ("recipe", "dataset", "output", "run_dir", "verbose", "func")
# `keras-ssl train --method`: supervised training with a method's
# auxiliary task (the keras_ssl.methods class of each name).
TRAIN_METHODS = {
    "supervised": "Supervised", "sfe": "SFE", "sla": "SLA",
    "hpah": "HPAH", "mpah": "MPAH",
}
PROTOCOLS = ("classifier", "knn", "linear", "finetune")


def build_backbone(architecture, image_size=32, patch_size=4, num_layers=None):
    """A randomly initialised backbone from a short architecture name.

    Args:
        architecture: one of `ARCHITECTURES`: `vit_<size>`, `crate_<size>`,
            `resnet<depth>` (CIFAR style for 8..164, ImageNet style for 18,
            34, 50, 101).
        image_size: int. Square input side (transformers need it fixed).
        patch_size: int. Transformer patch side.
        num_layers: int or None. Overrides the transformer depth.
    """
    from keras_ssl import models

    if architecture not in ARCHITECTURES:
        import difflib

        close = difflib.get_close_matches(architecture, ARCHITECTURES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown architecture '{architecture}'.{hint} Choose one of "
            f"{', '.join(ARCHITECTURES)}."
        )
    family, _, size = architecture.partition("_")
    if family in ("vit", "crate"):
        backbone_cls = models.ViTBackbone if family == "vit" else models.CRATEBackbone
        overrides = {} if num_layers is None else {"num_layers": num_layers}
        return backbone_cls.from_size(
            size, image_shape=(image_size, image_size, 3),
            patch_size=patch_size, **overrides,
        )
    depth = int(architecture.removeprefix("resnet"))
    image_shape = (image_size, image_size, 3)
    if depth in CIFAR_RESNET_DEPTHS:
        return models.ResNetBackbone.cifar(depth=depth, image_shape=image_shape)
    return models.ResNetBackbone.imagenet(depth=depth, image_shape=image_shape)


def _load_split(args, split, training):
    from keras_ssl.data import load_dataset

    return load_dataset(
        args.dataset,
        split=split,
        batch_size=args.batch_size,
        image_size=args.image_size,
        augment=args.augment if training else False,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        data_dir=args.data_dir,
        download=not args.no_download,
        # Equal shards for every replica and process; evaluation pads
        # instead (distribute.evaluate_top1).
        drop_remainder=training and getattr(args, "distribute", "none") != "none",
        with_info=True,
    )


def _batches_per_epoch(data, num_examples, batch_size):
    """Steps of one epoch, which sizes the schedules: the dataset's own
    count, so a dropped remainder (distributed runs, paired views) is not
    counted as a step."""
    count = int(data.cardinality())
    return count if count > 0 else -(-num_examples // batch_size)


def _evaluation_split(args):
    """The held-out split to report: test if the data has one."""
    for split in (args.eval_split, "test", "validation"):
        if split is None:
            continue
        try:
            return split, _load_split(args, split, training=False)
        except ValueError as error:
            if split == args.eval_split:
                raise
            last_error = error
    raise ValueError(
        f"'{args.dataset}' has no test or validation split ({last_error}). "
        "Pass --validation-fraction to hold out part of the training images."
    )


def train_from_recipe(args):
    """`keras-ssl train --recipe FILE`: a preset from its recipe."""
    from keras_ssl.hub import weights_dir
    from keras_ssl.recipes import load_recipe
    from keras_ssl.recipes import train_recipe

    defaults = make_parser().parse_args(["train", "--recipe", args.recipe])
    ignored = [
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in RECIPE_RUN_ARGUMENTS and hasattr(defaults, name)
        and value != getattr(defaults, name)
    ]
    if ignored:
        raise ValueError(
            f"--recipe sets the model, data and schedule, so "
            f"{', '.join(ignored)} would be ignored. Edit the recipe file "
            "instead (or copy it); with --recipe only --dataset, --output, "
            "--run-dir and --verbose apply."
        )
    recipe = load_recipe(args.recipe)
    output = args.output or os.path.join(weights_dir(), recipe.name)
    summary = train_recipe(
        recipe, output, run_dir=args.run_dir, dataset=args.dataset,
        verbose=args.verbose,
    )
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
    print(f"{recipe.name}: {metrics}; preset in {output}")
    return summary


def train(args):
    """`keras-ssl train`: supervised training with resumable checkpoints."""
    import keras
    import keras_hub

    if args.recipe:
        return train_from_recipe(args)
    args.output = _worker_output(args.output or "runs/train", args)
    args.dataset = args.dataset or "sample"

    from keras_ssl import distribute
    from keras_ssl import methods
    from keras_ssl.hub import resolve_preset

    keras.utils.set_random_seed(args.seed)
    preprocessor = {}
    if args.preset:
        overrides = {}
        if args.image_size:
            overrides["image_shape"] = (args.image_size, args.image_size, 3)
        preset_dir = resolve_preset(args.preset)
        backbone = keras_hub.models.Backbone.from_preset(preset_dir, **overrides)
        if os.path.exists(os.path.join(preset_dir, "preprocessor.json")):
            # Keep the normalisation the preset was trained with.
            preprocessor["preprocessor"] = (
                keras_hub.models.ImageClassifierPreprocessor.from_preset(preset_dir)
            )
    else:
        backbone = build_backbone(
            args.backbone, args.image_size or 32, args.patch_size, args.num_layers
        )
    train_data, info = _load_split(args, "train", training=True)
    eval_split, (eval_data, eval_info) = _evaluation_split(args)
    if info.num_classes is None:
        raise ValueError(
            f"The number of classes of '{args.dataset}' is unknown; "
            "pass --num-classes."
        )
    num_classes = args.num_classes or info.num_classes

    method_cls = getattr(methods, TRAIN_METHODS[args.method])
    model = method_cls(backbone, num_classes, **preprocessor)
    steps_per_epoch = _batches_per_epoch(train_data, info.num_examples, args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if args.warmup_epochs else args.learning_rate,
        decay_steps=max(1, (args.epochs - args.warmup_epochs) * steps_per_epoch),
        warmup_target=args.learning_rate if args.warmup_epochs else None,
        warmup_steps=args.warmup_epochs * steps_per_epoch,
    )
    if args.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay)
    else:
        optimizer = keras.optimizers.SGD(
            schedule, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
        )
    model.compile(optimizer=optimizer)
    model.build((None, args.image_size or 32, args.image_size or 32, 3))
    _synchronize_batch_norm(args, model)

    os.makedirs(args.output, exist_ok=True)
    backup_dir = os.path.join(args.output, "backup")
    if os.path.exists(os.path.join(backup_dir, "training_metadata.json")):
        print(f"Resuming from the checkpoint in {backup_dir}")
    save_freq = "epoch" if args.checkpoint_every is None else args.checkpoint_every
    callbacks = [
        keras.callbacks.BackupAndRestore(
            backup_dir, save_freq=save_freq, double_checkpoint=True
        ),
        keras.callbacks.CSVLogger(
            os.path.join(args.output, "history.csv"), append=True
        ),
    ]
    start = time.time()
    model.fit(
        train_data, epochs=args.epochs, callbacks=callbacks,
        verbose=args.verbose,
    )
    train_seconds = time.time() - start
    _synchronize_batch_norm(args, model, False)
    classifier_dir = os.path.join(args.output, "classifier")
    model.export_classifier(classifier_dir)
    metrics = {
        "method": args.method,
        "dataset": str(args.dataset),
        "train_examples": info.num_examples,
        "train_accuracy": model.history.history.get("accuracy", [None])[-1],
        "epochs": args.epochs,
        "train_seconds_this_run": round(train_seconds, 1),
        "backend": keras.backend.backend(),
        "distribution": getattr(args, "distribution", None),
        "arguments": _arguments(args),
    }
    results = distribute.evaluate_top1(
        model, eval_data, eval_info.num_examples, args.batch_size
    )
    metrics["eval_split"] = eval_split
    metrics[f"{eval_split}_accuracy"] = results["accuracy"]
    metrics[f"{eval_split}_loss"] = results["loss"]
    summary = (
        f"{eval_split} accuracy: {results['accuracy']:.4f} "
        f"({eval_split} loss {results['loss']:.4f})"
    )
    with open(os.path.join(args.output, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=2)
    print(f"{summary}; classifier preset and metrics.json in {args.output}")
    return metrics


def _build_pretrain_method(args, backbone, num_examples):
    from keras_ssl import methods

    if args.method == "rotnet":
        return methods.RotNet(backbone)
    if args.method in DISTILLATION_METHODS:
        common = dict(
            out_dim=args.out_dim,
            teacher_temperature_warmup_epochs=min(30, args.epochs),
        )
        if args.method == "dino":
            return methods.DINO(backbone, **common)
        return methods.MST(
            backbone, mask_strategy=args.mask_strategy,
            candidate_fraction=args.candidate_fraction,
            mask_probability=args.mask_probability,
            restoration_weight=args.restoration_weight, seed=args.seed,
            **common,
        )
    if args.method in CONTRASTIVE_METHODS:
        common = dict(queue_size=args.queue_size, seed=args.seed)
        if args.method == "moco_v2":
            return methods.MoCoV2(backbone, **common)
        # The memory bank holds one key per training image.
        return methods.SegAS(
            backbone, num_prototypes=args.num_prototypes,
            memory_size=num_examples, use_apfs=not args.no_apfs, **common,
        )
    method_cls = {
        "patch_rotnet": methods.PatchRotNet,
        "patch_relnet": methods.PatchRelNet,
    }[args.method]
    return method_cls(backbone, patch_ratio=args.patch_ratio, seed=args.seed)


def _load_views(args):
    """Two views per image: MoCo v2's augmentation twice, or SegAS's weak
    and contrastive pair (`--augment` does not apply)."""
    from keras_ssl import data

    side = args.image_size or 32
    if args.method == "moco_v2":
        augment = data.MoCoV2Augment(side, blur_probability=args.blur_probability)
        num_views = 2
    else:
        augment = data.SegASViews(side, blur_probability=args.blur_probability)
        num_views = 1
    return data.load_dataset(
        args.dataset, split="train", batch_size=args.batch_size,
        image_size=args.image_size, augment=augment, num_views=num_views,
        seed=args.seed, validation_fraction=args.validation_fraction,
        data_dir=args.data_dir, download=not args.no_download,
        # A last batch of a few images would give the key encoder's
        # BatchNorm next to no statistics.
        drop_remainder=True, with_info=True,
    )


def _load_crops(args):
    """DINO's multi-crop views: 2 global crops at the image size, local
    crops of `--local-size`, with the BYOL colour augmentations."""
    from keras_ssl import data

    side = args.image_size or 32
    local = args.local_size or side // 2
    # DINO's blur sigma (0.1-2.0) is for 224-pixel crops; scaled to ours.
    crops = data.multi_crop(
        side, local, num_global=2, num_local=args.local_crops, colour=True,
        blur_sigma=(0.1, max(2.0 * side / 224, 0.2)),
    )
    return data.load_dataset(
        args.dataset, split="train", batch_size=args.batch_size,
        image_size=args.image_size, augment=crops, seed=args.seed,
        validation_fraction=args.validation_fraction, data_dir=args.data_dir,
        download=not args.no_download, drop_remainder=True, with_info=True,
    )


def _distillation_optimizer(args, steps_per_epoch):
    """DINO's: AdamW, linear warm-up then cosine, weight decay 0.04 -> 0.4
    on a cosine, per-parameter gradient clipping at 3."""
    import keras

    from keras_ssl.optimizers import AdamWCosineWeightDecay

    total = args.epochs * steps_per_epoch
    warmup = min(args.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, alpha=1e-6 / args.learning_rate,
        warmup_target=args.learning_rate, warmup_steps=warmup,
    )
    return AdamWCosineWeightDecay(
        schedule,
        weight_decay=0.04 if args.weight_decay is None else args.weight_decay,
        final_weight_decay=args.final_weight_decay, decay_steps=total,
        clipnorm=args.clip_grad or None,
    )


def _pretrain_optimizer(args, steps_per_epoch):
    import keras

    learning_rate = args.learning_rate
    weight_decay = 0.0 if args.weight_decay is None else args.weight_decay
    if args.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            args.learning_rate, decay_steps=args.epochs * steps_per_epoch
        )
    if args.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.SGD(
        learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay
    )


def pretrain(args):
    """`keras-ssl pretrain`: self-supervised pretraining without labels."""
    import keras

    keras.utils.set_random_seed(args.seed)
    args.output = _worker_output(args.output, args)
    backbone = build_backbone(
        args.backbone, args.image_size or 32, args.patch_size, args.num_layers
    )
    # The labels of the dataset, if any, are never read.
    if args.method in CONTRASTIVE_METHODS:
        train_data, info = _load_views(args)
    elif args.method in DISTILLATION_METHODS:
        train_data, info = _load_crops(args)
    else:
        train_data, info = _load_split(args, "train", training=True)
    model = _build_pretrain_method(args, backbone, info.num_examples)
    steps_per_epoch = _batches_per_epoch(train_data, info.num_examples, args.batch_size)
    if args.method in DISTILLATION_METHODS:
        optimizer = _distillation_optimizer(args, steps_per_epoch)
    else:
        optimizer = _pretrain_optimizer(args, steps_per_epoch)
    model.compile(optimizer=optimizer)
    # BackupAndRestore needs built weights to restore into.
    side = args.image_size or 32
    images = keras.ops.zeros((1, side, side, 3))
    if args.method in DISTILLATION_METHODS:
        local = args.local_size or side // 2
        crops = [keras.ops.zeros((1, local, local, 3))] * args.local_crops
        model((images, images, *crops))
    else:
        model((images, images) if args.method in CONTRASTIVE_METHODS else images)
    _synchronize_batch_norm(args, model)
    os.makedirs(args.output, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(args.output, "backup")),
        keras.callbacks.CSVLogger(
            os.path.join(args.output, "history.csv"), append=True
        ),
    ]
    start = time.time()
    history = model.fit(
        train_data, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose
    )
    _synchronize_batch_norm(args, model, False)
    backbone_dir = os.path.join(args.output, "backbone")
    model.backbone.save_to_preset(backbone_dir)
    metrics = {
        "method": args.method,
        "dataset": str(args.dataset),
        "train_examples": info.num_examples,
        "epochs": args.epochs,
        "pretext_loss": float(history.history["loss"][-1]),
        # Self-distillation has no pretext accuracy.
        "pretext_accuracy": history.history.get("accuracy", [None])[-1],
        "train_seconds_this_run": round(time.time() - start, 1),
        "backend": keras.backend.backend(),
        "arguments": _arguments(args),
    }
    with open(os.path.join(args.output, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=2)
    summary = f"pretext loss: {metrics['pretext_loss']:.4f}"
    if metrics["pretext_accuracy"] is not None:
        summary = f"pretext accuracy: {metrics['pretext_accuracy']:.4f}"
    print(f"{summary}; backbone preset in {backbone_dir}")
    return metrics


def _evaluate_backbone(args):
    """k-NN, linear probe or fine-tuning of a backbone preset."""
    run = getattr(args, "run", None)
    if run is not None and run.mode == "multi-worker":
        raise ValueError(
            f"`--protocol {args.protocol}` gathers every feature on one "
            "process, so it runs on one machine: drop `--distribute "
            "multi-worker` (`--distribute mirrored` or `jax-data-parallel` "
            "use this machine's devices)."
        )
    import keras_hub
    import numpy as np

    import keras_ssl  # noqa: F401  (registers our classes with keras-hub)
    from keras_ssl import evaluation
    from keras_ssl.data import load_dataset
    from keras_ssl.hub import resolve_preset

    backbone = keras_hub.models.Backbone.from_preset(resolve_preset(args.model))
    split = args.eval_split or "test"
    train_data, info = _load_split(args, "train", training=False)
    test_data, test_info = _load_split(args, split, training=False)
    num_classes = info.num_classes
    if num_classes is None:
        raise ValueError(f"The number of classes of '{args.dataset}' is unknown.")
    metrics = {"protocol": args.protocol}
    if args.protocol == "finetune":
        train_data = load_dataset(
            args.dataset, split="train", batch_size=args.batch_size,
            image_size=args.image_size, augment="cifar", seed=args.seed,
            validation_fraction=args.validation_fraction,
            data_dir=args.data_dir, download=not args.no_download,
        )
        result = evaluation.fine_tune(
            backbone, train_data, test_data, num_classes, head=args.head,
            epochs=args.epochs or 20, learning_rate=args.learning_rate,
            seed=args.seed, verbose=args.verbose,
        )
        accuracy = result.accuracy
    else:
        verbose = min(args.verbose, 1)
        train_features, train_labels = evaluation.extract_features(
            backbone, train_data, verbose=verbose
        )
        test_features, test_labels = evaluation.extract_features(
            backbone, test_data, verbose=verbose
        )
        if args.protocol == "knn":
            predictions = evaluation.knn_classify(
                train_features, train_labels, test_features, k=args.k,
                temperature=args.temperature, num_classes=num_classes,
            )
            accuracy = float(np.mean(predictions == test_labels))
            metrics.update({"k": args.k, "temperature": args.temperature})
        else:
            accuracy = evaluation.linear_probe(
                train_features, train_labels, test_features, test_labels,
                num_classes=num_classes, head=args.head,
                epochs=args.epochs or 100, learning_rate=args.learning_rate,
                seed=args.seed, verbose=args.verbose,
            ).accuracy
    if args.protocol != "knn":
        metrics["head"] = args.head
    metrics.update(
        {
            "model": args.model,
            "dataset": str(args.dataset),
            "split": split,
            "examples": test_info.num_examples,
            "accuracy": accuracy,
        }
    )
    return metrics


def evaluate(args):
    """`keras-ssl evaluate`: accuracy of a classifier preset, or of a
    backbone preset under the k-NN, linear or fine-tune protocol."""
    import keras
    import keras_hub

    import keras_ssl  # noqa: F401  (registers our classes with keras-hub)
    from keras_ssl import distribute
    from keras_ssl.hub import resolve_preset

    if args.protocol != "classifier":
        metrics = _evaluate_backbone(args)
        _write_evaluation(args, metrics)
        print(
            f"{metrics['split']} accuracy ({args.protocol}): "
            f"{metrics['accuracy']:.4f} on {metrics['examples']} images"
        )
        return metrics
    # Processes of a multi-worker run must build identical variables, even
    # those the preset's weights then overwrite.
    keras.utils.set_random_seed(args.seed)
    classifier = keras_hub.models.ImageClassifier.from_preset(
        resolve_preset(args.model)
    )
    split = args.eval_split or "test"
    data, info = _load_split(args, split, training=False)
    results = distribute.evaluate_top1(
        classifier, data, info.num_examples, args.batch_size, verbose=args.verbose
    )
    metrics = {
        "model": args.model,
        "dataset": str(args.dataset),
        "split": split,
        "examples": info.num_examples,
        "accuracy": float(results["accuracy"]),
        "loss": float(results["loss"]),
    }
    _write_evaluation(args, metrics)
    print(f"{split} accuracy: {results['accuracy']:.4f} on {info.num_examples} images")
    return metrics


def _write_evaluation(args, metrics):
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "evaluation.json"), "w") as file:
            json.dump(metrics, file, indent=2)


def presets(args):
    from keras_ssl.hub import print_presets

    print_presets(family=args.family)


def publish(args):
    """`keras-ssl publish`: pre-flight check, then upload to the Hub."""
    from keras_ssl import hub

    report = hub.check_preset_folder(args.preset)
    print(f"pre-flight ok: {report}")
    if args.dry_run:
        return
    try:
        commit = hub.publish_preset(
            args.preset, args.uri, commit_message=args.commit_message,
            private=args.private or None,
        )
    except (ConnectionError, PermissionError, RuntimeError) as error:
        # main() reports ValueErrors as one-line errors with exit status 2.
        raise ValueError(str(error)) from error
    print(f"published {args.preset} -> {commit.repo_url} ({commit.oid})")


def _arguments(args):
    """The command line as recorded in metrics.json."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "run")}


def _add_distribute_arguments(parser):
    from keras_ssl.distribute import LEARNING_RATE_SCALING
    from keras_ssl.distribute import MODES
    from keras_ssl.distribute import PRECISIONS

    group = parser.add_argument_group(
        "devices and precision",
        "--batch-size is always the global batch, over all replicas.",
    )
    group.add_argument("--distribute", choices=MODES, default="none",
                       help="mirrored: TensorFlow, all GPUs of this machine; "
                            "jax-data-parallel: JAX, all local devices; "
                            "multi-worker: JAX, several processes/machines.")
    group.add_argument("--precision", choices=PRECISIONS, default="float32",
                       help="mixed_float16 adds dynamic loss scaling.")
    group.add_argument("--lr-scaling", choices=LEARNING_RATE_SCALING,
                       default="none",
                       help="none: --learning-rate is for the global batch; "
                            "linear / sqrt: it is for --reference-batch-size "
                            "and is scaled to the global batch.")
    group.add_argument("--reference-batch-size", type=int, default=256)
    group.add_argument("--coordinator", default=None,
                       help="multi-worker: HOST:PORT of process 0 "
                            "(or KERAS_SSL_COORDINATOR).")
    group.add_argument("--num-processes", type=int, default=None,
                       help="multi-worker: processes in the run.")
    group.add_argument("--process-id", type=int, default=None,
                       help="multi-worker: this process's index, 0 on the "
                            "coordinator.")
    group.add_argument("--cpu-devices", type=int, default=None,
                       help="Split the CPU into this many devices, to try "
                            "data parallelism without accelerators.")


def _cluster(args):
    from keras_ssl.distribute import ClusterSpec

    given = {
        "--coordinator": args.coordinator, "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    if all(value is None for value in given.values()):
        return None  # from the environment
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise ValueError(f"--distribute multi-worker also needs {', '.join(missing)}.")
    return ClusterSpec(args.coordinator, args.num_processes, args.process_id)


@contextlib.contextmanager
def distributed(args):
    """Runs a command's body on the devices and precision it asks for."""
    from keras_ssl import distribute

    if not hasattr(args, "distribute"):
        yield None
        return
    devices = None
    if args.cpu_devices:
        distribute.split_cpu(args.cpu_devices)
        devices = _cpu_devices()
    distribute.set_precision(args.precision)
    cluster = _cluster(args) if args.distribute == "multi-worker" else None
    try:
        with distribute.distribution_scope(
            args.distribute, devices=devices, cluster=cluster
        ) as run:
            base = getattr(args, "learning_rate", None)
            if base is not None:
                args.learning_rate = distribute.scale_learning_rate(
                    base, args.batch_size, args.lr_scaling,
                    args.reference_batch_size,
                )
            args.distribution = run.describe(
                args.batch_size, args.learning_rate if base is not None else None,
                base, args.lr_scaling, args.reference_batch_size,
            )
            print(args.distribution)
            args.run = run
            yield run
    finally:
        import keras

        keras.config.set_dtype_policy("float32")


def _cpu_devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices("cpu")
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _worker_output(output, args):
    """Every process of a multi-worker run trains; process 0 writes to
    --output, the others beside it (their checkpoints resume them)."""
    run = getattr(args, "run", None)
    if run is None or run.is_chief:
        return output
    return os.path.join(output, f"worker_{run.process_id}")


def _synchronize_batch_norm(args, model, enabled=True):
    """Global BatchNorm statistics while training under MirroredStrategy;
    off again before a preset is saved."""
    run = getattr(args, "run", None)
    if run is not None and run.mode == "mirrored":
        from keras_ssl.distribute import synchronize_batch_norm

        synchronize_batch_norm(model, enabled)


def _add_data_arguments(parser):
    parser.add_argument("--dataset", default="sample",
                        help="TFDS name, image-folder path, or 'sample' "
                             "(the bundled CIFAR-10 subset). Default: sample.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=None,
                        help="Square image side (default: the data's, 32 "
                             "for new transformers).")
    parser.add_argument("--eval-split", default=None,
                        help="Split to evaluate on (default: test, else "
                             "validation).")
    parser.add_argument("--validation-fraction", type=float, default=0.0)
    parser.add_argument("--data-dir", default=None, help="TFDS data directory.")
    parser.add_argument("--no-download", action="store_true",
                        help="Never let TFDS download.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress output.")


def _int_list(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints such as 1000,100,10; got {text!r}"
        ) from None


def make_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ssl",
        description="Train and evaluate keras_ssl models on any Keras backend "
                    "(set KERAS_BACKEND to tensorflow, jax or torch).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser(
        "train", help="Supervised training, alone or with a method's "
                      "auxiliary task, or a preset from its recipe; resumes "
                      "if interrupted.")
    _add_data_arguments(train_parser)
    _add_distribute_arguments(train_parser)
    model_group = train_parser.add_mutually_exclusive_group()
    model_group.add_argument("--backbone", default="resnet20",
                             help=f"One of: {', '.join(ARCHITECTURES)}.")
    model_group.add_argument("--preset", default=None,
                             help="Start from a preset (name, folder or hf://).")
    train_parser.add_argument("--method", choices=tuple(TRAIN_METHODS),
                              default="supervised",
                              help="Supervised training alone or with a "
                                   "method's auxiliary task (sfe, sla: "
                                   "ResNets; hpah, mpah: transformers).")
    train_parser.add_argument("--patch-size", type=int, default=4)
    train_parser.add_argument("--num-layers", type=int, default=None,
                              help="Override the transformer depth.")
    train_parser.add_argument("--num-classes", type=int, default=None)
    train_parser.add_argument("--epochs", type=int, default=10)
    train_parser.add_argument("--optimizer", choices=("adamw", "sgd"),
                              default="adamw")
    train_parser.add_argument("--learning-rate", type=float, default=1e-3)
    train_parser.add_argument("--weight-decay", type=float, default=0.05)
    train_parser.add_argument("--warmup-epochs", type=int, default=0)
    train_parser.add_argument("--augment", default="cifar",
                              choices=("cifar", "default", "none"))
    train_parser.add_argument("--checkpoint-every", type=int, default=None,
                              help="Checkpoint every N steps (default: "
                                   "every epoch).")
    train_parser.add_argument("--output", default=None,
                              help="Folder for checkpoints, history.csv, "
                                   "metrics.json and the classifier preset "
                                   "(default: runs/train; with --recipe, "
                                   "weights/<name>).")
    train_parser.add_argument("--recipe", default=None,
                              help="Train a preset from a recipe YAML file "
                                   "(recipes/*.yaml); the recipe sets model, "
                                   "data and schedule, --dataset overrides "
                                   "its data path.")
    train_parser.add_argument("--run-dir", default=None,
                              help="With --recipe: checkpoints and history "
                                   "(default: runs/presets/<name>).")
    # None: the bundled sample, or with --recipe the recipe's own data.
    train_parser.set_defaults(func=train, dataset=None)

    pretrain_parser = commands.add_parser(
        "pretrain", help="Self-supervised pretraining on unlabelled images "
                         "(labels in the data are ignored); saves the "
                         "backbone preset.")
    _add_data_arguments(pretrain_parser)
    _add_distribute_arguments(pretrain_parser)
    pretrain_parser.add_argument("--method", choices=PRETRAIN_METHODS,
                                 default="patch_rotnet")
    pretrain_parser.add_argument("--backbone", default="resnet8",
                                 help=f"One of: {', '.join(ARCHITECTURES)}.")
    pretrain_parser.add_argument("--patch-ratio", type=float, default=0.4,
                                 help="Patch side / image side (patch "
                                      "methods).")
    pretrain_parser.add_argument("--patch-size", type=int, default=4)
    pretrain_parser.add_argument("--num-layers", type=int, default=None)
    pretrain_parser.add_argument("--epochs", type=int, default=200,
                                 help="The paper's 200 by default.")
    pretrain_parser.add_argument("--optimizer", choices=("adamw", "sgd"),
                                 default="adamw")
    pretrain_parser.add_argument("--learning-rate", type=float, default=1e-3)
    pretrain_parser.add_argument("--weight-decay", type=float, default=None,
                                 help="0 by default; dino/mst: the initial "
                                      "decay of the cosine, 0.04.")
    pretrain_parser.add_argument("--augment", default="cifar",
                                 choices=("cifar", "default", "none"),
                                 help="Augmentation of the rotation methods "
                                      "(moco_v2 and segas use their own).")
    pretrain_parser.add_argument("--schedule", choices=("constant", "cosine"),
                                 default="constant",
                                 help="Learning-rate schedule (MoCo v2 and "
                                      "SegAS: cosine).")
    pretrain_parser.add_argument("--queue-size", type=int, default=4096,
                                 help="moco_v2/segas: negatives in the queue "
                                      "(65536 for ImageNet).")
    pretrain_parser.add_argument("--blur-probability", type=float,
                                 default=0.5,
                                 help="moco_v2/segas: Gaussian blur "
                                      "probability of the contrastive view.")
    pretrain_parser.add_argument("--num-prototypes", type=_int_list,
                                 default=(1000, 100, 10),
                                 help="segas: prototypes per level, e.g. "
                                      "1000,100,10 (CIFAR-10).")
    pretrain_parser.add_argument("--no-apfs", action="store_true",
                                 help="segas: without the attention-part "
                                      "filter (the paper's 'w/o ApFS').")
    pretrain_parser.add_argument("--final-weight-decay", type=float,
                                 default=0.4, help="dino/mst: weight decay "
                                                   "at the end of the cosine.")
    pretrain_parser.add_argument("--warmup-epochs", type=int, default=10,
                                 help="dino/mst: linear learning-rate "
                                      "warm-up before the cosine.")
    pretrain_parser.add_argument("--clip-grad", type=float, default=3.0,
                                 help="dino/mst: per-parameter gradient norm "
                                      "clipping (0: none).")
    pretrain_parser.add_argument("--out-dim", type=int, default=4096,
                                 help="dino/mst: prototypes of the head "
                                      "(65536 on ImageNet).")
    pretrain_parser.add_argument("--local-crops", type=int, default=8,
                                 help="dino/mst: local crops per image.")
    pretrain_parser.add_argument("--local-size", type=int, default=None,
                                 help="dino/mst: local crop side (default "
                                      "half the image size).")
    pretrain_parser.add_argument("--mask-strategy", default="attention",
                                 choices=("attention", "random", "none"),
                                 help="mst: which patches may be masked.")
    pretrain_parser.add_argument("--candidate-fraction", type=float,
                                 default=0.125, help="mst: lowest-attention "
                                                     "share of patches that "
                                                     "are candidates (1/num).")
    pretrain_parser.add_argument("--mask-probability", type=float,
                                 default=0.1, help="mst: probability p that a "
                                                   "candidate is masked.")
    pretrain_parser.add_argument("--restoration-weight", type=float,
                                 default=0.6, help="mst: lambda_2.")
    pretrain_parser.add_argument("--output", default="runs/pretrain",
                                 help="Folder for the backbone preset, "
                                      "history.csv and metrics.json.")
    pretrain_parser.set_defaults(func=pretrain)

    evaluate_parser = commands.add_parser(
        "evaluate", help="Top-1 accuracy of a classifier preset, or of a "
                         "backbone preset by k-NN, linear probe or "
                         "fine-tuning.")
    _add_data_arguments(evaluate_parser)
    _add_distribute_arguments(evaluate_parser)
    evaluate_parser.add_argument("--model", required=True,
                                 help="Preset (name, folder or hf://): a "
                                      "classifier for --protocol classifier, "
                                      "a backbone otherwise.")
    evaluate_parser.add_argument("--protocol", choices=PROTOCOLS,
                                 default="classifier",
                                 help="classifier: the preset's own head; "
                                      "knn: weighted k-NN on frozen "
                                      "features; linear: a head on frozen "
                                      "features; finetune: backbone + head "
                                      "trained end to end.")
    evaluate_parser.add_argument("--k", type=int, default=20)
    evaluate_parser.add_argument("--temperature", type=float, default=0.07)
    evaluate_parser.add_argument("--head", choices=("linear", "two_fc"),
                                 default="linear")
    evaluate_parser.add_argument("--epochs", type=int, default=None,
                                 help="Head training epochs (default: 100 "
                                      "linear, 20 finetune).")
    evaluate_parser.add_argument("--learning-rate", type=float, default=1e-3)
    evaluate_parser.add_argument("--output", default=None)
    evaluate_parser.set_defaults(func=evaluate)

    presets_parser = commands.add_parser("presets", help="List the presets.")
    presets_parser.add_argument("--family", default=None)
    presets_parser.set_defaults(func=presets)

    publish_parser = commands.add_parser(
        "publish", help="Check a preset folder (config, weights, model card "
                        "with metrics, metrics.json, a load test), then "
                        "upload it to the Hugging Face Hub.")
    publish_parser.add_argument("preset", help="The preset folder.")
    publish_parser.add_argument("uri", help="hf://owner/repo")
    publish_parser.add_argument("--dry-run", action="store_true",
                                help="Only run the pre-flight check.")
    publish_parser.add_argument("--private", action="store_true",
                                help="Create a new repository as private.")
    publish_parser.add_argument("--commit-message", default=None)
    publish_parser.set_defaults(func=publish)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    if getattr(args, "augment", None) == "none":
        args.augment = False
    try:
        with distributed(args):
            args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"keras-ssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
