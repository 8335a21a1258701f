"""
Title: Getting started with keras_ssl
Author: keras_ssl developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Build a backbone, train it on images, save it as a preset and load it back in two lines.
Accelerator: None
"""

"""
## Introduction

keras_ssl is a Keras 3 library of backbones and training methods for
self-supervised and internal-pretext-task learning on images. It runs on
TensorFlow, JAX and PyTorch, and its models are keras-hub presets. This
guide goes from an empty environment to a trained, saved and reloaded
classifier on the CIFAR-10 sample that ships with the package.

```shell
pip install keras-ssl          # from a checkout: pip install -e .
export KERAS_BACKEND=jax       # or tensorflow (the default), torch
```
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

keras.utils.set_random_seed(0)

"""
## Data

`load_dataset` gives a batched, shuffled `tf.data.Dataset` of raw `[0, 255]`
images and integer labels, which `model.fit` consumes on every backend.
`spec` is a TFDS name (`"cifar10"`, `"oxford_iiit_pet"`, ...), an image
folder (`root/<split>/<class>/*.jpg`), numpy arrays, or `"sample"`.
"""

train, info = load_dataset(
    "sample", split="train", batch_size=64, augment="cifar", seed=0, with_info=True
)
test = load_dataset("sample", split="test", batch_size=100)
print(info.class_names, info.num_examples)

"""
## A backbone

Three families: `CRATEBackbone` (the white-box transformer), `ViTBackbone`
(ViT/DeiT, laid out as timm) and `ResNetBackbone` (CIFAR and torchvision
styles). Named sizes follow the papers; at 32x32 we use patches of 4.
"""

backbone = keras_ssl.models.ViTBackbone.from_size(
    "tiny", image_shape=(32, 32, 3), patch_size=4, num_layers=2
)
backbone.summary(line_length=80)

"""
The transformer parts are exposed for methods that need them: per-head
attention probabilities, a post-softmax attention multiplier and a [MASK]
token.
"""

images = next(iter(test))[0][:2]
tokens = backbone.embed(keras_ssl.methods.supervised.default_preprocessor(backbone)(images))
tokens, attention = backbone.blocks[0](tokens, return_attention=True)
print("tokens", tokens.shape, "attention", attention.shape)

"""
## Supervised training

`Supervised` is the baseline every method builds on: the family's
classifier, preprocessing inside the model, labels checked against
`num_classes`.
"""

model = keras_ssl.methods.Supervised(backbone, num_classes=info.num_classes)
model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05))
model.fit(train, epochs=2, verbose=2)
print(model.evaluate(test, return_dict=True, verbose=0))

"""
## Save a preset, load it in two lines

`export_classifier` writes a keras-hub preset folder (config, weights,
preprocessing). keras-hub's own `ImageClassifier.from_preset` loads it once
`keras_ssl` is imported; the same works with `hf://owner/repo` handles
after `keras_ssl.hub.publish_preset`.
"""

model.export_classifier("vit_tiny_sample")

classifier = keras_hub.models.ImageClassifier.from_preset("vit_tiny_sample")
predictions = classifier.predict(next(iter(test))[0], verbose=0)
print(type(classifier).__name__, np.argmax(predictions, -1)[:10])

"""
## From the command line

The same run, resumable if interrupted:

```shell
keras-ssl train --backbone vit_tiny --num-layers 2 --epochs 2 --output runs/vit
keras-ssl evaluate --model runs/vit/classifier
keras-ssl presets
```
"""
