from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_image_classifier import ViTImageClassifier
from keras_ssl.models.vit.vit_image_classifier_preprocessor import (
    ViTImageClassifierPreprocessor,
)
from keras_ssl.models.vit.vit_image_converter import ViTImageConverter
from keras_ssl.models.vit.vit_presets import backbone_presets
from keras_ssl.hub import register_presets

register_presets(backbone_presets, ViTBackbone)
