"""
Title: Self-supervised feature enhancement (SFE) and its SLA baseline
Author: keras_ssl developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Train a ResNet with SFE's channel-dropping internal pretext task, read its three inference modes, export a plain classifier and draw the paper's CAM view.
Accelerator: None
"""

"""
## Introduction

SFE (Yang et al., "Self-supervised Feature Enhancement: Applying Internal
Pretext Task to Supervised Learning") adds a self-supervised task built from
*inside* the network: the channels of a stage's feature map are split into
k = K - 1 random groups, transformation j drops group j, and a joint
classifier predicts the pair (class, dropped group) — `num_classes * K`
joint labels, laid out as `y * K + j`. Two joint classifiers sit after the
last two stages (loss `beta * L_penultimate + L_last`), and a plain
single classifier learns from them by self-distillation.

SLA (Lee et al. 2020) does the same with an *external* transformation: each
image is shown in its 4 rotations, which makes every batch four times larger.
SFE's transformation happens after the convolutions, and because dropping a
channel commutes with global average pooling, keras_ssl pools each stage
output once and masks the pooled vector K ways: the K feature maps never
exist.

This guide trains both on the CIFAR-10 sample bundled with keras_ssl (1,500
images), so the accuracies are tiny-data numbers; see
`docs/sfe_reproduction.md` for a larger run.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import keras_hub
import numpy as np

import keras_ssl
from keras_ssl.data import load_dataset
from keras_ssl.data import load_sample

keras.utils.set_random_seed(0)

train = load_dataset("sample", split="train", batch_size=64, augment="cifar", seed=0)
test_images, test_labels, class_names = load_sample("test", with_class_names=True)

"""
## Training SFE

`SFE` is a `keras.Model`: compile and fit it like any other. The defaults
follow the paper: K = 9 (8 channel groups), joint classifiers after the last
two stages, `beta=0.5` on the penultimate one (the paper's value for CIFAR
ResNets; 1.0 for ResNet-18), self-distillation at temperature 1. The
channel permutation of each stage is drawn once from `seed` and stored in
the model's variables, so it survives saving.
"""

backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
sfe = keras_ssl.methods.SFE(backbone, num_classes=10, seed=0)
sfe.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-4))
history = sfe.fit(train, epochs=4, verbose=2)

"""
Besides the total loss and the accuracy of the single classifier, `fit`
logs `sfe_loss` (joint cross-entropies plus distillation) and
`sfe_si_accuracy` (single inference from the last joint classifier).

## Three ways to predict

- `"si"`: the N logits of the untransformed feature at transformation 0 of
  the last joint classifier;
- `"ag"`: the conditional logits of all 2K transformed features (each read
  at its own transformation), averaged;
- `"sd"`: the self-distilled single classifier — a plain ResNet.

`predict` and `evaluate` use the model's `inference` mode, or the one you
pass.
"""

for mode in ("si", "ag", "sd"):
    logits = sfe.predict(test_images, inference=mode, verbose=0)
    print(mode, "accuracy:", np.mean(logits.argmax(-1) == test_labels))

"""
## Export a plain classifier

`export_classifier` writes a keras-hub preset of a plain
`ResNetImageClassifier`: for `"sd"` the single classifier, for `"si"` the
same backbone with the joint classifier's transformation-0 columns as its
head. Anyone can load it with `from_preset`, without keras_ssl's training
code, and get the same logits.
"""

sfe.export_classifier("sfe_resnet8_si", inference="si")
classifier = keras_hub.models.ImageClassifier.from_preset("sfe_resnet8_si")
np.testing.assert_allclose(
    classifier.predict(test_images[:8], verbose=0),
    sfe.predict(test_images[:8], inference="si", verbose=0),
    atol=1e-4,
)

"""
## What each channel group sees

The paper's Figure 1 shows that features with different channel groups
dropped attend to different parts of the object. `plot_cam` draws the class
activation map of the original feature and of the feature with each of the
first groups dropped, read by the joint classifier's column of that
transformation.
"""

keras_ssl.visualization.plot_cam(
    sfe, test_images[::60][:4], test_labels[::60][:4], path="sfe_cam.png",
    class_names=class_names,
)

"""
## The SLA baseline, and stacking tasks

`SLA` trains one joint classifier over (class, rotation); `inference="ag"`
averages the conditional logits of the 4 rotations. Its rotated copies join
the batch before the backbone, so the network (and BatchNorm's batch
statistics) sees 4B images per step: 3.3-6.7x the step time of plain
training on this CPU (`docs/sfe_reproduction.md`), which is why SFE was
designed.
"""

sla = keras_ssl.methods.SLA(
    keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)),
    num_classes=10,
)
sla.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-4))
sla.fit(train, epochs=2, verbose=2)
for mode in ("si", "ag"):
    logits = sla.predict(test_images, inference=mode, verbose=0)
    print("SLA", mode, "accuracy:", np.mean(logits.argmax(-1) == test_labels))

"""
Both pretext tasks are `AuxiliaryTask`s, so they stack on a `Supervised`
model (the paper's Table 4 combines SFE with SLA): one forward pass over the
originals and their rotations, the supervised loss and SFE on the originals'
rows, SLA on all of them.
"""

stacked = keras_ssl.methods.Supervised(
    keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)),
    num_classes=10,
    auxiliary_tasks=[
        keras_ssl.methods.DroppedChannelsTask(seed=0),
        keras_ssl.methods.RotationLabelTask(),
    ],
)
stacked.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
stacked.fit(train, epochs=1, verbose=2)
