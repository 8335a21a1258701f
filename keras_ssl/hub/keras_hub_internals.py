"""The keras-hub internals keras_ssl relies on, in one place.

keras-hub has no public API for its preset file names, its registry of
built-in presets, registering presets, or listing a task's subclasses.
Checked against keras-hub 0.32.0. Every keras_ssl module goes through this
adapter, and `tests/test_keras_hub_internals.py` names the internal that
moved if a keras-hub upgrade breaks one.
"""

import keras_hub
from keras_hub.src.utils import preset_utils

CHECKED_VERSION = "0.32.0"


def _internal(name):
    try:
        return getattr(preset_utils, name)
    except AttributeError:
        raise ImportError(
            f"keras_ssl uses keras_hub.src.utils.preset_utils.{name} (checked "
            f"against keras-hub {CHECKED_VERSION}); keras-hub "
            f"{keras_hub.__version__} does not have it. Install "
            f"keras-hub=={CHECKED_VERSION} or update "
            "keras_ssl/hub/keras_hub_internals.py."
        ) from None


CONFIG_FILE = _internal("CONFIG_FILE")
TASK_CONFIG_FILE = _internal("TASK_CONFIG_FILE")
PREPROCESSOR_CONFIG_FILE = _internal("PREPROCESSOR_CONFIG_FILE")
METADATA_FILE = _internal("METADATA_FILE")
README_FILE = _internal("README_FILE")
MODEL_WEIGHTS_FILE = _internal("MODEL_WEIGHTS_FILE")


def builtin_presets():
    """keras-hub's registry of named presets (read on each call)."""
    return _internal("BUILTIN_PRESETS")


def register_presets(presets, backbone_cls):
    """Adds named presets to keras-hub's registry for `backbone_cls`."""
    return _internal("register_presets")(presets, backbone_cls)


def check_file_exists(preset, path):
    """Whether a preset (folder or handle) holds the file `path`."""
    return _internal("check_file_exists")(preset, path)


def load_json(preset, config_file=CONFIG_FILE):
    """A preset's JSON file, parsed."""
    return _internal("load_json")(preset, config_file)


def list_subclasses(cls):
    """Every registered subclass of a keras-hub class."""
    return _internal("list_subclasses")(cls)
