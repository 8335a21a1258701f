"""Train a preset from its recipe and write the preset folder.

    python scripts/train_preset.py recipes/resnet20_cifar10.yaml

writes `weights/resnet20_cifar10/` (model, preprocessor, model card,
metrics.json, recipe.yaml, history.csv, training_curve.png). Checkpoints go
to `runs/presets/<name>/` at the end of every epoch; running the same command
again after an interruption continues from the last finished epoch. Choose
the backend with KERAS_BACKEND as usual.
"""

import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", help="The recipe YAML file.")
    parser.add_argument("--output", default=None,
                        help="Preset folder (default: weights/<name>).")
    parser.add_argument("--run-dir", default=None,
                        help="Checkpoints and history (default: "
                             "runs/presets/<name>).")
    parser.add_argument("--dataset", default=None,
                        help="Override the recipe's dataset spec, e.g. the "
                             "path of CIFAR-10 on this machine.")
    parser.add_argument("--card-only", action="store_true",
                        help="Do not train: rewrite the model card of the "
                             "trained preset (after its twin or its PyTorch "
                             "reference run finished).")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_ssl.hub import weights_dir
    from keras_ssl.recipes import load_recipe
    from keras_ssl.recipes import train_recipe
    from keras_ssl.recipes.runner import rewrite_card

    try:
        recipe = load_recipe(args.recipe)
        output = args.output or os.path.join(weights_dir(), recipe.name)
        if args.card_only:
            print(f"Wrote {rewrite_card(recipe, output)}")
            return 0
        summary = train_recipe(
            recipe, output, run_dir=args.run_dir, dataset=args.dataset,
            verbose=args.verbose,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"train_preset: error: {error}", file=sys.stderr)
        return 2
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
    print(f"{recipe.name}: {metrics}; {summary['train_seconds'] / 60:.1f} min "
          f"of training; preset in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
