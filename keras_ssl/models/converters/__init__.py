"""Converters from timm, transformers, torchvision, keras-hub and CRATE.

One module per source, as in keras-hub (`convert_<source>.py`); all share
`convert_checkpoint`, the safe file reader of `checkpoint_io` and the
loaders of each family (`load_timm_vit_state_dict`,
`load_torchvision_state_dict`, `load_crate_state_dict`). `export_checkpoint`
goes the other way, through the same layout tables.
"""

from keras_ssl.hub import register_checkpoint_converter
from keras_ssl.models.converters.checkpoint_converter import SOURCES
from keras_ssl.models.converters.checkpoint_converter import convert_checkpoint
from keras_ssl.models.converters.checkpoint_converter import detect_source
from keras_ssl.models.converters.checkpoint_io import load_state_dict_file
from keras_ssl.models.converters.checkpoint_exporter import FORMATS
from keras_ssl.models.converters.checkpoint_exporter import export_checkpoint
from keras_ssl.models.converters.checkpoint_exporter import export_state_dict

# `from_preset` on a foreign checkpoint converts it through this.
register_checkpoint_converter(convert_checkpoint)
