from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_image_classifier import CRATEImageClassifier
from keras_ssl.models.crate.crate_image_classifier_preprocessor import (
    CRATEImageClassifierPreprocessor,
)
from keras_ssl.models.crate.crate_image_converter import CRATEImageConverter
from keras_ssl.models.crate.crate_presets import backbone_presets
from keras_ssl.hub import register_presets

register_presets(backbone_presets, CRATEBackbone)
