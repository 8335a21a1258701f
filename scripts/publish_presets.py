"""Publish preset folders to the Hugging Face Hub, after a pre-flight check.

Every folder is checked first (`keras_ssl.hub.check_preset_folder`: config,
weights, model card with metrics, metrics.json, a load test); if any fails,
nothing is published. Log in first with `hf auth login` or set HF_TOKEN.

Examples:

    # One folder to a chosen repository:
    python scripts/publish_presets.py weights/resnet20_cifar10 \\
        --to hf://keras-ssl/resnet20_cifar10
    # Several folders, each to hf://OWNER/<folder name>:
    python scripts/publish_presets.py weights/a weights/b --owner keras-ssl
    # Every preset folder under weights/ (or $KERAS_SSL_WEIGHTS_DIR):
    python scripts/publish_presets.py --all --owner keras-ssl
    # Only check:
    python scripts/publish_presets.py --all --owner keras-ssl --dry-run
"""

import argparse
import os
import sys

from keras_ssl import hub


def weight_folders(root):
    """The preset folders under `root`: its subfolders, sorted by name."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Weights folder '{root}' does not exist.")
    return [
        os.path.join(root, name)
        for name in sorted(os.listdir(root))
        if os.path.isdir(os.path.join(root, name)) and not name.startswith(".")
    ]


def plan(folders, to=None, owner=None):
    """Pair each folder with its `hf://` target.

    Args:
        folders: list of preset folders.
        to: optional list of `hf://owner/repo` targets, one per folder.
        owner: the Hub namespace for `hf://OWNER/<folder name>` targets,
            when `to` is not given.

    Returns:
        A list of `(folder, uri)` pairs.
    """
    if not folders:
        raise ValueError("No preset folders to publish.")
    if to:
        if len(to) != len(folders):
            raise ValueError(
                f"Got {len(folders)} folders but {len(to)} --to targets; "
                "give one --to per folder, or --owner for all."
            )
        return list(zip(folders, to))
    if not owner:
        raise ValueError(
            "Give --to hf://owner/repo per folder, or --owner OWNER."
        )
    return [
        (folder, f"hf://{owner}/{os.path.basename(os.path.normpath(folder))}")
        for folder in folders
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__[__doc__.index("Examples:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="*", help="Preset folders.")
    parser.add_argument(
        "--all",
        action="store_true",
        help="Publish every folder under the weights folder.",
    )
    parser.add_argument(
        "--weights-dir",
        default=None,
        help="With --all: the folder to look in (default: "
        "keras_ssl.hub.weights_dir()).",
    )
    parser.add_argument(
        "--to",
        action="append",
        default=None,
        help="hf://owner/repo target; once per folder, in order.",
    )
    parser.add_argument(
        "--owner",
        default=None,
        help="Publish each folder to hf://OWNER/<folder name>.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Only run the pre-flight checks."
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="Create new repositories as private.",
    )
    parser.add_argument("--commit-message", default=None)
    args = parser.parse_args(argv)
    try:
        if args.all and args.folders:
            raise ValueError("Give preset folders or --all, not both.")
        folders = (
            weight_folders(args.weights_dir or hub.weights_dir())
            if args.all
            else args.folders
        )
        targets = plan(folders, to=args.to, owner=args.owner)
        failed = []
        for folder, uri in targets:
            try:
                print(f"ok    {uri} <- {hub.check_preset_folder(folder)}")
            except hub.PresetCheckError as error:
                failed.append(folder)
                print(f"FAIL  {uri} <- {error}", file=sys.stderr)
        if failed:
            print(
                f"{len(failed)} of {len(targets)} folders failed the "
                "pre-flight check; nothing was published.",
                file=sys.stderr,
            )
            return 1
        if args.dry_run:
            return 0
        for folder, uri in targets:
            commit = hub.publish_preset(
                folder,
                uri,
                commit_message=args.commit_message,
                private=args.private or None,
            )
            print(f"published {folder} -> {commit.repo_url} ({commit.oid})")
    except (ValueError, OSError, RuntimeError) as error:
        print(f"publish_presets: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
