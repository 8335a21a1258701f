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
import platform
import re
import shlex
import statistics
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# keras_ssl first: it lets timm's triton load after TensorFlow.
import keras_ssl  # noqa: E402

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

from keras_ssl.methods import HPAH  # noqa: E402
from keras_ssl.methods import MPAH  # noqa: E402
from keras_ssl.methods import SFE  # noqa: E402
from keras_ssl.methods import SLA  # noqa: E402
from keras_ssl.methods import Supervised  # noqa: E402
from keras_ssl.models import CRATEBackbone  # noqa: E402
from keras_ssl.models import CRATEImageClassifier  # noqa: E402
from keras_ssl.models import ViTBackbone  # noqa: E402
from keras_ssl.models import ViTImageClassifier  # noqa: E402
from keras_ssl.models.resnet import ResNetBackbone  # noqa: E402
from keras_ssl.models.resnet import ResNetImageClassifier  # noqa: E402
from tests.torch_references import ReferenceCRATE  # noqa: E402

IMAGE_SIZE = 32
NUM_CLASSES = 10
QUICK_LAYERS = 2  # Transformer depth in `--quick` mode.


# === Models ===
# Each model builds our backbone and, where one exists, the PyTorch
# reference of the same configuration; `quick` shrinks both to 2 layers
# (2 residual stages' worth of blocks for the ResNets).


def _token_layers(quick):
    return {"num_layers": QUICK_LAYERS} if quick else {}


def build_vit_t4(quick):
    backbone = ViTBackbone.from_size(
        "tiny",
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        patch_size=4,
        **_token_layers(quick),
    )
    return backbone, ViTImageClassifier


def build_vit_t4_reference(quick):
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=IMAGE_SIZE,
        patch_size=4,
        num_classes=NUM_CLASSES,
        depth=QUICK_LAYERS if quick else 12,
    )


def build_crate_t4(quick):
    backbone = CRATEBackbone.from_size(
        "tiny",
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        patch_size=4,
        **_token_layers(quick),
    )
    return backbone, CRATEImageClassifier


def build_crate_t4_reference(quick):
    return ReferenceCRATE(
        image_size=IMAGE_SIZE,
        patch=4,
        dim=384,
        depth=QUICK_LAYERS if quick else 12,
        heads=6,
        dim_head=64,
        classes=NUM_CLASSES,
    )


def cifar_resnet_builder(depth):
    def build(quick):
        backbone = ResNetBackbone.cifar(
            depth=8 if quick else depth, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)
        )
        return backbone, ResNetImageClassifier

    return build


def build_resnet18(quick):
    # Quick mode: one basic block per stage (a "ResNet-10").
    blocks = [1, 1, 1, 1] if quick else [2, 2, 2, 2]
    backbone = ResNetBackbone(
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks,
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        stem_type="imagenet",
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    )
    return backbone, ResNetImageClassifier


def build_resnet18_reference(quick):
    blocks = [1, 1, 1, 1] if quick else [2, 2, 2, 2]
    return torchvision.models.resnet.ResNet(
        torchvision.models.resnet.BasicBlock, blocks, num_classes=NUM_CLASSES
    )


# name -> (label, our builder, reference label, reference builder or None).
MODELS = {
    "vit_t4": ("ViT-T/4", build_vit_t4, "timm", build_vit_t4_reference),
    "crate_t4": (
        "CRATE-T/4",
        build_crate_t4,
        "PyTorch CRATE reference",
        build_crate_t4_reference,
    ),
    "resnet20": ("ResNet-20 (CIFAR)", cifar_resnet_builder(20), None, None),
    "resnet110": ("ResNet-110 (CIFAR)", cifar_resnet_builder(110), None, None),
    "resnet18": (
        "ResNet-18 (ImageNet stem)",
        build_resnet18,
        "torchvision",
        build_resnet18_reference,
    ),
}


# === Methods ===


def build_supervised(backbone, classifier_cls, num_classes):
    """Plain supervised classification: `Supervised` (the family classifier).

    A method builder returns a compiled Keras model whose
    `train_on_batch(images, labels)` is one training step of the method and
    whose `predict_on_batch(images)` is its inference forward pass
    (self-supervised methods may ignore the labels).

    Args:
        backbone: a keras_ssl backbone.
        classifier_cls: the backbone's ImageClassifier class.
        num_classes: int. Number of classes of the head.
    """
    # `Supervised` is the model every method builds on, so method rows are
    # ratios to the same training loop; it holds the family's classifier.
    model = Supervised(backbone, num_classes, preprocessor=None)
    # No metrics: the references compute none either.
    model.compile(optimizer="adamw", metrics=None)
    return model


def build_attention_head_method(method_cls):
    def build(backbone, classifier_cls, num_classes):
        model = method_cls(backbone, num_classes, preprocessor=None)
        model.compile(optimizer="adamw", metrics=None)
        return model

    return build


def build_rotation_method(method_name, **arguments):
    """Builder of a rotation pretext method (RotNet, Patch RotNet/RelNet).

    No preprocessor, as in `build_supervised`, so the ratio measures the
    method itself; labels are ignored. RotNet encodes 4 views per input
    image, Patch RotNet and Patch RelNet 8 (plus rotating and pasting), and
    images/s counts input images.
    """

    def build(backbone, classifier_cls, num_classes):
        from keras_ssl import methods

        model = getattr(methods, method_name)(
            backbone, preprocessor=None, **arguments
        )
        model.compile(optimizer="adamw", metrics=None)
        return model

    return build


# Methods are reported as ratios to "supervised" on the same backbone.
METHODS = {
    "supervised": build_supervised,
    "hpah": build_attention_head_method(HPAH),
    "mpah": build_attention_head_method(MPAH),
    # SFE as the paper trains it (two joint classifiers, K = 9, with the
    # self-distilled single head); SLA with its 4 rotations, no distillation.
    "sfe": build_attention_head_method(SFE),
    "sla": build_attention_head_method(SLA),
    "rotnet": build_rotation_method("RotNet"),
    "patch_rotnet": build_rotation_method("PatchRotNet", patch_ratio=0.4, seed=0),
    "patch_relnet": build_rotation_method("PatchRelNet", patch_ratio=0.4, seed=0),
}
# Models a method applies to, where it does not apply to all of them.
METHOD_MODELS = {
    "hpah": ("vit_t4", "crate_t4"),
    "mpah": ("vit_t4", "crate_t4"),
    "sfe": ("resnet20", "resnet110", "resnet18"),
    "sla": ("resnet20", "resnet110", "resnet18"),
}


# === Measurement ===


class RSSSampler:
    """Samples the process' resident set size in a background thread.

    Args:
        interval: float. Seconds between samples.
    """

    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    @classmethod
    def rss(cls):
        """Current RSS in bytes."""
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * cls._PAGE_SIZE

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.rss()
        self.peak = self.start
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self):
        return self.peak - self.start


def backend_memory_info():
    """The backend's own device memory statistics, or None (e.g. on CPU)."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")
        if backend == "jax":
            import jax

            return jax.devices()[0].memory_stats()
        if backend == "torch" and torch.cuda.is_available():
            return {"peak_bytes": torch.cuda.max_memory_allocated()}
    except (ValueError, RuntimeError):
        pass  # No such device.
    return None


def time_interleaved(steps_fns, batch_size, warmup, runs, steps):
    """Times step functions run by run, alternating between them.

    Alternating means a burst of load from other processes slows every
    implementation in the same run, which keeps their ratio meaningful.

    Args:
        steps_fns: dict of name -> zero-argument function doing one step
            and returning only once its work is done.
        batch_size: int. Images per step.
        warmup: int. Untimed steps first (tracing, compilation, caches).
        runs: int. Number of timed runs.
        steps: int. Steps per timed run.

    Returns:
        dict of name -> `{"images_per_s": median, "min", "max", "runs",
        "rss_growth_mb"}`.
    """
    for fn in steps_fns.values():
        for _ in range(warmup):
            fn()
    rates = {name: [] for name in steps_fns}
    growth = dict.fromkeys(steps_fns, 0)
    for _ in range(runs):
        for name, fn in steps_fns.items():
            with RSSSampler() as sampler:
                start = time.perf_counter()
                for _ in range(steps):
                    fn()
                elapsed = time.perf_counter() - start
            rates[name].append(steps * batch_size / elapsed)
            growth[name] = max(growth[name], sampler.growth)
    return {
        name: {
            "images_per_s": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": values,
            "rss_growth_mb": growth[name] / 2**20,
        }
        for name, values in rates.items()
    }


def keras_steps(model, images, labels):
    """Forward and train-step functions of a compiled Keras model."""
    # `predict_on_batch` and `train_on_batch` return NumPy values, so each
    # call waits for JAX's asynchronous dispatch to finish.
    return (
        lambda: model.predict_on_batch(images),
        lambda: model.train_on_batch(images, labels),
    )


def torch_steps(model, images, labels):
    """Forward and train-step functions of a PyTorch reference model."""
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(labels).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward():
        model.eval()
        with torch.no_grad():
            model(images)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    return forward, train_step


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
        keras.utils.set_random_seed(0)
        backbone, classifier_cls = build(args.quick)
        models[method] = METHODS[method](backbone, classifier_cls, NUM_CLASSES)
        implementations[method] = keras_steps(models[method], images, labels)
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
    keras.utils.set_random_seed(0)
    backbone, classifier_cls = build(args.quick)
    model = METHODS[method](backbone, classifier_cls, NUM_CLASSES)
    built = RSSSampler.rss()
    for _ in range(args.steps + 1):
        model.train_on_batch(images, labels)
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


def add_method_ratios(rows):
    """Sets the ratio of each non-supervised row to supervised, same model."""
    supervised = {
        row["model"]: row
        for row in rows
        if row["method"] == "supervised" and "keras_ssl" in row["implementation"]
    }
    for row in rows:
        base = supervised.get(row["model"])
        if row["method"] != "supervised" and base is not None:
            for phase in ("forward", "train"):
                row[phase]["ratio"] = (
                    row[phase]["images_per_s"] / base[phase]["images_per_s"]
                )
            if "peak_train_mb" in row:
                row["peak_train_ratio"] = row["peak_train_mb"] / base["peak_train_mb"]


# === Environment ===


def machine_info():
    """CPU model, core count, RAM and load of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        cpu = match.group(1).strip() if match else cpu
        with open("/proc/meminfo") as f:
            ram_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    except OSError:
        ram_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram_kb / 2**20, 1),
        "platform": platform.platform(),
        "load_average_start": os.getloadavg(),
    }


def library_versions():
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "keras_ssl": keras_ssl.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    return versions


# === Report ===


def _rate(result):
    return (
        f"{result['images_per_s']:,.0f} "
        f"({result['min']:,.0f}–{result['max']:,.0f})"
    )


def _ratio(result):
    return f"{result['ratio']:.2f}" if "ratio" in result else ""


def markdown_section(report):
    """This backend's section of `docs/BENCHMARKS.md`."""
    machine = report["machine"]
    config = report["config"]
    peak = any("peak_train_mb" in row for row in report["results"])
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    lines = [
        f"## {report['backend']}",
        "",
        f"- Command: `{report['command']}`",
        f"- Date: {report['date']} (wall time {report['wall_time_s']:.0f} s)",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gb']} GB RAM, no GPU; load average "
        f"{machine['load_average_start'][0]:.1f} at start, "
        f"{machine['load_average_end'][0]:.1f} at end",
        f"- Versions: {versions}",
        f"- Setting: {config['image_size']}x{config['image_size']} images, "
        f"batch {config['batch_size']}, {config['warmup']} warm-up step(s), "
        f"median of {config['runs']} runs of {config['steps']} step(s) "
        f"(min–max in brackets); forward = `predict_on_batch`, train = "
        f"`train_on_batch` (AdamW), `jit_compile` = Keras' \"auto\" "
        f"(resolved: {report['jit_compile']})"
        + (" ; **quick smoke configuration**" if config["quick"] else ""),
        "",
        "| Model | Implementation | Method | Params (M) "
        "| Forward img/s | Ours / ref | Train img/s | Ours / ref "
        "| RSS growth fwd / train (MB) |"
        + (" Peak train memory (MB) | / supervised |" if peak else ""),
        "|---|---|---|--:|--:|--:|--:|--:|--:|" + ("--:|--:|" if peak else ""),
    ]
    for row in report["results"]:
        fwd, train = row["forward"], row["train"]
        line = (
            f"| {row['label']} | {row['implementation']} | {row['method']} "
            f"| {row['params_m']:.2f} | {_rate(fwd)} | {_ratio(fwd)} "
            f"| {_rate(train)} | {_ratio(train)} "
            f"| {fwd['rss_growth_mb']:.0f} / {train['rss_growth_mb']:.0f} |"
        )
        if peak:
            ratio = row.get("peak_train_ratio")
            line += (
                f" {row['peak_train_mb']:.0f} |" if "peak_train_mb" in row else " |"
            ) + (f" {ratio:.2f} |" if ratio is not None else " |")
        lines.append(line)
    lines += [
        "",
        "\"Ours / ref\" divides our images/s by the reference's (PyTorch "
        "rows) or, for methods other than supervised, by the supervised "
        "row of the same backbone. Memory: on CPU only the process RSS is "
        "available; the column is its peak growth during a timed run over "
        "the value at the run's start, i.e. working memory, not weights. "
        "Memory that an allocator kept from the warm-up step is reused "
        "without growing the RSS, so a small figure is a lower bound."
        + (
            " Peak train memory (`--peak-memory`): a fresh process per row "
            "builds the model and trains `--steps` + 1 steps; its peak RSS "
            "above the RSS of the built model (activations, gradients, "
            "optimizer state and the backend's tracing or compilation)."
            if peak
            else ""
        ),
    ]
    return "\n".join(lines)


MARKDOWN_HEADER = """# Benchmarks

Throughput of keras_ssl models per Keras backend next to the PyTorch
reference implementations, measured in the same process and interleaved.
Each backend's section is written by

```
KERAS_BACKEND=<backend> python scripts/benchmark.py
```

and the raw numbers are in `docs/benchmarks/<backend>.json`. The absolute
numbers depend on the machine and on its load; the ratios are the point.
"""


def write_markdown(path, backend, section):
    """Replaces (or appends) this backend's section of the markdown file."""
    start = f"<!-- benchmark:{backend}:start -->"
    end = f"<!-- benchmark:{backend}:end -->"
    block = f"{start}\n{section}\n{end}"
    text = MARKDOWN_HEADER
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# === Entry point ===


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
    methods = list(dict.fromkeys(["supervised", *args.method]))
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
        keras.backend.clear_session()
    add_method_ratios(report["results"])
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
