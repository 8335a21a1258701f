"""Ratios between result rows, and the markdown section of one backend."""

import os
import re


def add_method_ratios(rows, baselines):
    """Sets the ratio of each non-supervised row to its baseline's row on the
    same model: `baselines[method]`, else supervised."""
    ours = {
        (row["model"], row["method"]): row
        for row in rows
        if "keras_ssl" in row["implementation"]
    }
    for row in rows:
        baseline = baselines.get(row["method"], "supervised")
        base = ours.get((row["model"], baseline))
        if row["method"] != "supervised" and base is not None:
            for phase in ("forward", "train"):
                row[phase]["ratio"] = (
                    row[phase]["images_per_s"] / base[phase]["images_per_s"]
                )
            if "peak_train_mb" in row:
                row["peak_train_ratio"] = row["peak_train_mb"] / base["peak_train_mb"]


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
        + (" Peak train memory (MB) | / baseline |" if peak else ""),
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
        "rows) or, for methods other than supervised, by the row of the "
        "method's baseline on the same backbone (DINO for MST, supervised "
        "for the others). Memory: on CPU only the process RSS is "
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
    if report.get("end_to_end"):
        lines += [
            "",
            "End-to-end fit (supervised `fit`, 'cifar' augmentation): images/s "
            f"fed by the image-folder loader of `{report['end_to_end'][0]['folder']}` "
            "(file reads and JPEG decoding in `tf.data`) and by the same "
            "images decoded in memory; whole `fit` calls of `--steps` "
            "batches are timed.",
            "",
            "| Model | Folder img/s | In memory img/s | Folder / in memory |",
            "|---|--:|--:|--:|",
        ]
        for row in report["end_to_end"]:
            lines.append(
                f"| {row['label']} | {_rate(row['folder'])} "
                f"| {_rate(row['in_memory'])} | {row['ratio']:.2f} |"
            )
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
