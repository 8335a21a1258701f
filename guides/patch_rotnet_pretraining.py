"""
Title: Self-supervised pretraining with Patch RotNet, evaluated by k-NN, linear probe and fine-tuning
Author: keras_ssl developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Pretrain a ResNet-8 without labels by predicting the rotation of images and of pasted patches, then judge the features with the protocols of self-supervised learning.
Accelerator: None
"""

"""
## Introduction

Self-supervised learning trains an encoder on a *pretext task* whose labels
come for free. RotNet (Gidaris et al. 2018) rotates each image by 0, 90, 180
or 270 degrees and asks which. Patch RotNet and Patch RelNet (Pham et al.,
"Self-supervised learning with local attention-aware feature") add a local
task: a shrunken copy of the rotated image is pasted into the upright image,
so the network must look both at the whole image and at the patch.

From each image x, with rotations r_0..r_3:

- **Patch RotNet** classifies 8 images: r_0..r_3 (labels 0..3) and the
  patched images p_0..p_3 (labels 4..7), where p_k is x with `resize(r_k)`
  pasted at a random position (side `patch_ratio` x side, 0.4 by default).
- **Patch RelNet** encodes the pairs (r_k, p_k) with one encoder,
  concatenates the two features and predicts k.

A pretrained encoder is then judged without its pretext head, as in the
paper and in every self-supervised paper since: **k-NN** on frozen
features, a **linear probe** on frozen features, and **fine-tuning**.

This guide runs on the CIFAR-10 sample bundled with keras_ssl (1,500 train
and 300 test images) in a few minutes on a CPU, on any Keras backend.
"""

"""
## Setup
"""

import os

import keras
import numpy as np

import keras_ssl
from keras_ssl import evaluation
from keras_ssl import visualization
from keras_ssl.data import load_dataset
from keras_ssl.data import load_sample

keras.utils.set_random_seed(0)
output_dir = "patch_rotnet_guide"
os.makedirs(output_dir, exist_ok=True)

"""
## The pretext views

`PatchRotNet.generate_views` builds the 8 views of a batch on the device,
with batched tensor ops (no per-image Python loop). Here they are for two
images, with their Grad-CAM maps, which we draw again after training.
"""

backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8, image_shape=(32, 32, 3))
model = keras_ssl.methods.PatchRotNet(backbone, patch_ratio=0.4, seed=0)

images = load_sample("test")[0][[0, 150]].astype("float32")
views = model.generate_views(images)
labels = keras.ops.convert_to_numpy(model.pretext_labels())
print("views:", tuple(views.shape), "labels:", labels)

"""
## Pretraining without labels

`fit` takes unlabelled images, or `(images, labels)` batches whose labels it
ignores, so a `load_dataset` dataset feeds it directly. The loss is the
cross-entropy averaged over the 8 views (the paper's Eq. 1); the accuracy is
that of the pretext task. The paper trains for 200 epochs with batch 64; we
train for a few epochs on the sample.
"""

train_data = load_dataset("sample", batch_size=64, augment="cifar", seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train_data, epochs=3, verbose=2)

"""
Each of the 8 generated images with its Grad-CAM map for its pretext label
(the paper's Figure 3):
"""

visualization.plot_gradcam(
    model, images, os.path.join(output_dir, "gradcam.png"),
    offsets=np.array([[4, 4], [15, 10]]),
)

"""
## Evaluation 1: k-NN on frozen features

`extract_features` runs the frozen encoder (with its preprocessing) over a
dataset and pools the last feature map (64-d for the CIFAR ResNets).
`knn_classify` is the weighted k-NN of Wu et al. used by DINO: cosine
similarity, the k nearest train features vote with weight exp(sim / T).
"""

labelled = load_dataset("sample", batch_size=250, shuffle=False)
test, info = load_dataset("sample", split="test", batch_size=100, with_info=True)
train_features, train_labels = evaluation.extract_features(model.backbone, labelled)
test_features, test_labels = evaluation.extract_features(model.backbone, test)

predictions = evaluation.knn_classify(
    train_features, train_labels, test_features, k=20, temperature=0.07
)
print(f"k-NN accuracy: {np.mean(predictions == test_labels):.3f} (chance 0.100)")

"""
## Evaluation 2: linear probe

A classifier trained on the frozen features: `head="linear"` is the usual
linear evaluation, `head="two_fc"` the paper's two fully connected layers.
The paper trains 100 epochs with batch 32 (the defaults); 30 are enough
here.
"""

for head in ("linear", "two_fc"):
    result = evaluation.linear_probe(
        train_features, train_labels, test_features, test_labels,
        head=head, epochs=30,
    )
    print(f"linear probe ({head}): {result.accuracy:.3f}")

"""
## Evaluation 3: fine-tuning

A copy of the encoder and a head trained end to end on the labels (the
paper: 20 epochs, batch 32, two fully connected layers). The pretrained
`model.backbone` itself is left unchanged.
"""

result = evaluation.fine_tune(
    model.backbone,
    load_dataset("sample", batch_size=32, augment="cifar", seed=0),
    test,
    num_classes=10,
    head="two_fc",
    epochs=2,
)
print(f"fine-tuned: {result.accuracy:.3f}")

"""
## A t-SNE of the features

The paper's Figure 4 compares t-SNE plots of the features of Patch RotNet
and RotNet. `plot_tsne` needs scikit-learn.
"""

visualization.plot_tsne(
    test_features, test_labels, os.path.join(output_dir, "tsne.png"),
    class_names=info.class_names,
    title="Patch RotNet features (sample test split)",
)

"""
## Saving the encoder, and the command line

The encoder is a keras-hub backbone: save it as a preset and load it with
`keras_hub.models.Backbone.from_preset`.
"""

model.backbone.save_to_preset(os.path.join(output_dir, "backbone"))

"""
The same steps from a shell:

```shell
keras-ssl pretrain --method patch_rotnet --backbone resnet8 --dataset cifar10 \\
    --epochs 200 --batch-size 64 --output runs/patch_rotnet
keras-ssl evaluate --protocol knn --model runs/patch_rotnet/backbone --dataset cifar10
keras-ssl evaluate --protocol linear --head two_fc \\
    --model runs/patch_rotnet/backbone --dataset cifar10
keras-ssl evaluate --protocol finetune --head two_fc \\
    --model runs/patch_rotnet/backbone --dataset cifar10
```

`scripts/reproduce_patch_rotnet.py` runs RotNet, Patch RotNet and Patch
RelNet with one budget next to random-init and supervised rows, as the
paper's Table 1; `docs/patch_rotnet_reproduction.md` has the measured
table.
"""
