"""
Title: Attention shifting with SegAS on MoCo v2, evaluated under occlusion
Author: keras_ssl developers
Date created: 2026/12/03
Last modified: 2026/12/03
Description: Pretrain a ResNet with MoCo v2 and with SegAS (hierarchical prototypes, calibrated consistency, attention-part filtering), look at the filtered views, and measure linear accuracy on complete and occluded images.
Accelerator: None
"""

"""
## Introduction

MoCo v2 (Chen et al. 2020) learns by telling an image's second view (the
*key*, from a slowly moving EMA copy of the encoder) apart from a queue of
other images' keys. SegAS (Bai et al. 2024, "Attention Shifting to Pursue
Optimal Representation for Adapting Multi-granularity Tasks") adds, on top:

- **hierarchical prototypes**: k-means of a memory bank of key embeddings,
  level by level (e.g. 1000, 100, 10 clusters);
- **ProCR**: the query's distribution over the prototypes must match the
  key's, calibrated by its confidence rho;
- **ApFS**: a third view with the region the encoder looks at most (its
  last feature map, summed over channels) filtered out, so the encoder has
  to find other discriminative parts; a diversity loss keeps the two views'
  embeddings apart.

The paper reports the largest gains on *occluded* images. This guide
trains both methods on the bundled CIFAR-10 sample for a CPU-sized budget,
so the numbers it prints show the workflow, not the paper's effect (see
`scripts/reproduce_segas.py` for a controlled comparison).
"""

"""
## Setup
"""

import keras
import numpy as np

import keras_ssl
from keras_ssl import evaluation
from keras_ssl.data import load_dataset
from keras_ssl.data import load_sample

keras.utils.set_random_seed(0)
images, labels = load_sample("train")
images, labels = images[::5].astype("float32"), labels[::5]  # 300 images
test_images, test_labels = load_sample("test")
EPOCHS = 2

"""
## Views

MoCo v2 takes two views drawn with its augmentation (random resized crop,
colour jitter, grayscale, blur, flip); SegAS takes a weak view (crop and
flip) for the key encoder and a contrastive one for the query encoder.
The blur is off at 32x32, as SimCLR does on CIFAR.
"""

moco_data = load_dataset(
    (images, labels), batch_size=50, num_views=2, seed=0, drop_remainder=True,
    augment=keras_ssl.data.MoCoV2Augment(32, blur_probability=0.0),
)
segas_data = load_dataset(
    (images, labels), batch_size=50, seed=0, drop_remainder=True,
    augment=keras_ssl.data.SegASViews(32, blur_probability=0.0),
)

"""
## MoCo v2

A CIFAR ResNet-8, a 2-layer MLP head, a queue sized to the data. The
paper's optimiser: SGD with momentum 0.9, weight decay 1e-4, cosine decay.
"""


def optimizer(steps):
    schedule = keras.optimizers.schedules.CosineDecay(0.06, steps)
    return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=1e-4)


steps = EPOCHS * len(images) // 50
moco = keras_ssl.methods.MoCoV2(
    keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)),
    queue_size=200, seed=0,
)
moco.compile(optimizer=optimizer(steps))
moco.fit(moco_data, epochs=EPOCHS, verbose=2)

"""
## SegAS

The memory bank holds one key per training image; it is clustered at the
start of every epoch once it is full (after the first epoch), and the
prototype losses start then (hence the jump in the loss at epoch 2).
"""

segas = keras_ssl.methods.SegAS(
    keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3)),
    num_prototypes=(30, 6), memory_size=len(images), queue_size=200, seed=0,
)
segas.compile(optimizer=optimizer(steps))
segas.fit(segas_data, epochs=EPOCHS, verbose=2)
print("k-means seconds per clustering:", [round(s, 2) for s in segas.clustering_seconds])

"""
## What the attention-part filter removes

For a few test images: the image, the encoder's heatmap A (channel sum of
the last feature map), and x_A = (1 - sigmoid(omega (A - sigma))) x.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_ssl.ops import attention_filter
from keras_ssl.ops import attention_heatmap

shown = test_images[:4].astype("float32")
maps = evaluation.feature_maps(segas.backbone, shown)
heat = keras.ops.convert_to_numpy(attention_heatmap(maps, (32, 32)))
mask = keras.ops.convert_to_numpy(
    attention_filter(heat, segas.filter_scale, segas.filter_threshold)
)
figure, axes = plt.subplots(3, 4, figsize=(6, 4.8))
for column in range(4):
    for row, picture in enumerate(
        [shown[column] / 255, heat[column, ..., 0], shown[column] * mask[column] / 255]
    ):
        axes[row, column].imshow(picture, cmap=None if row != 1 else "jet")
        axes[row, column].axis("off")
for row, title in enumerate(["image", "heatmap A", "x_A"]):
    axes[row, 0].set_title(title, fontsize=8, loc="left")
figure.tight_layout()
figure.savefig("segas_filtered_views.png", dpi=100)

"""
## Occlusion robustness

A linear classifier on the frozen features of complete training images,
tested on complete images, on images with a random quarter occluded, and
on images whose most attended region is occluded (the paper's Table 1 and
Figure 3).
"""

for name, backbone in [
    ("MoCo v2", moco.backbone),
    ("SegAS", segas.backbone),
]:
    result = evaluation.occlusion_robustness(
        backbone, (images, labels), (test_images, test_labels),
        num_classes=10, thresholds=(0.6,), epochs=20,
    )
    print(
        f"{name}: complete {result['complete']:.3f}, random occlusion "
        f"{result['random_occlusion']:.3f}, attention occlusion @0.6 "
        f"{result['attention_occlusion'][0.6]:.3f}"
    )

"""
## CAM localisation

For datasets with boxes (TFDS `caltech_birds2011`), the classifier's CAM
gives a box per image; `cam_localization` reports GT-known Loc (IoU >= 0.5
with the true box) and Top-1 Loc (also classified right):

```python
probe = evaluation.linear_probe(*train_features, *test_features)
head = probe.model.layers[-1]
result = evaluation.cam_localization(
    backbone, head.kernel, images, labels, boxes, bias=head.bias
)
```
"""
