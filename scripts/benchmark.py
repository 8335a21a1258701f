"""Throughput and memory benchmark of keras_ssl models on one Keras backend.

For every model it times, on the backend named by `KERAS_BACKEND`:

- forward: `model.predict_on_batch(images)`, i.e. inference
  (`training=False`) through Keras' own predict function (a `tf.function`
  on TensorFlow, `jax.jit` on JAX, eager PyTorch on torch);
- train step: `model.train_on_batch(images, labels)` after
  `compile(optimizer="adamw", loss=SparseCategoricalCrossentropy(
  from_logits=True), metrics=None)` with `jit_compile` left at Keras'
  default `"auto"` (the resolved value is recorded).

The same configuration of the PyTorch reference implementation (timm ViT,
the `tests/torch_references.py` CRATE, torchvision ResNet) is timed in the
same process, as are the other `--method`s on the same backbone, all
interleaved run by run so that load from other processes hits them alike;
our throughput is reported as a ratio "ours / reference", and a method's
as a ratio to supervised. After `--warmup` steps, `--runs` timed runs of
`--steps` steps each are made; the median images/s is reported with min
and max.

Memory is the growth of the process' resident set size (RSS, sampled from
`/proc/self/statm`) above its value at the start of each timed run, maximised
over runs: the step's working memory (activations, gradients, temporaries),
not the persistent weights. On CPU, RSS is the only memory figure; accelerator
memory statistics of the backend are recorded when it reports any.

Results go to a JSON file and to this backend's section of
`docs/BENCHMARKS.md` (other backends' sections are kept, so running the
script once per backend builds the whole file).

The models, methods, measurement and report writing live in
`scripts/benchmarking/`; a new row is a builder and its table entry there.

Example:

```
KERAS_BACKEND=jax python scripts/benchmark.py --batch-size 128 \
    --warmup 1 --runs 3 --steps 2
KERAS_BACKEND=torch python scripts/benchmark.py --models vit_t4 resnet20
python scripts/benchmark.py --quick  # smoke configuration
```
"""

import argparse
import datetime
import json
import os
import re
import shlex
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# keras_ssl first: it lets timm's triton load after TensorFlow.
import keras_ssl  # noqa: E402, F401

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from scripts.benchmarking.data_path import end_to_end_fit  # noqa: E402
from scripts.benchmarking.environment import library_versions  # noqa: E402
from scripts.benchmarking.environment import machine_info  # noqa: E402
from scripts.benchmarking.measure import RSSSampler  # noqa: E402
from scripts.benchmarking.measure import backend_memory_info  # noqa: E402
from scripts.benchmarking.measure import keras_steps  # noqa: E402
from scripts.benchmarking.measure import time_interleaved  # noqa: E402
from scripts.benchmarking.measure import torch_steps  # noqa: E402
from scripts.benchmarking.methods import METHOD_BASELINES  # noqa: E402
from scripts.benchmarking.methods import METHOD_MODELS  # noqa: E402
from scripts.benchmarking.methods import METHODS  # noqa: E402
from scripts.benchmarking.methods import step_inputs  # noqa: E402
from scripts.benchmarking.models import IMAGE_SIZE  # noqa: E402
from scripts.benchmarking.models import MODELS  # noqa: E402
from scripts.benchmarking.models import NUM_CLASSES  # noqa: E402
from scripts.benchmarking.report import add_method_ratios  # noqa: E402
from scripts.benchmarking.report import markdown_section  # noqa: E402
from scripts.benchmarking.report import write_markdown  # noqa: E402


def method_model(build, method, quick):
    """A compiled `method` model on a fresh backbone from `build`, seeded so
    that every run and process starts from the same weights."""
    keras.utils.set_random_seed(0)
    backbone, classifier_cls = build(quick)
    return METHODS[method](backbone, classifier_cls, NUM_CLASSES)


def benchmark_model(name, methods, args):
    """Benchmarks one model trained by each of `methods` (and its reference).

    All methods' steps (and the reference's, next to supervised) are timed
    interleaved run by run, so the ratios to supervised are taken under
    the same load.

    Returns:
        A list of result rows: ours per method, then the reference if any.
    """
    label, build, reference_label, build_reference = MODELS[name]
    rng = np.random.default_rng(0)
    images = rng.uniform(
        size=(args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3)
    ).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(args.batch_size,))
    labels = labels.astype("int32")

    models = {}
    implementations = {}
    for method in methods:
        models[method] = method_model(build, method, args.quick)
        x, y = step_inputs(method, images, labels)
        implementations[method] = keras_steps(models[method], x, y)
    if "supervised" in methods and build_reference is not None:
        torch.manual_seed(0)
        reference = build_reference(args.quick)
        implementations["reference"] = torch_steps(reference, images, labels)

    timing = {}
    for phase, index in (("forward", 0), ("train", 1)):
        timing[phase] = time_interleaved(
            {impl: fns[index] for impl, fns in implementations.items()},
            args.batch_size,
            args.warmup,
            args.runs,
            args.steps,
        )

    backend = keras.backend.backend()
    rows = [
        {
            "model": name,
            "label": label,
            "method": method,
            "implementation": f"keras_ssl ({backend})",
            "params_m": model.count_params() / 1e6,
            "jit_compile": model.jit_compile,
            "forward": timing["forward"][method],
            "train": timing["train"][method],
            "backend_memory": backend_memory_info(),
        }
        for method, model in models.items()
    ]
    if "reference" in implementations:
        params = sum(p.numel() for p in reference.parameters())
        rows.append(
            {
                "model": name,
                "label": label,
                "method": "supervised",
                "implementation": f"{reference_label} (torch eager)",
                "params_m": params / 1e6,
                "jit_compile": False,
                "forward": timing["forward"]["reference"],
                "train": timing["train"]["reference"],
            }
        )
        for phase in ("forward", "train"):
            rows[0][phase]["ratio"] = (
                rows[0][phase]["images_per_s"] / rows[-1][phase]["images_per_s"]
            )
    return rows


def memory_probe(name, method, args):
    """Runs in a fresh process: builds one model, trains `--steps` + 1
    steps and prints its peak RSS above the RSS once the model was built."""
    label, build, _, _ = MODELS[name]
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3))
    images = images.astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(args.batch_size,)).astype("int32")
    model = method_model(build, method, args.quick)
    x, y = step_inputs(method, images, labels)
    built = RSSSampler.rss()
    for _ in range(args.steps + 1):
        model.train_on_batch(x, y)
    # The kernel's high-water mark of this process' RSS (`ru_maxrss` would
    # carry the parent's over from fork).
    with open("/proc/self/status") as f:
        peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    print(json.dumps({"peak_growth_mb": (peak_kb * 1024 - built) / 2**20}))


def peak_train_memory(name, method, args):
    """Peak RSS growth (MB) of `method` training `name`, in a fresh process
    so that no other model's allocations are reused."""
    import subprocess

    command = [
        sys.executable, os.path.abspath(__file__), "--memory-probe", name, method,
        "--batch-size", str(args.batch_size), "--steps", str(args.steps),
    ] + (["--quick"] if args.quick else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def end_to_end_row(name, args):
    """Supervised `fit` on `args.end_to_end`'s loader against in memory."""
    label, build = MODELS[name][:2]
    timing = end_to_end_fit(
        lambda: method_model(build, "supervised", args.quick), args.end_to_end,
        args.batch_size, args.warmup, args.runs, args.steps,
    )
    print(
        f"  end-to-end fit: folder {timing['folder']['images_per_s']:,.1f} "
        f"img/s, in memory {timing['in_memory']['images_per_s']:,.1f} img/s "
        f"({timing['ratio']:.2f}x)",
        flush=True,
    )
    return {"model": name, "label": label, "folder": args.end_to_end, **timing}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS)
    )
    parser.add_argument(
        "--method",
        nargs="+",
        choices=list(METHODS),
        default=["supervised"],
        help="Training methods; other methods are reported relative to "
        "supervised on the same backbone.",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke configuration: 2-layer models, batch 8, 1 warm-up step, "
        "2 runs of 1 step (overrides the batch and step arguments).",
    )
    parser.add_argument(
        "--peak-memory",
        action="store_true",
        help="Also measure each method's peak train memory in a fresh "
        "process (peak RSS above the built model's; slower).",
    )
    parser.add_argument(
        "--memory-probe", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--json-out",
        default=None,
        help="Defaults to docs/benchmarks/<backend>.json.",
    )
    parser.add_argument(
        "--markdown-out", default=os.path.join(REPO_ROOT, "docs/BENCHMARKS.md")
    )
    parser.add_argument(
        "--end-to-end",
        metavar="FOLDER",
        default=None,
        help="Also time supervised `fit` fed by this image folder's loader "
        "(JPEG decode + 'cifar' augmentation) against the same images in "
        "memory (the end-to-end fit row).",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.warmup, args.runs, args.steps = 8, 1, 2, 1
    return args


def main(argv=None):
    """Runs the benchmark and writes the JSON and markdown reports.

    Returns:
        The report dict written to the JSON file.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.memory_probe:
        memory_probe(*args.memory_probe, args)
        return None
    backend = keras.backend.backend()
    json_out = args.json_out or os.path.join(
        REPO_ROOT, "docs", "benchmarks", f"{backend}.json"
    )
    started = time.perf_counter()
    report = {
        "backend": backend,
        "command": f"KERAS_BACKEND={backend} python scripts/benchmark.py "
        + shlex.join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": machine_info(),
        "versions": library_versions(),
        "config": {
            "image_size": IMAGE_SIZE,
            "num_classes": NUM_CLASSES,
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "runs": args.runs,
            "steps": args.steps,
            "quick": args.quick,
            "models": args.models,
            "methods": args.method,
            "torch_threads": torch.get_num_threads(),
        },
        "results": [],
    }
    # Each method's baseline runs beside it, so its ratio is taken under the
    # same load.
    baselines = [METHOD_BASELINES.get(method, "supervised") for method in args.method]
    methods = list(dict.fromkeys(["supervised", *baselines, *args.method]))
    for name in args.models:
        applicable = [
            method
            for method in methods
            if name in METHOD_MODELS.get(method, (name,))
        ]
        print(f"[benchmark] {backend}: {name} / {', '.join(applicable)}", flush=True)
        rows = benchmark_model(name, applicable, args)
        if args.peak_memory:
            for row in rows:
                if "keras_ssl" in row["implementation"]:
                    row["peak_train_mb"] = peak_train_memory(name, row["method"], args)
        for row in rows:
            print(
                f"  {row['implementation']} {row['method']}: forward "
                f"{row['forward']['images_per_s']:,.1f} img/s, train "
                f"{row['train']['images_per_s']:,.1f} img/s",
                flush=True,
            )
        report["results"].extend(rows)
        if args.end_to_end:
            report.setdefault("end_to_end", []).append(
                end_to_end_row(name, args)
            )
        keras.backend.clear_session()
    add_method_ratios(report["results"], METHOD_BASELINES)
    # Keras resolves "auto" per backend and device, alike for every model.
    report["jit_compile"] = report["results"][0]["jit_compile"]
    report["machine"]["load_average_end"] = os.getloadavg()
    report["wall_time_s"] = time.perf_counter() - started

    os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
    with open(json_out, "w") as f:
        json.dump(report, f, indent=2)
    write_markdown(args.markdown_out, backend, markdown_section(report))
    print(f"[benchmark] wrote {json_out} and {args.markdown_out}")
    return report


if __name__ == "__main__":
    main()
