"""What every converter shares: config checks, task assembly, preprocessing."""

import math
import re

TASKS = ("backbone", "classifier")


def count_indexed(state_dict, pattern):
    """Number of consecutive `i` from 0 for which `pattern.format(i)` exists."""
    count = 0
    while pattern.format(count) in state_dict:
        count += 1
    return count


def square_grid(num_positions, where):
    side = math.isqrt(num_positions)
    if side * side != num_positions:
        raise ValueError(
            f"The {where} has {num_positions} patch positions, which is not "
            "a square grid; only square grids can be inferred. Pass "
            "`image_shape=(height, width, 3)`."
        )
    return side


def require(state_dict, key, where):
    if key not in state_dict:
        raise ValueError(
            f"The {where} has no parameter '{key}'. Check that `source` "
            "matches the checkpoint (or let it be detected)."
        )
    return state_dict[key]


def heads_from_name(name, table, where):
    """Head count of a named size found in an architecture name."""
    for size, heads in table.items():
        if re.search(rf"(^|_){size}(_|$)", name or ""):
            return heads
    raise ValueError(
        f"Cannot tell the number of attention heads of the {where}: the "
        "weights fix only heads x head width. Pass `num_heads=` (or an "
        f"`architecture=` naming one of the sizes {sorted(table)})."
    )


def assemble(
    backbone,
    classifier_cls,
    preprocessor,
    load,
    state_dict,
    head_classes,
    task=None,
    num_classes=None,
):
    """Builds the requested model around `backbone` and loads the weights.

    Args:
        backbone: the freshly built backbone.
        classifier_cls: the family's classifier class.
        preprocessor: the family's classifier preprocessor.
        load: `load(model, state_dict)`, the family's loader.
        state_dict: the weights in the loader's layout.
        head_classes: class count of the checkpoint's head, or None.
        task: "backbone", "classifier" or None (a classifier when the
            checkpoint has a head or `num_classes` is given).
        num_classes: None to keep the checkpoint's head; another count gives
            a freshly initialised head.

    Returns:
        `(model, preprocessor)`: the backbone or the classifier (which holds
        `preprocessor`), and the preprocessor.
    """
    if task is None:
        task = "classifier" if head_classes or num_classes else "backbone"
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}; received {task!r}.")
    if task == "backbone":
        load(backbone, state_dict)
        return backbone, preprocessor
    classes = num_classes or head_classes
    if classes is None:
        raise ValueError(
            "The checkpoint has no classification head; pass `num_classes=` "
            "for a classifier with a new head, or `task='backbone'`."
        )
    classifier = classifier_cls(backbone, classes, preprocessor=preprocessor)
    if classes == head_classes:
        load(classifier, state_dict)
    else:
        # A new head: load the backbone only, the head stays initialised.
        load(backbone, state_dict)
    return classifier, preprocessor


def mean_std_from_scale_offset(scale, offset, channels=3):
    """keras-hub's `x * scale + offset` on [0, 255] -> mean and std on [0, 1]."""
    if scale is None:
        return None, None
    scale = _per_channel(scale, channels)
    offset = _per_channel(offset if offset is not None else 0.0, channels)
    std = tuple(1.0 / (255.0 * s) for s in scale)
    mean = tuple(-o * s for o, s in zip(offset, std))
    return mean, std


def _per_channel(value, channels):
    if isinstance(value, (int, float)):
        return (float(value),) * channels
    return tuple(float(v) for v in value)


# PIL resampling codes, as transformers' image processors store them.
PIL_INTERPOLATION = {0: "nearest", 1: "lanczos3", 2: "bilinear", 3: "bicubic"}
