from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_image_classifier import CRATEImageClassifier
from keras_ssl.models.crate.crate_image_classifier_preprocessor import (
    CRATEImageClassifierPreprocessor,
)
from keras_ssl.models.crate.crate_image_converter import CRATEImageConverter
