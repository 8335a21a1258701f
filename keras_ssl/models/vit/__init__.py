from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_image_classifier import ViTImageClassifier
from keras_ssl.models.vit.vit_image_classifier_preprocessor import (
    ViTImageClassifierPreprocessor,
)
from keras_ssl.models.vit.vit_image_converter import ViTImageConverter
