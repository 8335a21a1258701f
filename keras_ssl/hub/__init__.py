from keras_ssl.hub.presets import PresetMixin
from keras_ssl.hub.presets import list_presets
from keras_ssl.hub.presets import resolve_preset
