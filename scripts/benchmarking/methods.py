"""Training methods the benchmark times, each built on a backbone.

A method builder takes `(backbone, classifier_cls, num_classes)` and returns
a compiled Keras model whose `train_on_batch(x, y)` is one training step of
the method and whose `predict_on_batch(x)` is its forward pass. `x, y` are
the images and labels, or what `METHOD_INPUTS` makes of them (DINO's and
MST's multi-crop views); self-supervised methods ignore the labels.
"""

import numpy as np

from keras_ssl.methods import DINO
from keras_ssl.methods import HPAH
from keras_ssl.methods import MST
from keras_ssl.methods import MPAH
from keras_ssl.methods import SFE
from keras_ssl.methods import SLA
from keras_ssl.methods import Supervised


def build_supervised(backbone, classifier_cls, num_classes):
    """Plain supervised classification: `Supervised` (the family classifier).

    A method builder returns a compiled Keras model whose
    `train_on_batch(images, labels)` is one training step of the method and
    whose `predict_on_batch(images)` is its inference forward pass
    (self-supervised methods may ignore the labels).

    Args:
        backbone: a keras_ssl backbone.
        classifier_cls: the backbone's ImageClassifier class.
        num_classes: int. Number of classes of the head.
    """
    # `Supervised` is the model every method builds on, so method rows are
    # ratios to the same training loop; it holds the family's classifier.
    model = Supervised(backbone, num_classes, preprocessor=None)
    # No metrics: the references compute none either.
    model.compile(optimizer="adamw", metrics=None)
    return model


def build_attention_head_method(method_cls):
    def build(backbone, classifier_cls, num_classes):
        model = method_cls(backbone, num_classes, preprocessor=None)
        model.compile(optimizer="adamw", metrics=None)
        return model

    return build


def build_rotation_method(method_name, **arguments):
    """Builder of a rotation pretext method (RotNet, Patch RotNet/RelNet).

    No preprocessor, as in `build_supervised`, so the ratio measures the
    method itself; labels are ignored. RotNet encodes 4 views per input
    image, Patch RotNet and Patch RelNet 8 (plus rotating and pasting), and
    images/s counts input images.
    """

    def build(backbone, classifier_cls, num_classes):
        from keras_ssl import methods

        model = getattr(methods, method_name)(
            backbone, preprocessor=None, **arguments
        )
        model.compile(optimizer="adamw", metrics=None)
        return model

    return build


# The CIFAR configuration of `scripts/reproduce_mst.py`: a 4096-way head,
# 2 global crops at the image size and 6 local crops of 16x16.
DISTILLATION_HEAD = dict(out_dim=4096)
NUM_LOCAL_CROPS = 6
LOCAL_CROP_SIZE = 16


def build_distillation_method(method_cls):
    """Builder of DINO or MST (student and EMA teacher, multi-crop)."""

    def build(backbone, classifier_cls, num_classes):
        model = method_cls(backbone, preprocessor=None, **DISTILLATION_HEAD)
        model.compile(optimizer="adamw")
        return model

    return build


def multi_crop_views(images, labels):
    """Fixed multi-crop views of a batch: the images and their mirror as the
    global crops, then local crops taken at evenly spaced offsets (the cost
    of a step does not depend on where the crops are)."""
    size = images.shape[1]
    global_views = [images, np.ascontiguousarray(images[:, :, ::-1])]
    offsets = np.linspace(0, size - LOCAL_CROP_SIZE, NUM_LOCAL_CROPS).astype(int)
    local_views = [
        np.ascontiguousarray(
            images[:, top : top + LOCAL_CROP_SIZE, left : left + LOCAL_CROP_SIZE]
        )
        for top, left in zip(offsets, offsets[::-1])
    ]
    return tuple(global_views + local_views), None


# Methods are reported as ratios to their baseline (`METHOD_BASELINES`,
# "supervised" where none is named) on the same backbone.
METHODS = {
    "supervised": build_supervised,
    "hpah": build_attention_head_method(HPAH),
    "mpah": build_attention_head_method(MPAH),
    # SFE as the paper trains it (two joint classifiers, K = 9, with the
    # self-distilled single head); SLA with its 4 rotations, no distillation.
    "sfe": build_attention_head_method(SFE),
    "sla": build_attention_head_method(SLA),
    "rotnet": build_rotation_method("RotNet"),
    "patch_rotnet": build_rotation_method("PatchRotNet", patch_ratio=0.4, seed=0),
    "patch_relnet": build_rotation_method("PatchRelNet", patch_ratio=0.4, seed=0),
    "dino": build_distillation_method(DINO),
    "mst": build_distillation_method(MST),
}
# method -> function (images, labels) -> the step's (x, y).
METHOD_INPUTS = {"dino": multi_crop_views, "mst": multi_crop_views}


def step_inputs(method, images, labels):
    """The `(x, y)` one step of `method` takes for a batch."""
    if method in METHOD_INPUTS:
        return METHOD_INPUTS[method](images, labels)
    return images, labels


# MST's claim is its cost over DINO, the method it extends.
METHOD_BASELINES = {"mst": "dino"}
# Models a method applies to, where it does not apply to all of them.
METHOD_MODELS = {
    "hpah": ("vit_t4", "crate_t4"),
    "mpah": ("vit_t4", "crate_t4"),
    "sfe": ("resnet20", "resnet110", "resnet18"),
    "sla": ("resnet20", "resnet110", "resnet18"),
    "dino": ("vit_t4", "crate_t4"),
    "mst": ("vit_t4", "crate_t4"),
}
