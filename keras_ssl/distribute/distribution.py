"""One switch from one device to all of a machine's, then to several machines.

`distribution_scope(mode)` is the only thing that changes between a
one-device run and a distributed one: build and compile the model inside it,
then call `fit` as usual. The batch size a dataset is batched with is always
the global batch (all replicas, all machines together); each replica gets
`global / replicas` of it, and the learning rate applies to the global batch
unless a scaling rule says otherwise (`scale_learning_rate`).
"""

import contextlib
import dataclasses
import math

import keras

MODES = ("none", "mirrored", "multi-worker", "jax-data-parallel")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LEARNING_RATE_SCALING = ("none", "linear", "sqrt")

# MultiWorkerMirroredStrategy over two processes fails inside Keras 3's
# `fit` (measured with Keras 3.15.1 / TensorFlow 2.21 on 127.0.0.1).
_TF_MULTI_WORKER_ERROR = (
    "--distribute multi-worker runs on the JAX backend: set KERAS_BACKEND=jax. "
    "TensorFlow's MultiWorkerMirroredStrategy fails inside Keras 3's fit with "
    "\"ValueError: Attempt to convert a value (PerReplica:{...}) to a Tensor\" "
    "(Keras 3 does not wrap its train function for multi-worker collective "
    "strategies); one machine's GPUs work on TensorFlow with "
    "--distribute mirrored."
)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """Where a run's replicas are.

    Attributes:
        mode: one of `MODES`.
        num_replicas: devices that each take a slice of the global batch,
            over all processes.
        num_processes: processes (machines) in the run; 1 but for
            multi-worker.
        process_id: this process's index.
        strategy: the `tf.distribute.Strategy` for "mirrored", else None.
    """

    mode: str = "none"
    num_replicas: int = 1
    num_processes: int = 1
    process_id: int = 0
    strategy: object = None

    @property
    def is_chief(self):
        """Whether this process writes checkpoints, presets and reports."""
        return self.process_id == 0

    def per_replica_batch_size(self, global_batch_size):
        """The slice of `global_batch_size` each replica computes."""
        if global_batch_size % self.num_replicas:
            raise ValueError(
                f"The global batch size {global_batch_size} does not split "
                f"evenly over {self.num_replicas} replicas. Pass a multiple of "
                f"{self.num_replicas} to --batch-size (the batch size is "
                "always the global one, over all replicas)."
            )
        return global_batch_size // self.num_replicas

    def describe(self, global_batch_size, learning_rate=None, base_learning_rate=None,
                 scaling="none", reference_batch_size=256):
        """One line for the run's log: replicas, batch split, learning rate."""
        per_replica = self.per_replica_batch_size(global_batch_size)
        where = {
            "none": "one device",
            "mirrored": f"MirroredStrategy over {self.num_replicas} replicas",
            "jax-data-parallel": f"JAX DataParallel over {self.num_replicas} devices",
            "multi-worker": (
                f"JAX DataParallel over {self.num_replicas} devices in "
                f"{self.num_processes} processes (this is process {self.process_id})"
            ),
        }[self.mode]
        line = (
            f"distribute: {where}; global batch {global_batch_size} = "
            f"{self.num_replicas} x {per_replica} per replica"
        )
        if learning_rate is not None:
            if scaling == "none":
                line += f"; learning rate {learning_rate:g} for the global batch"
            else:
                line += (
                    f"; learning rate {learning_rate:g} = {base_learning_rate:g} "
                    f"x ({global_batch_size} / {reference_batch_size})"
                    + ("^0.5" if scaling == "sqrt" else "")
                    + f" ({scaling} scaling)"
                )
        return line


def scale_learning_rate(learning_rate, global_batch_size, scaling="none",
                        reference_batch_size=256):
    """The learning rate for `global_batch_size` under a scaling rule.

    "none" keeps `learning_rate` (it is meant for the global batch);
    "linear" is Goyal et al.'s rule, `lr * global / reference`, the one
    DINO, MoCo and MST state their base rates with (reference 256); "sqrt"
    scales by `sqrt(global / reference)`, common with Adam-type optimizers.
    """
    if scaling not in LEARNING_RATE_SCALING:
        raise ValueError(
            f"Unknown learning-rate scaling '{scaling}'; use one of "
            f"{', '.join(LEARNING_RATE_SCALING)}."
        )
    if reference_batch_size <= 0:
        raise ValueError(
            f"`reference_batch_size` must be positive, got {reference_batch_size}."
        )
    ratio = global_batch_size / reference_batch_size
    if scaling == "linear":
        return learning_rate * ratio
    if scaling == "sqrt":
        return learning_rate * math.sqrt(ratio)
    return learning_rate


def set_precision(precision):
    """Sets the global dtype policy; call it before building the model.

    "mixed_float16" computes in float16 with float32 variables and, because
    `compile` then wraps the optimizer in a `LossScaleOptimizer`, dynamic
    loss scaling; "mixed_bfloat16" needs no loss scaling. The methods keep
    softmaxes, temperatures, KL terms and k-means in float32 either way.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}."
        )
    keras.config.set_dtype_policy(precision)


def synchronize_batch_norm(model, enabled=True):
    """Makes the BatchNormalization layers of `model` use global statistics.

    Under MirroredStrategy each replica otherwise normalises with its own
    shard's mean and variance, so the update differs from a one-device run
    of the same global batch. JAX's DataParallel already normalises over
    the global batch. Call with `enabled=False` before saving a preset
    (TensorFlow only supports the flag, and it is saved in the config).

    Returns:
        The number of layers changed.
    """
    if enabled and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Synchronised BatchNormalization is a tf.distribute feature; on "
            f"{keras.backend.backend()} there is nothing to synchronise "
            "(JAX's DataParallel normalises over the global batch)."
        )
    layers = [
        layer for layer in model._flatten_layers(include_self=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in layers:
        layer.synchronized = enabled
    return len(layers)


def split_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices.

    For trying data parallelism without accelerators (tests, benchmarks,
    a laptop): call before the backend initialises its devices.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
            )
        except RuntimeError as error:
            if len(tf.config.list_logical_devices("CPU")) != num_devices:
                raise RuntimeError(
                    f"Cannot split the CPU into {num_devices} devices: "
                    "TensorFlow has already initialised its devices. Call "
                    "split_cpu before anything runs on TensorFlow."
                ) from error
    elif backend == "jax":
        import jax

        try:
            jax.config.update("jax_num_cpu_devices", num_devices)
        except RuntimeError as error:
            if len(jax.devices("cpu")) != num_devices:
                raise RuntimeError(
                    f"Cannot split the CPU into {num_devices} devices: JAX "
                    "has already initialised its backends. Call split_cpu "
                    "before anything runs on JAX."
                ) from error
    else:
        raise ValueError(
            f"Data parallelism runs on TensorFlow or JAX, not {backend}."
        )


def _check_backend(mode):
    backend = keras.backend.backend()
    if mode == "mirrored" and backend != "tensorflow":
        raise ValueError(
            f"--distribute mirrored is tf.distribute's MirroredStrategy and "
            f"needs KERAS_BACKEND=tensorflow (this is {backend}). On JAX use "
            "--distribute jax-data-parallel."
        )
    if mode == "jax-data-parallel" and backend != "jax":
        raise ValueError(
            f"--distribute jax-data-parallel needs KERAS_BACKEND=jax (this is "
            f"{backend}). On TensorFlow use --distribute mirrored."
        )
    if mode == "multi-worker" and backend != "jax":
        raise ValueError(_TF_MULTI_WORKER_ERROR)


@contextlib.contextmanager
def distribution_scope(mode="none", devices=None, cluster=None):
    """Builds, compiles and trains inside this to run on many devices.

    Args:
        mode: "none" (one device), "mirrored" (TensorFlow, every GPU of
            the machine), "jax-data-parallel" (JAX, every local device) or
            "multi-worker" (JAX, every device of several processes).
        devices: the devices to replicate over (names for TensorFlow, jax
            devices for JAX); None for all.
        cluster: a `ClusterSpec` for "multi-worker"; None reads it from
            the `KERAS_SSL_COORDINATOR`, `KERAS_SSL_NUM_PROCESSES` and
            `KERAS_SSL_PROCESS_ID` environment variables.

    Yields:
        A `Distribution`.

    Example:

    ```python
    with keras_ssl.distribute.distribution_scope("mirrored") as run:
        model = keras_ssl.methods.MoCoV2(backbone)
        model.compile(optimizer=keras.optimizers.SGD(0.03))
    print(run.describe(global_batch_size=256))
    model.fit(dataset.batch(256), epochs=200)
    ```
    """
    if mode not in MODES:
        raise ValueError(f"Unknown --distribute '{mode}'; use one of {', '.join(MODES)}.")
    _check_backend(mode)
    if mode == "none":
        yield Distribution()
        return
    if mode == "mirrored":
        import tensorflow as tf

        cross_device_ops = None
        if devices is not None and all("CPU" in d.upper() for d in devices):
            # Logical CPUs gain nothing from collectives, and a second
            # collective strategy in one process fails ("Shape mismatch in
            # the collective instance").
            cross_device_ops = tf.distribute.ReductionToOneDevice()
        strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops)
        with strategy.scope():
            yield Distribution(
                mode, num_replicas=strategy.num_replicas_in_sync, strategy=strategy
            )
        return

    import jax

    from keras_ssl.distribute.multi_worker import initialize_workers

    num_processes, process_id = 1, 0
    if mode == "multi-worker":
        spec = initialize_workers(cluster)
        num_processes, process_id = spec.num_processes, spec.process_id
    devices = list(devices) if devices is not None else jax.devices()
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield Distribution(
            mode, num_replicas=len(devices), num_processes=num_processes,
            process_id=process_id,
        )
    finally:
        keras.distribution.set_distribution(previous)
