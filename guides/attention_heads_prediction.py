"""
Title: Attention-head prediction: HPAH and MPAH
Author: keras_ssl developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Add an internal pretext task to supervised training of a transformer, then look at its attention heads.
Accelerator: None
"""

"""
## Introduction

HPAH and MPAH ("The Highest scoring Patch in the Attention Head" and "The
Masked Patches in the Attention Head") take a self-supervised label from
inside a transformer: *which attention head* a patch belongs to. During
supervised training, a head `h` is drawn at random for every image:

- **HPAH** takes the tokens of the patches that head's class-token attention
  ranks highest and asks a small head to predict `h` from them.
- **MPAH** removes `h`'s attention to its top patches (after the softmax),
  re-runs the network from that block, and predicts `h` from the result.

The loss is `CE(y, logits) + lambda * CE(h, aux)`, with `lambda = 0.2` in
the paper. Inference is the plain classifier: the auxiliary head is only
used for training.

This guide trains a small CRATE on the CIFAR-10 sample bundled with
keras_ssl, with and without HPAH, and compares their attention maps. It
runs on a CPU in a few minutes; with a GPU, swap in a pretrained preset and
a real dataset.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # or "jax", "torch"

import keras

import keras_ssl
from keras_ssl.data import load_dataset
from keras_ssl.data import load_sample

keras.utils.set_random_seed(0)

"""
## Data

`load_dataset` takes a TFDS name (`"oxford_flowers102"`), an image folder or
`"sample"`, and returns batches of raw `[0, 255]` images and integer
labels; the models resize and normalise inside.
"""

train = load_dataset("sample", split="train", batch_size=64, augment="cifar", seed=0)
test = load_dataset("sample", split="test", batch_size=100)

"""
## A baseline and an HPAH model

Both start from the same random initialisation. `HPAH` is `Supervised` with
one auxiliary task; its arguments are the paper's choices (`aux_weight` is
lambda, `top_k` the number of patches, `layer_index` the block).
"""


def small_crate():
    keras.utils.set_random_seed(0)
    return keras_ssl.models.CRATEBackbone(
        image_shape=(32, 32, 3), patch_size=4, hidden_dim=64, num_layers=4,
        num_heads=4,
    )


baseline = keras_ssl.methods.Supervised(small_crate(), num_classes=10)
hpah = keras_ssl.methods.HPAH(
    small_crate(), num_classes=10, aux_weight=0.2, top_k=1, layer_index=-1
)
for model in (baseline, hpah):
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05))

"""
## Train

The HPAH model logs its auxiliary accuracy (`hpah_accuracy`) next to the
loss; with 4 heads, chance is 0.25.
"""

baseline.fit(train, epochs=3, verbose=2)
hpah.fit(train, epochs=3, verbose=2)

for name, model in (("supervised", baseline), ("HPAH", hpah)):
    accuracy = model.evaluate(test, return_dict=True, verbose=0)["accuracy"]
    print(f"{name}: test accuracy {accuracy:.3f} (300 images, 3 epochs)")

"""
`keras_ssl.methods.MPAH` is used the same way (`top_k=3` by default). The
tasks compose: `Supervised(backbone, 10, auxiliary_tasks=[
HighestScoringPatchTask(), MaskedPatchesTask()])` trains both at once.

## Look at the attention heads

`plot_attention_heads` draws, for each model, the class token's attention of
every head of the last block over the image: the view of the paper's
Figure 5.
"""

image = load_sample("test")[0][7]
keras_ssl.visualization.plot_attention_heads(
    [baseline, hpah], image, titles=["CRATE", "CRATE + HPAH"],
    path="attention_heads.png",
)

"""
## Export the classifier

The exported preset is the plain classifier, without the auxiliary head; it
loads with keras-hub's `from_preset` once `keras_ssl` is imported.
"""

hpah.export_classifier("crate_hpah_sample")
classifier = keras_ssl.models.CRATEImageClassifier.from_preset("crate_hpah_sample")
print(classifier.predict(load_sample("test")[0][:4], verbose=0).argmax(-1))
