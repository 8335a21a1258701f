import keras

from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.image_converter import NormalizingImageConverter


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEImageConverter(NormalizingImageConverter):
    """Resizes and normalises `[0, 255]` images for `CRATEBackbone`.

    See `NormalizingImageConverter` for the arguments (ImageNet mean and
    std by default).
    """

    backbone_cls = CRATEBackbone
