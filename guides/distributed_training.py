"""
Title: From one GPU to several machines
Author: keras_ssl developers
Date created: 2026/12/03
Last modified: 2026/12/03
Description: Train any keras_ssl method on all the GPUs of a machine, then across machines, with the learning rate and the losses still right.
Accelerator: None
"""

"""
## Introduction

`keras_ssl.distribute.distribution_scope(mode)` is the only line that
changes between a one-device run and a distributed one. Build, compile and
fit the model inside it:

| mode | backend | where |
|---|---|---|
| `"none"` | any | one device |
| `"mirrored"` | TensorFlow | every GPU of one machine (`MirroredStrategy`) |
| `"jax-data-parallel"` | JAX | every device of one machine |
| `"multi-worker"` | JAX | every device of several processes or machines |

Three rules hold in every mode:

1. **The batch size is the global batch.** A dataset batched with 256 on
   4 GPUs gives each GPU 64 images. The step then computes the same update
   as one device with a batch of 256: every method's loss is scaled per
   replica so that the summed gradients are the global mean's, BatchNorm can
   use global statistics, and MoCo/SegAS enqueue the keys of the whole
   global batch.
2. **The learning rate is for the global batch**, unless you ask for a
   scaling rule. Papers state their rates for a reference batch (MoCo:
   0.03 for 256); `scale_learning_rate` applies the linear or square-root
   rule and the run's log says which.
3. **Random draws do not depend on the number of replicas.** Patch
   positions (Patch RotNet), sampled heads (HPAH/MPAH), MST's masks and
   SegAS's filters are drawn for the global batch, and each replica keeps
   its rows.

The guide runs on a CPU: it splits the CPU into two logical devices, which
behaves like two GPUs (only slower).
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys

import h5py
import keras
import numpy as np
import tensorflow as tf

import keras_ssl
from keras_ssl import distribute

# Two logical CPUs stand in for two GPUs; on a GPU machine skip this line.
distribute.split_cpu(2)
devices = [device.name for device in tf.config.list_logical_devices("CPU")]

images, labels = keras_ssl.data.load_sample("train")[:2]
images, labels = images[:64].astype("float32"), labels[:64]

"""
## One device

A supervised ResNet-8 and one SGD step on a batch of 32.
"""


def one_step(mode, devices=None):
    keras.utils.set_random_seed(0)
    with distribute.distribution_scope(mode, devices=devices) as run:
        backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8)
        model = keras_ssl.methods.Supervised(backbone, num_classes=10)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        if mode == "mirrored":
            distribute.synchronize_batch_norm(model)
        print(run.describe(global_batch_size=32, learning_rate=0.1))
        data = tf.data.Dataset.from_tensor_slices((images[:32], labels[:32])).batch(32)
        model.fit(data, epochs=1, verbose=0)
    return model


single = one_step("none")

"""
## All the GPUs of a machine

On TensorFlow, `"mirrored"` is `tf.distribute.MirroredStrategy`. Without
`devices`, it takes every GPU. `synchronize_batch_norm` makes BatchNorm
normalise over the global batch, as on one device; switch it off with
`synchronize_batch_norm(model, False)` before you save a preset, so that it
loads on every backend. (On JAX, `"jax-data-parallel"` normalises over the
global batch anyway.)
"""

mirrored = one_step("mirrored", devices=devices)
difference = max(
    float(np.max(np.abs(a - b)))
    for a, b in zip(single.get_weights(), mirrored.get_weights())
)
print(f"largest weight difference after one step, 2 replicas vs 1: {difference:.2e}")
assert difference < 1e-4

"""
The same from the command line, for every `train` and `pretrain` method:

```shell
keras-ssl pretrain --method moco_v2 --batch-size 256 --distribute mirrored
```

## The learning rate

`--learning-rate` applies to the global batch as given. To keep a paper's
rate as the batch grows, give the rate for its reference batch and a rule:
"""

for batch in (256, 1024, 4096):
    rate = distribute.scale_learning_rate(0.03, batch, "linear", reference_batch_size=256)
    print(f"MoCo v2, global batch {batch}: learning rate {rate:g}")

"""
On the command line: `--learning-rate 0.03 --lr-scaling linear
--reference-batch-size 256`; the run prints the rate it uses.

## Several machines

On JAX, `"multi-worker"` joins several processes into one run through
JAX's distributed runtime: process 0 coordinates, every process runs the
same command with the same seed, each reads its shard of every global
batch, and the gradients are all-reduced, so every process holds the same
weights after every step. Start one process per machine:

```shell
# machine 0 (10.0.0.1)
KERAS_BACKEND=jax keras-ssl train --distribute multi-worker \\
    --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0 ...
# machine 1
KERAS_BACKEND=jax keras-ssl train --distribute multi-worker \\
    --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1 ...
```

(or set `KERAS_SSL_COORDINATOR`, `KERAS_SSL_NUM_PROCESSES` and
`KERAS_SSL_PROCESS_ID`). Process 0 writes to `--output`; the others write
beside it, to `worker_<i>`, so each can resume from its own checkpoint.
A worker that cannot reach the coordinator stops with an error that names
the address. TensorFlow's `MultiWorkerMirroredStrategy` does not work with
Keras 3's `fit` (it fails on `PerReplica` values), so this mode needs JAX.

`launch_local` runs such a cluster on one machine, which is how to try it
before renting a second one:
"""

command = [
    sys.executable, "-m", "keras_ssl.cli", "train", "--backbone", "resnet8",
    "--dataset", "sample", "--epochs", "1", "--batch-size", "64",
    "--validation-fraction", "0.1", "--distribute", "multi-worker",
    "--output", "multi_worker_run", "--verbose", "0",
]
results = distribute.launch_local(
    command, num_processes=2, timeout=600, env=dict(os.environ, KERAS_BACKEND="jax")
)
for process_id, (code, log) in enumerate(results):
    lines = [line for line in log.splitlines() if line.startswith("distribute:")]
    print(f"process {process_id}: exit {code}; {lines[0] if lines else log[-500:]}")

"""
Both processes end with the same weights:
"""



def weights(path):
    arrays = []
    with h5py.File(path) as file:
        file.visititems(
            lambda _, item: arrays.append(item[()])
            if isinstance(item, h5py.Dataset) else None
        )
    return arrays


same = all(
    np.array_equal(a, b)
    for a, b in zip(
        weights("multi_worker_run/classifier/model.weights.h5"),
        weights("multi_worker_run/worker_1/classifier/model.weights.h5"),
    )
)
print(f"identical weights on both processes: {same}")
assert same

"""
Both also report the same test accuracy. Keras' `DataParallel` gives each
process its share of every global batch, and it would share a short last
batch unevenly (one process then waits forever, the other reports its own
share), so evaluation pads that batch with zero-weight copies of an
example and counts only the real ones (`distribute.evaluate_top1`):
"""

reported = [
    next(line for line in log.splitlines() if line.startswith("test accuracy"))
    for _, log in results
]
print(*reported, sep="\n")
assert len({line.split(";")[0] for line in reported}) == 1

"""
## Mixed precision

`distribute.set_precision("mixed_float16")` (or `--precision
mixed_float16`) before building the model computes in float16 with
float32 variables; `compile` adds dynamic loss scaling. `mixed_bfloat16`
needs no loss scaling. The methods keep their softmaxes, temperatures and
KL terms in float32 either way.
"""
