# keras_ssl first: it makes triton (imported by torchvision and timm via
# torch._dynamo) load safely next to TensorFlow, which the whole suite
# then relies on.
import keras_ssl  # noqa: F401

import keras
import pytest

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs so MirroredStrategy runs with two replicas; this must
    # happen before TensorFlow initialises its devices.
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
elif keras.backend.backend() == "jax":
    import jax

    # Two CPU devices for DataParallel, before JAX initialises its backend.
    jax.config.update("jax_num_cpu_devices", 2)


@pytest.fixture(autouse=True)
def _fresh_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


def to_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def sample_subset(count, split="train"):
    """`count` real CIFAR-10 images from the bundled sample, all classes
    interleaved (the sample is stored sorted by class)."""
    import numpy as np

    from keras_ssl.data import load_sample

    images, labels = load_sample(split)[:2]
    per_class = [np.flatnonzero(labels == c) for c in range(10)]
    interleaved = np.stack(per_class, axis=1).reshape(-1)
    chosen = interleaved[:count]
    return images[chosen].astype("float32"), labels[chosen]


def save_and_reload(model, path):
    """Saves `model` as a `.keras` file, loads it back and checks that every
    variable and the optimizer's state came back; returns the loaded model."""
    import numpy as np

    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.variables) == len(model.variables)
    for saved, restored in zip(model.variables, loaded.variables):
        # Keras saves no random-generator state: draws restart from the seed.
        if not saved.path.endswith("seed_generator_state"):
            np.testing.assert_array_equal(to_numpy(restored), to_numpy(saved))
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(restored), to_numpy(saved))
    return loaded


def two_replica_strategy():
    """A MirroredStrategy over the two logical CPUs set up above.

    Reduction through one device: TensorFlow's collective all-reduce keeps
    process-wide state, so a second collective strategy in the same test
    process fails with "Shape mismatch in the collective instance".
    """
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    assert len(devices) == 2, "conftest.py splits the CPU in two"
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def kill_after_checkpoint(command, env, metadata_path, epoch, timeout=300):
    """Runs `command` and SIGKILLs it once `BackupAndRestore` has saved
    `epoch` (its `training_metadata.json`), as an interrupted user run."""
    import json
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            with open(metadata_path) as file:
                if json.load(file)["epoch"] >= epoch:
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
