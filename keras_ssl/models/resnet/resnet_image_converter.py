import keras

from keras_ssl.models.image_converter import NormalizingImageConverter
from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetImageConverter(NormalizingImageConverter):
    """Resizes and normalises `[0, 255]` images for `ResNetBackbone`.

    See `NormalizingImageConverter` for the arguments (ImageNet mean and
    std by default, as torchvision's ResNets use).

    Example:
    ```python
    converter = ResNetImageConverter(image_size=(224, 224))
    converter(np.random.randint(0, 256, size=(2, 256, 256, 3)))
    ```
    """

    backbone_cls = ResNetBackbone
