"""SegAS's cost next to MoCo v2, and the k-means time per clustering.

    KERAS_BACKEND=tensorflow python scripts/benchmark_segas.py --output docs/benchmarks/segas_tensorflow.json

- Train-step time of MoCo v2, SegAS without ApFS and full SegAS on one
  backbone and batch, interleaved (rounds of a few steps each, the median
  per method), after the prototypes exist (so every SegAS loss runs).
- Peak memory: each method trains in a fresh process, reporting its RSS
  high-water mark (VmHWM) growth over the built model.
- k-means: one hierarchical clustering (faiss, k-means++ seeds) of N x D
  unit embeddings, and scikit-learn's Lloyd `KMeans` on the first level
  for comparison (`--sklearn-timeout` bounds it).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

METHODS = ("moco_v2", "segas_without_apfs", "segas")


def build(method, args):
    import keras

    from keras_ssl.methods import MoCoV2
    from keras_ssl.methods import SegAS
    from keras_ssl.models import ResNetBackbone

    keras.utils.set_random_seed(0)
    backbone = ResNetBackbone.cifar(
        depth=args.depth, image_shape=(args.image_size, args.image_size, 3)
    )
    common = dict(queue_size=args.queue_size, seed=0)
    if method == "moco_v2":
        model = MoCoV2(backbone, **common)
    else:
        model = SegAS(
            backbone, num_prototypes=(64, 16, 4), memory_size=4 * args.batch_size,
            use_apfs=method == "segas", **common,
        )
    model.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9, weight_decay=1e-4))
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    batch = tuple(rng.uniform(0, 255, shape).astype("float32") for _ in range(2))
    return model, batch


def warm_up(model, batch):
    """Compiles the step, fills the bank and clusters it."""
    for _ in range(4):
        model.train_on_batch(batch)
    if hasattr(model, "update_prototypes"):
        model.update_prototypes()


def step_times(args):
    models = {method: build(method, args) for method in METHODS}
    for model, batch in models.values():
        warm_up(model, batch)
    times = {method: [] for method in METHODS}
    for _ in range(args.rounds):
        for method, (model, batch) in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(batch)
            times[method].append((time.perf_counter() - start) / args.steps)
    return {method: float(np.median(values)) for method, values in times.items()}


def memory_probe(method, args):
    model, batch = build(method, args)
    with open("/proc/self/status") as f:
        built = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    warm_up(model, batch)
    for _ in range(args.steps):
        model.train_on_batch(batch)
    with open("/proc/self/status") as f:
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    print(json.dumps({"peak_growth_mb": (peak - built) / 1024}))


def peak_memory(method, args):
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe", method]
    for name in ("depth", "image_size", "batch_size", "queue_size", "steps"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_growth_mb"]


def kmeans_times(args):
    from keras_ssl.ops import hierarchical_kmeans
    from keras_ssl.ops.prototypes import kmeans_plusplus

    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.kmeans_samples, args.kmeans_dim)).astype("float32")
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    levels = tuple(args.kmeans_levels)
    start = time.perf_counter()
    kmeans_plusplus(features, levels[0])
    seeding = time.perf_counter() - start
    start = time.perf_counter()
    hierarchical_kmeans(features, levels)
    result = {
        "samples": args.kmeans_samples, "dim": args.kmeans_dim,
        "levels": list(levels), "faiss_hierarchical_seconds": time.perf_counter() - start,
        "kmeans_plusplus_seeding_seconds": seeding,
    }
    # scikit-learn's Lloyd KMeans, same seeds count and iterations, level 1.
    code = (
        "import numpy as np, time; from sklearn.cluster import KMeans; "
        f"x = np.random.default_rng(0).normal(size=({args.kmeans_samples}, {args.kmeans_dim})).astype('float32'); "
        "x /= np.linalg.norm(x, axis=1, keepdims=True); t = time.perf_counter(); "
        f"KMeans({levels[0]}, n_init=1, max_iter=20, random_state=0).fit(x); "
        "print(time.perf_counter() - t)"
    )
    try:
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True,
            timeout=args.sklearn_timeout, check=True,
        ).stdout
        result["sklearn_level1_seconds"] = float(output.strip())
    except subprocess.TimeoutExpired:
        result["sklearn_level1_seconds"] = f"> {args.sklearn_timeout} (stopped)"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queue-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kmeans-samples", type=int, default=50000)
    parser.add_argument("--kmeans-dim", type=int, default=128)
    parser.add_argument("--kmeans-levels", type=int, nargs="+", default=[1000, 100, 10])
    parser.add_argument("--sklearn-timeout", type=int, default=300)
    parser.add_argument("--skip-kmeans", action="store_true")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.memory_probe, args)

    import keras

    times = step_times(args)
    memory = {method: peak_memory(method, args) for method in METHODS}
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    result = {
        "backend": keras.backend.backend(),
        "model": f"ResNet-{args.depth} at {args.image_size}x{args.image_size}, batch {args.batch_size}",
        "step_seconds": times,
        "step_ratio_to_moco_v2": {m: times[m] / times["moco_v2"] for m in METHODS},
        "peak_growth_mb": memory,
        "memory_ratio_to_moco_v2": {m: memory[m] / memory["moco_v2"] for m in METHODS},
        "load_average": load,
        "command": " ".join(["python"] + sys.argv),
    }
    if not args.skip_kmeans:
        result["kmeans"] = kmeans_times(args)
    print(json.dumps(result, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
