"""Model cards for presets: the README.md the Hugging Face Hub shows.

A card's YAML front matter carries the Hub metadata, with the measured
metrics in a `model-index` block, the format the Hub reads results from.
`card_front_matter` builds it for every card keras_ssl writes.
"""

import json
import os

import yaml

from keras_ssl.hub import keras_hub_internals

DEFAULT_TAGS = ("keras-ssl", "self-supervised-learning")


def write_model_card(
    preset_dir,
    repo_id,
    description="",
    metrics=None,
    tags=(),
    dataset=None,
    task="image-classification",
    license=None,
):
    """Write a `README.md` model card into a preset folder.

    The card carries the Hub metadata (see `card_front_matter`), the model
    class and its config, the parameter count and the code to load the
    preset.

    Args:
        preset_dir: a folder written by `save_to_preset`.
        repo_id: the `"owner/repo"` the preset will be loaded from.
        description: optional free text placed under the title.
        metrics: optional measured results, either a dict
            `{"accuracy": 0.91}` (each key is the metric's type and name)
            or a list of dicts with `type` (e.g. `"accuracy"`), `value`,
            and optionally `name` (defaults to `type`; naming it after its
            key in the folder's `metrics.json` lets `check_preset_folder`
            compare the two) and `dataset` (overrides the `dataset`
            argument for that metric).
        tags: extra Hub tags, added to `"keras-ssl"` and
            `"self-supervised-learning"`.
        dataset: the evaluation dataset of `metrics`: a TFDS-style name
            such as `"cifar10"`, or a dict with `name` and `type` (and
            optionally `split`). Required when `metrics` is given.
        task: the Hub task type the metrics were measured on.
        license: optional license identifier, e.g. `"apache-2.0"`.

    Returns:
        The path of the written card.

    Example:
    ```python
    write_model_card(
        "weights/resnet20_cifar10",
        "keras-ssl/resnet20_cifar10",
        metrics=[{"type": "accuracy", "name": "test_accuracy", "value": 0.91}],
        dataset={"name": "CIFAR-10", "type": "cifar10", "split": "test"},
    )
    ```
    """
    with open(os.path.join(preset_dir, keras_hub_internals.CONFIG_FILE)) as f:
        config = json.load(f)
    metadata_path = os.path.join(preset_dir, keras_hub_internals.METADATA_FILE)
    metadata = {}
    if os.path.exists(metadata_path):
        with open(metadata_path) as f:
            metadata = json.load(f)
    class_name = config["class_name"]
    model_name = repo_id.split("/")[-1]
    # A bare backbone predicts nothing, so only a task preset has a pipeline.
    has_task = os.path.exists(
        os.path.join(preset_dir, keras_hub_internals.TASK_CONFIG_FILE)
    )
    front_matter = card_front_matter(
        model_name,
        metrics=metrics,
        dataset=dataset,
        tags=(*DEFAULT_TAGS, *tags),
        task=task,
        license=license,
        pipeline_tag=task if has_task else None,
    )

    lines = [
        "---",
        yaml.safe_dump(front_matter, sort_keys=False).rstrip(),
        "---",
        f"# {model_name}",
        "",
    ]
    if description:
        lines += [description, ""]
    lines += [
        f"A `{class_name}` preset for keras_ssl, usable with the "
        "TensorFlow, JAX and PyTorch backends of Keras 3.",
        "",
        "```python",
        "import keras_hub",
        "import keras_ssl  # registers the keras_ssl model classes",
        "",
        "model = keras_hub.models.Backbone.from_preset(",
        f'    "hf://{repo_id}"',
        ")",
        "```",
        "",
    ]
    if "model-index" in front_matter:
        lines += [
            "## Results",
            "",
            "| Dataset | Metric | Value |",
            "|---|---|---|",
        ]
        for result in front_matter["model-index"][0]["results"]:
            for metric in result["metrics"]:
                lines.append(
                    f"| {result['dataset']['name']} | {metric['name']} | "
                    f"{metric['value']} |"
                )
        lines.append("")
    if "parameter_count" in metadata:
        lines += [f"Parameters: {metadata['parameter_count']:,}", ""]
    lines.append("Model config:")
    lines += [f"* **{k}:** {v}" for k, v in config["config"].items()]
    path = os.path.join(preset_dir, keras_hub_internals.README_FILE)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def card_front_matter(
    model_name,
    metrics=None,
    dataset=None,
    tags=DEFAULT_TAGS,
    task="image-classification",
    license=None,
    pipeline_tag=None,
):
    """Build the YAML front matter of a model card, as a dict.

    The keys, in the order the card shows them: `library_name:
    keras-hub`, then `license` and `pipeline_tag` when given, `tags`, and
    with `metrics` the `datasets` they were measured on and a
    `model-index` block grouping them by dataset.

    Args:
        model_name: the `model-index` name, usually the repository's.
        metrics: optional measured results, either a dict
            `{"accuracy": 0.91}` (each key is the metric's type and name)
            or a list of dicts with `type`, `value`, and optionally `name`
            (defaults to `type`) and `dataset` (overrides the `dataset`
            argument for that metric).
        dataset: the evaluation dataset of `metrics`: a TFDS-style name
            such as `"cifar10"`, or a dict with `name` and `type` (and
            optionally `split`). Required when a metric has no `dataset`.
        tags: all the card's Hub tags, in order; repeats are dropped.
        task: the Hub task type the metrics were measured on.
        license: optional license identifier, e.g. `"apache-2.0"`.
        pipeline_tag: optional Hub pipeline the model runs, e.g.
            `"image-classification"`.

    Returns:
        The front matter, a dict to dump with `yaml.safe_dump(...,
        sort_keys=False)`.

    Raises:
        ValueError: if a metric has no `type`, no numeric `value` or no
            dataset.

    Example:
    ```python
    card_front_matter(
        "resnet20_cifar10",
        metrics={"accuracy": 0.91},
        dataset="cifar10",
        license="apache-2.0",
    )
    ```
    """
    results = _model_index_results(metrics, dataset, task)
    front_matter = {"library_name": "keras-hub"}
    if license:
        front_matter["license"] = license
    if pipeline_tag:
        front_matter["pipeline_tag"] = pipeline_tag
    front_matter["tags"] = list(dict.fromkeys(tags))
    if results:
        datasets = [result["dataset"]["type"] for result in results]
        front_matter["datasets"] = list(dict.fromkeys(datasets))
        front_matter["model-index"] = [{"name": model_name, "results": results}]
    return front_matter


def _model_index_results(metrics, dataset, task):
    """Group metrics by dataset into `model-index` results."""
    if not metrics:
        return []
    if isinstance(metrics, dict):
        metrics = [{"type": k, "value": v} for k, v in metrics.items()]
    results = {}
    for metric in metrics:
        if "type" not in metric or not _is_number(metric.get("value")):
            raise ValueError(
                "Each metric needs a `type` (e.g. 'accuracy') and a numeric "
                f"`value`. Received: {metric!r}"
            )
        metric_dataset = _dataset_entry(metric.get("dataset", dataset))
        key = json.dumps(metric_dataset, sort_keys=True)
        result = results.setdefault(
            key,
            {"task": {"type": task}, "dataset": metric_dataset, "metrics": []},
        )
        result["metrics"].append(
            {
                "type": metric["type"],
                "name": metric.get("name", metric["type"]),
                "value": float(metric["value"]),
            }
        )
    return list(results.values())


def _dataset_entry(dataset):
    if dataset is None:
        raise ValueError(
            "Metrics need the dataset they were measured on: pass "
            "`dataset='cifar10'` or `dataset={'name': 'CIFAR-10', 'type': "
            "'cifar10'}`, or give each metric a `dataset`."
        )
    if isinstance(dataset, str):
        return {"name": dataset, "type": dataset}
    if "name" not in dataset or "type" not in dataset:
        raise ValueError(
            f"A metric dataset needs `name` and `type`. Received: {dataset!r}"
        )
    return dict(dataset)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_card_metadata(card_path):
    """Read the YAML front matter of a model card.

    Args:
        card_path: path of a `README.md`.

    Returns:
        The front matter as a dict.

    Raises:
        ValueError: if the card has no front matter or it is not a YAML
            mapping.

    Example:
    ```python
    metadata = read_card_metadata("weights/resnet20_cifar10/README.md")
    metadata["model-index"][0]["results"]
    ```
    """
    with open(card_path, encoding="utf-8") as f:
        text = f.read()
    head, separator, rest = text.partition("\n")
    front, closing, _ = rest.partition("\n---")
    if head.strip() != "---" or not separator or not closing:
        raise ValueError(
            "it has no YAML front matter (a block between '---' lines at "
            "the top)"
        )
    try:
        metadata = yaml.safe_load(front)
    except yaml.YAMLError as e:
        raise ValueError(f"its front matter is not valid YAML ({e})") from e
    if not isinstance(metadata, dict):
        raise ValueError("its front matter is not a YAML mapping")
    return metadata
