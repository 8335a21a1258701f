"""Smoke test of `scripts/benchmark.py` in its `--quick` configuration."""

import importlib.util
import json
import os

import keras
import pytest

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "scripts",
    "benchmark.py",
)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.multibackend
@pytest.mark.slow
def test_quick_benchmark_writes_reports(tmp_path):
    pytest.importorskip("timm")
    benchmark = load_benchmark()
    backend = keras.backend.backend()
    json_out = tmp_path / f"{backend}.json"
    markdown_out = tmp_path / "BENCHMARKS.md"
    # Another backend's section must survive, this backend's stale one go.
    markdown_out.write_text(
        "# Benchmarks\n\n"
        "<!-- benchmark:other:start -->\nkept\n<!-- benchmark:other:end -->\n"
        f"<!-- benchmark:{backend}:start -->\nstale\n"
        f"<!-- benchmark:{backend}:end -->\n"
    )
    models = ["vit_t4", "crate_t4", "resnet20", "resnet18"]

    benchmark.main(
        ["--quick", "--models", *models, "--json-out", str(json_out),
         "--markdown-out", str(markdown_out)]
    )

    report = json.loads(json_out.read_text())
    assert report["backend"] == backend
    ours = [r for r in report["results"] if "keras_ssl" in r["implementation"]]
    assert [r["model"] for r in ours] == models
    for row in report["results"]:
        for phase in ("forward", "train"):
            assert row[phase]["images_per_s"] > 0
            assert row[phase]["rss_growth_mb"] >= 0
    # Every model but ResNet-20 has a PyTorch reference and so a ratio.
    for row in ours:
        assert ("ratio" in row["train"]) == (row["model"] != "resnet20")

    text = markdown_out.read_text()
    assert text.count(f"<!-- benchmark:{backend}:start -->") == 1
    assert f"## {backend}" in text
    assert "kept" in text and "stale" not in text
    assert "CRATE-T/4" in text


@pytest.mark.slow
def test_method_rows_are_interleaved_ratios_with_peak_memory(tmp_path):
    pytest.importorskip("timm")
    benchmark = load_benchmark()
    json_out = tmp_path / "methods.json"
    benchmark.main(
        ["--quick", "--models", "resnet20", "--method", "sfe", "--peak-memory",
         "--json-out", str(json_out), "--markdown-out", str(tmp_path / "B.md")]
    )
    rows = json.loads(json_out.read_text())["results"]
    assert [row["method"] for row in rows] == ["supervised", "sfe"]
    supervised, sfe = rows
    for row in rows:
        assert row["peak_train_mb"] > 0
    assert sfe["train"]["ratio"] == pytest.approx(
        sfe["train"]["images_per_s"] / supervised["train"]["images_per_s"]
    )
    assert sfe["peak_train_ratio"] == pytest.approx(
        sfe["peak_train_mb"] / supervised["peak_train_mb"]
    )
    assert "Peak train memory" in (tmp_path / "B.md").read_text()


def test_a_method_is_compared_with_its_baseline():
    from scripts.benchmarking.report import add_method_ratios

    def row(method, train, peak):
        return {
            "model": "vit_t4", "method": method,
            "implementation": "keras_ssl (test)", "peak_train_mb": peak,
            "forward": {"images_per_s": 2 * train}, "train": {"images_per_s": train},
        }

    supervised = row("supervised", 20.0, 100.0)
    dino = row("dino", 5.0, 300.0)
    mst = row("mst", 4.0, 330.0)
    add_method_ratios([supervised, dino, mst], {"mst": "dino"})
    assert dino["train"]["ratio"] == pytest.approx(5.0 / 20.0)
    assert mst["train"]["ratio"] == pytest.approx(4.0 / 5.0)
    assert mst["peak_train_ratio"] == pytest.approx(330.0 / 300.0)
    assert "ratio" not in supervised["train"]


@pytest.mark.slow
def test_end_to_end_fit_row_times_the_folder_loader_against_memory(tmp_path):
    from PIL import Image

    from tests.conftest import sample_subset

    images, labels = sample_subset(40)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "data" / "train" / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype("uint8")).save(folder / f"{index}.jpg")
    benchmark = load_benchmark()
    json_out = tmp_path / "e2e.json"
    benchmark.main(
        ["--quick", "--models", "resnet20", "--end-to-end", str(tmp_path / "data"),
         "--json-out", str(json_out), "--markdown-out", str(tmp_path / "B.md")]
    )
    (row,) = json.loads(json_out.read_text())["end_to_end"]
    assert row["folder"]["images_per_s"] > 0 and row["in_memory"]["images_per_s"] > 0
    assert row["ratio"] == pytest.approx(
        row["folder"]["images_per_s"] / row["in_memory"]["images_per_s"]
    )
    assert "| ResNet-20 (CIFAR) |" in (tmp_path / "B.md").read_text().split(
        "End-to-end fit"
    )[1]
