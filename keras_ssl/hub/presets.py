"""Preset registry and handle resolution (placeholder: being written)."""


def resolve_preset(preset):
    return preset


def list_presets():
    return []


class PresetMixin:
    """Put first in the bases of every keras_ssl Backbone / Task / converter.

    `from_preset` resolves our registry names and `hf://` handles to a local
    folder (with clear errors) before handing over to keras-hub.
    """

    @classmethod
    def from_preset(cls, preset, **kwargs):
        return super().from_preset(resolve_preset(preset), **kwargs)
