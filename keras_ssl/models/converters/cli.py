"""The command line shared by `scripts/convert_<source>.py`."""

import argparse

from keras_ssl.models.converters.checkpoint_converter import convert_checkpoint


def run(sources, description, examples, argv=None):
    """Parses arguments, converts, writes the preset and prints a summary.

    Args:
        sources: the `source` values this script accepts; with several, a
            `--source` option chooses (the first is the default).
        description: what the script converts.
        examples: example command lines for `--help`.
        argv: arguments (default: `sys.argv[1:]`).
    """
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        help="weights file, model folder, or hf://owner/repo[@rev][/file]",
    )
    parser.add_argument("output_dir", help="folder to write the preset to")
    if len(sources) > 1:
        parser.add_argument("--source", choices=sources, default=sources[0])
    parser.add_argument(
        "--task",
        choices=("backbone", "classifier"),
        help="default: a classifier when the checkpoint has a head",
    )
    parser.add_argument(
        "--num-classes", type=int, help="a new head with this many classes"
    )
    parser.add_argument(
        "--architecture",
        help="model name of a bare state dict, e.g. vit_small_patch16_224",
    )
    parser.add_argument(
        "--num-heads", type=int, help="attention heads (ViT, CRATE)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="square input size; transformer positions are resampled",
    )
    args = parser.parse_args(argv)
    model = convert_checkpoint(
        args.checkpoint,
        source=getattr(args, "source", sources[0]),
        output_dir=args.output_dir,
        task=args.task,
        num_classes=args.num_classes,
        architecture=args.architecture,
        num_heads=args.num_heads,
        image_shape=(
            None if args.image_size is None else (args.image_size, args.image_size, 3)
        ),
    )
    print(
        f"Converted {args.checkpoint} -> {args.output_dir}: "
        f"{type(model).__name__}, {model.count_params():,} parameters. "
        f"Load it with `{type(model).__name__}.from_preset('{args.output_dir}')`."
    )
    return model
