"""Step time of each method on one device vs two (MirroredStrategy on TF,
DataParallel on JAX), and mixed precision vs float32.

Without accelerators, `--cpu-devices 2` splits the CPU into two logical
devices: the two replicas then share the same cores, so the ratio measures
the cost of the distribution machinery (splitting, all-reduce, gathered
negatives), not a speed-up. On a machine with 2 GPUs, leave it out.

    KERAS_BACKEND=tensorflow python scripts/benchmark_distribute.py \
        --cpu-devices 2 --output docs/benchmarks/distribute_tensorflow.json
"""

import argparse
import json
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-devices", type=int, default=None)
    parser.add_argument("--methods", default=None,
                        help="Comma-separated names (default: all).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default=None)
    return parser.parse_args()


def main():
    args = parse_args()
    import keras
    import tensorflow as tf

    from keras_ssl import distribute

    if args.cpu_devices:
        distribute.split_cpu(args.cpu_devices)
    # The tiny models and batches of the distribution tests, at a larger batch.
    from tests import test_distribute as cases

    cases.BATCH = args.batch_size
    backend = keras.backend.backend()
    parallel = {"tensorflow": "mirrored", "jax": "jax-data-parallel"}[backend]
    if backend == "jax":
        import jax

        devices = jax.devices()
    else:
        kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
    names = args.methods.split(",") if args.methods else list(cases.METHODS)

    def step_time(name, mode, precision):
        build, batch, prepare = cases.METHODS[name]
        data = batch()
        distribute.set_precision(precision)
        keras.utils.set_random_seed(0)
        with distribute.distribution_scope(
            mode, devices=devices if mode != "none" else None
        ):
            model = build()
            model.compile(optimizer=keras.optimizers.SGD(0.01))
            if mode == "mirrored":
                distribute.synchronize_batch_norm(model)
            steps = args.warmup + args.steps
            dataset = tf.data.Dataset.from_tensor_slices(data).batch(
                args.batch_size).repeat(steps)
            times = []
            callback = keras.callbacks.LambdaCallback(
                on_train_begin=lambda logs: prepare and prepare(model),
                on_train_batch_begin=lambda b, logs: times.append(time.perf_counter()),
            )
            model.fit(dataset, epochs=1, verbose=0, callbacks=[callback])
            times.append(time.perf_counter())
        keras.config.set_dtype_policy("float32")
        timed = times[args.warmup:]
        return (timed[-1] - timed[0]) / (len(timed) - 1)

    rows = []
    for name in names:
        single = step_time(name, "none", "float32")
        two = step_time(name, parallel, "float32")
        mixed = step_time(name, "none", "mixed_float16")
        rows.append({
            "method": name, "one_device_s": single, f"{parallel}_s": two,
            "parallel_ratio": two / single, "mixed_float16_s": mixed,
            "mixed_ratio": mixed / single,
        })
        print(f"{name:14s} 1 device {single * 1e3:8.1f} ms | {len(devices)} "
              f"devices {two * 1e3:8.1f} ms ({two / single:.2f}x) | "
              f"mixed_float16 {mixed * 1e3:8.1f} ms ({mixed / single:.2f}x)",
              flush=True)
    report = {
        "backend": backend, "devices": [str(d) for d in devices],
        "batch_size": args.batch_size, "steps": args.steps,
        "warmup": args.warmup, "rows": rows,
    }
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
