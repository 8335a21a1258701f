"""`PresetMixin`: `from_preset` that resolves, converts, then defers to keras-hub."""

import os
import shutil

from keras_ssl.hub.conversion import CONVERSION_ONLY_KWARGS
from keras_ssl.hub.conversion import CONVERSION_SHARED_KWARGS
from keras_ssl.hub.conversion import convert_to_preset
from keras_ssl.hub.resolve import resolve_preset


class PresetMixin:
    """Put first in the bases of every keras_ssl Backbone and Task.

    `from_preset` resolves registry names and `hf://` handles (including
    `@revision` and subfolders, which keras-hub does not accept) to a local
    folder with clear errors, then hands over to keras-hub. A weights file
    that cannot be read is reported with its path and the fix.

    Example:
    ```python
    @keras.saving.register_keras_serializable(package="keras_ssl")
    class CRATEBackbone(PresetMixin, keras_hub.models.Backbone):
        ...

    backbone = CRATEBackbone.from_preset("hf://keras-ssl/crate_tiny@v1")
    ```
    """

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Instantiate from a preset name, folder or `hf://` handle.

        timm and transformers models on the Hub, keras-hub presets and
        plain weights files (also `hf://owner/repo/path/file.pth`) are
        converted on the fly (see `keras_ssl.models.convert_checkpoint`).

        Args:
            preset: anything `keras_ssl.hub.resolve_preset` accepts.
            **kwargs: forwarded to keras-hub's `from_preset`
                (e.g. `load_weights=False`, `dtype`, `num_classes` for a new
                head), except `source` and `architecture`, which only steer
                the conversion of a checkpoint; `num_heads` and
                `image_shape` serve both.

        Example:
        ```python
        backbone = ViTBackbone.from_preset(
            "hf://timm/vit_small_patch16_224.augreg_in21k"
        )
        ```
        """
        resolved = resolve_preset(preset)
        conversion = {
            key: kwargs.pop(key) for key in CONVERSION_ONLY_KWARGS if key in kwargs
        }
        conversion.update(
            {key: kwargs[key] for key in CONVERSION_SHARED_KWARGS if key in kwargs}
        )
        preset_dir = convert_to_preset(resolved, **conversion)
        try:
            return cls._load_resolved_preset(preset, preset_dir, **kwargs)
        finally:
            if preset_dir != resolved:
                shutil.rmtree(preset_dir, ignore_errors=True)

    @classmethod
    def _load_resolved_preset(cls, preset, preset_dir, **kwargs):
        try:
            return super().from_preset(preset_dir, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as e:
            # h5py reports truncated or corrupt files as a bare OSError that
            # names neither the file nor the preset.
            weight_files = _weight_files(preset_dir)
            if not weight_files:
                raise
            raise OSError(
                f"Could not read the weights of preset '{preset}': "
                f"{', '.join(weight_files)} ({e}). The file is probably "
                "truncated or corrupt, e.g. by an interrupted download or "
                "save. Delete it and download the preset again (for a "
                "Hugging Face handle: `hf download owner/repo "
                "--force-download`), or re-save it with `save_to_preset`."
            ) from e


def _weight_files(preset_dir):
    if not os.path.isdir(preset_dir):
        return []
    return [
        os.path.join(preset_dir, f)
        for f in sorted(os.listdir(preset_dir))
        if f.endswith(".weights.h5")
    ]
