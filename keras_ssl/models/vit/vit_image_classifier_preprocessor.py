import keras
from keras_hub.models import ImageClassifierPreprocessor

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_image_converter import ViTImageConverter


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTImageClassifierPreprocessor(PresetMixin, ImageClassifierPreprocessor):
    """Preprocessor of `ViTImageClassifier`: runs its image converter.

    Args:
        image_converter: a `ViTImageConverter`.
    """

    backbone_cls = ViTBackbone
    image_converter_cls = ViTImageConverter
