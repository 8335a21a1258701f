"""One entry point for every checkpoint source: `convert_checkpoint`."""

import json
import os

from keras_ssl.hub.resolve import resolve_preset
from keras_ssl.models.converters import convert_crate
from keras_ssl.models.converters import convert_keras_hub
from keras_ssl.models.converters import convert_timm
from keras_ssl.models.converters import convert_torchvision
from keras_ssl.models.converters import convert_transformers
from keras_ssl.models.converters.checkpoint_io import folder_weights_file
from keras_ssl.models.converters.checkpoint_io import load_state_dict_file
from keras_ssl.models.converters.checkpoint_io import read_json
from keras_ssl.models.converters.checkpoint_io import unwrap_state_dict
from keras_ssl.utils.checkpoint_files import is_checkpoint_file

SOURCES = ("timm", "transformers", "torchvision", "keras_hub", "crate", "crate_alpha")
CONFIG_FILE = "config.json"


def convert_checkpoint(
    checkpoint,
    source=None,
    output_dir=None,
    task=None,
    num_classes=None,
    architecture=None,
    num_heads=None,
    image_shape=None,
):
    """Converts a timm, transformers, torchvision, keras-hub or CRATE checkpoint.

    The weights load into the keras_ssl equivalent exactly (the tests hold
    every source to 1e-4 on real images, on each backend), and the
    source's preprocessing becomes the model's image converter. Everything
    the weights determine is inferred: image and patch size (from the
    position embedding and patch projection), depth, width, class count.

    Files are read safely: `.safetensors` where offered, PyTorch files with
    `torch.load(..., weights_only=True)`, which refuses pickles that would
    run code.

    Args:
        checkpoint: one of
            - a weights file (`.safetensors`, `.pth`, `.pt`, `.bin`);
            - a folder: a Hugging Face timm or transformers model
              (`config.json` plus weights) or a keras-hub preset;
            - an `hf://owner/repo[@revision]` handle of such a folder, or
              `hf://owner/repo[@revision]/path/file.pth` for a file in a
              repository;
            - an in-memory state dict (`model.state_dict()`), optionally
              nested under `"state_dict"` or `"model"`;
            - with `source="keras_hub"`, anything keras-hub's
              `from_preset` accepts (e.g. `"resnet_50_imagenet"`).
        source: `"timm"`, `"transformers"`, `"torchvision"`,
            `"keras_hub"`, `"crate"` or `"crate_alpha"`; detected from the
            folder's `config.json` or the parameter names when None.
        output_dir: if given, a folder to write the keras_ssl preset to
            (config, weights, preprocessor, and `metadata.json` naming the
            source), loadable with `from_preset`.
        task: `"backbone"`, `"classifier"`, or None for a classifier when
            the checkpoint has a head (or `num_classes` is given) and a
            backbone otherwise.
        num_classes: None to keep the checkpoint's head; another count
            gives a classifier with a freshly initialised head.
        architecture: for a bare timm or torchvision state dict, the model
            name (`"vit_small_patch16_224"`, `"resnet50"`): it tells a
            ViT's head count, and is checked against a ResNet's depth.
        num_heads: attention heads of a ViT or CRATE, which the weights do
            not fix (only heads x head width); needed when neither the
            architecture name nor a published width tells it.
        image_shape: `(height, width, channels)` for a transformer whose
            input should differ from its training resolution (position
            embeddings are resampled, antialiased bicubic as timm does), or
            the input a ResNet is built for. The image converter resizes to
            it.

    Returns:
        The converted backbone or classifier (with its preprocessor).

    Raises:
        ValueError: when the checkpoint does not match the architecture,
            naming the first offending parameter; when a PyTorch file needs
            code to load.

    Example:
    ```python
    # A pretrained ViT-S/16 from the Hub, as a preset folder.
    keras_ssl.models.convert_checkpoint(
        "hf://timm/vit_small_patch16_224.augreg_in21k",
        output_dir="vit_small_in21k",
    )
    backbone = keras_ssl.models.ViTBackbone.from_preset("vit_small_in21k")

    # An official CRATE checkpoint file.
    classifier = keras_ssl.models.convert_checkpoint(
        "crate_base.pth", source="crate", num_heads=12
    )

    # A torchvision model in memory, with a new 10-class head.
    classifier = keras_ssl.models.convert_checkpoint(
        torchvision.models.resnet18(weights="DEFAULT").state_dict(),
        num_classes=10,
    )
    ```
    """
    if source is not None and source not in SOURCES:
        raise ValueError(
            f"Unknown checkpoint `source`={source!r}. Choose one of {SOURCES}."
        )
    checkpoint, where = _localise(checkpoint, source)
    model, preprocessor, source = _convert(
        checkpoint,
        where,
        source=source,
        task=task,
        num_classes=num_classes,
        architecture=architecture,
        num_heads=num_heads,
        image_shape=image_shape,
    )
    if output_dir is not None:
        save_converted(model, preprocessor, output_dir, source, where)
    return model


def _localise(checkpoint, source):
    """Hub handles -> local paths; returns `(checkpoint, description)`."""
    if isinstance(checkpoint, dict):
        return checkpoint, "in-memory state dict"
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(
            "`checkpoint` must be a file or folder path, an 'hf://' handle or "
            f"a state dict; received a {type(checkpoint).__name__}."
        )
    checkpoint = os.fspath(checkpoint)
    if checkpoint.startswith("hf://"):
        return resolve_preset(checkpoint), checkpoint
    # keras-hub resolves its own preset names and handles.
    if not os.path.exists(checkpoint) and source != "keras_hub":
        raise FileNotFoundError(
            f"Checkpoint '{checkpoint}' does not exist. Pass a weights "
            "file, a model folder, an 'hf://' handle or a state dict."
        )
    return checkpoint, checkpoint


def _convert(
    checkpoint,
    where,
    source,
    task,
    num_classes,
    architecture,
    num_heads,
    image_shape,
):
    common = {"task": task, "num_classes": num_classes}
    config = None
    if isinstance(checkpoint, dict):
        state_dict = unwrap_state_dict(checkpoint, where)
    elif os.path.isdir(checkpoint):
        config = read_json(checkpoint, CONFIG_FILE)
        detected = _source_from_config(config, checkpoint)
        if source not in (None, detected) and not (
            detected == "timm" and source == "torchvision"
        ):
            raise ValueError(
                f"'{where}' is a {detected} model folder, but "
                f"source='{source}' was given."
            )
        source = source or detected
        if source == "keras_hub":
            model, preprocessor = convert_keras_hub.convert(
                checkpoint, image_shape=image_shape, **common
            )
            return model, preprocessor, source
        state_dict = load_state_dict_file(folder_weights_file(checkpoint))
    elif source == "keras_hub":
        model, preprocessor = convert_keras_hub.convert(
            checkpoint, image_shape=image_shape, **common
        )
        return model, preprocessor, source
    elif is_checkpoint_file(checkpoint):
        state_dict = load_state_dict_file(checkpoint)
    else:
        raise ValueError(
            f"'{checkpoint}' is not a weights file (.safetensors, .pth, .pt, "
            ".bin, .ckpt) or a model folder."
        )
    source = source or detect_source(state_dict, where)
    if source in ("crate", "crate_alpha"):
        model, preprocessor = convert_crate.convert(
            state_dict,
            variant=source,
            num_heads=num_heads,
            image_shape=image_shape,
            **common,
        )
    elif source == "timm":
        model, preprocessor = convert_timm.convert(
            state_dict,
            config=config,
            architecture=architecture,
            num_heads=num_heads,
            image_shape=image_shape,
            **common,
        )
    elif source == "torchvision":
        model, preprocessor = convert_torchvision.convert(
            state_dict,
            architecture=architecture,
            image_shape=image_shape,
            **common,
        )
    elif source == "transformers":
        if config is None:
            raise ValueError(
                "A transformers state dict needs its config.json: pass the "
                "model folder or its 'hf://' handle instead of the weights."
            )
        model, preprocessor = convert_transformers.convert(
            state_dict,
            config,
            preprocessor_config=read_json(
                checkpoint, "preprocessor_config.json", required=False
            ),
            image_shape=image_shape,
            **common,
        )
    else:
        raise ValueError(
            f"A keras-hub preset is a folder, not a state dict ({where})."
        )
    return model, preprocessor, source


def _source_from_config(config, folder):
    """keras-hub's rule: the keys of `config.json` tell the format."""
    if convert_keras_hub.is_keras_hub_config(config):
        return "keras_hub"
    if "registered_name" in config:
        raise ValueError(
            f"'{folder}' is already a Keras preset "
            f"({config['registered_name']}); load it with `from_preset`."
        )
    if "architecture" in config:
        return "timm"
    if "model_type" in config:
        return "transformers"
    raise ValueError(
        f"Cannot tell the format of '{folder}': its config.json has none of "
        "'registered_name' (Keras), 'architecture' (timm) or 'model_type' "
        "(transformers)."
    )


def detect_source(state_dict, where="state dict"):
    """Guesses a state dict's source from its parameter names.

    Args:
        state_dict: mapping of parameter names to arrays.
        where: what the state dict is, for the error message.

    Returns:
        One of `"crate_alpha"`, `"crate"`, `"timm"`, `"transformers"`,
        `"torchvision"` (timm's plain ResNets share that layout).
    """
    names = set(state_dict)
    if "transformer.layers.0.1.fn.D" in names:
        return "crate_alpha"
    if "to_patch_embedding.2.weight" in names:
        return "crate"
    if "patch_embed.proj.weight" in names:
        return "timm"
    if any("embeddings.patch_embeddings" in name for name in names):
        return "transformers"
    if "layer1.0.conv1.weight" in names:
        return "torchvision"
    raise ValueError(
        f"Cannot tell the source of the {where} from its parameter names "
        f"(first ones: {sorted(names)[:5]}). Pass `source=` (one of "
        f"{SOURCES})."
    )


def save_converted(model, preprocessor, output_dir, source, where):
    """Writes a converted model as a preset folder, recording its source."""
    model.save_to_preset(output_dir)
    # A classifier saves its preprocessor; a backbone's is saved beside it.
    if getattr(model, "preprocessor", None) is None:
        preprocessor.save_to_preset(output_dir)
    path = os.path.join(output_dir, "metadata.json")
    with open(path) as f:
        metadata = json.load(f)
    metadata["source"] = {"format": source, "checkpoint": where}
    with open(path, "w") as f:
        json.dump(metadata, f, indent=4)
