import keras
from keras_hub.models import ImageClassifierPreprocessor

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_image_converter import CRATEImageConverter


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEImageClassifierPreprocessor(PresetMixin, ImageClassifierPreprocessor):
    """Preprocessor of `CRATEImageClassifier`: runs its image converter.

    Args:
        image_converter: a `CRATEImageConverter`.
    """

    backbone_cls = CRATEBackbone
    image_converter_cls = CRATEImageConverter
