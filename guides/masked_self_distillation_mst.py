"""
Title: Masked self-distillation with MST and its DINO baseline
Author: keras_ssl developers
Date created: 2026/12/03
Last modified: 2026/12/03
Description: Pretrain a small ViT without labels with DINO and with MST (attention-guided masking plus image restoration), look at the masks, and judge the features by k-NN.
Accelerator: None
"""

"""
## Introduction

DINO (Caron et al. 2021) trains a *student* network to match, on every crop
of an image, the output of a *teacher* that is an exponential moving
average of the student. The teacher's output is centred (minus a running
mean) and sharpened (a low temperature) so that the two cannot collapse to
a constant.

MST (Li et al. 2021, "MST: Masked Self-Supervised Transformer for Visual
Representation") adds two things to DINO:

- **Attention-guided masking.** The teacher's last-layer class-token
  attention, averaged over heads, ranks the patches of each global view.
  The lowest 1/num (num = 8) are candidates, and each is replaced with
  probability p by a learned [MASK] token in the *student's* input. The
  important patches stay visible; the teacher and the local crops are
  never masked.
- **A global image decoder** restores the whole view from the student's
  patch tokens (L1 loss, weight 0.6).

This guide runs on the CIFAR-10 sample bundled with keras_ssl, on a CPU, on
any Keras backend. The budget is tiny: it shows the API, not the paper's
numbers (see `scripts/reproduce_mst.py` for those).
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
from keras_ssl.data import multi_crop

keras.utils.set_random_seed(0)
output_dir = "mst_guide"
os.makedirs(output_dir, exist_ok=True)


def small_vit():
    return keras_ssl.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=4, hidden_dim=64, num_layers=2,
        num_heads=2, mlp_dim=128,
    )


"""
## Multi-crop views

`multi_crop` gives 2 global crops (area 40-100 %, full resolution) and N
local crops (area 5-40 %, here 16x16) of each image; `colour=True` adds
DINO's colour jitter, grayscale, blur and solarisation. The local crops go
through the same backbone: their position embeddings are interpolated.
"""

crops = multi_crop(32, 16, num_global=2, num_local=2, colour=True,
                   blur_sigma=(0.1, 0.5))
# 500 of the sample's 1,500 train images keep the guide fast.
train_images, train_labels = load_sample("train")[:2]
subset = (train_images[::3], train_labels[::3])
train_data = load_dataset(subset, batch_size=100, augment=crops, seed=0,
                          drop_remainder=True)
views, _ = next(iter(train_data))
print("views:", [tuple(view.shape) for view in views])

"""
## Pretraining

Both models take the views as they come from the dataset (labels are
ignored). `fit` sizes DINO's schedules to the run: the teacher momentum
(0.996 -> 1, cosine), the teacher temperature warm-up (0.04 -> 0.07) and
the frozen last layer of the first epoch. `out_dim` is 65536 on ImageNet; a
much smaller head fits this sample. DINO's optimizer is AdamW with a
cosine weight decay from 0.04 to 0.4 and gradient clipping at 3.
"""

epochs = 2
steps = epochs * 5


def optimizer():
    return keras_ssl.optimizers.AdamWCosineWeightDecay(
        5e-4, weight_decay=0.04, final_weight_decay=0.4, decay_steps=steps,
        clipnorm=3.0,
    )


dino = keras_ssl.methods.DINO(small_vit(), out_dim=1024,
                              teacher_temperature_warmup_epochs=epochs)
dino.compile(optimizer=optimizer())
dino.fit(train_data, epochs=epochs, verbose=2)

mst = keras_ssl.methods.MST(small_vit(), out_dim=1024, candidate_fraction=1 / 8,
                            mask_probability=0.1, restoration_weight=0.6,
                            teacher_temperature_warmup_epochs=epochs, seed=0)
mst.compile(optimizer=optimizer())
history = mst.fit(train_data, epochs=epochs, verbose=2)
print("MST restoration loss per epoch:", history.history["restoration_loss"])

"""
## The masks (the paper's Figure 2)

For each image: the teacher's attention, a random mask (Eq. 3, which may
hide the object) and the attention-guided mask (Eq. 5, only among the
least-attended patches). A higher probability than in training makes the
difference visible.
"""

images = load_sample("test")[0][[0, 150, 290]].astype("float32")
attention, random_mask, guided_mask = visualization.plot_mst_masks(
    mst, images, os.path.join(output_dir, "masks.png"), mask_probability=0.5
)
print("masked patches, random vs guided:", random_mask.sum(), guided_mask.sum())

"""
## k-NN on frozen features

The pretrained student is `model.backbone`; its class token is the feature
(`extract_features` pools it). A random-init encoder is the floor. After
10 steps on 500 images nothing has been learned yet (the three rows are
about equal); `scripts/reproduce_mst.py` trains long enough for the
comparison to mean something.
"""

labelled = load_dataset("sample", batch_size=250, shuffle=False)
test = load_dataset("sample", split="test", batch_size=100)
for name, backbone in (("random init", small_vit()), ("DINO", dino.backbone),
                       ("MST", mst.backbone)):
    train_features, train_labels = evaluation.extract_features(
        backbone, labelled, verbose=0
    )
    test_features, test_labels = evaluation.extract_features(
        backbone, test, verbose=0
    )
    predictions = evaluation.knn_classify(
        train_features, train_labels, test_features, k=20, temperature=0.07
    )
    print(f"{name}: k-NN accuracy {np.mean(predictions == test_labels):.3f}")

"""
## Saving, and the command line

```shell
keras-ssl pretrain --method mst --backbone vit_small --patch-size 4 \\
    --dataset cifar10 --epochs 100 --batch-size 256 --out-dim 4096 \\
    --local-crops 8 --output runs/mst
keras-ssl evaluate --protocol knn --model runs/mst/backbone --dataset cifar10
```

`--mask-strategy random|none` gives the paper's ablations (Table 4), and
`--candidate-fraction` / `--mask-probability` its Table 5 grid.
"""

mst.backbone.save_to_preset(os.path.join(output_dir, "backbone"))
