import keras

from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.image_converter import NormalizingImageConverter


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTImageConverter(NormalizingImageConverter):
    """Resizes and normalises `[0, 255]` images for `ViTBackbone`.

    See `NormalizingImageConverter` for the arguments (ImageNet mean and
    std by default).
    """

    backbone_cls = ViTBackbone
