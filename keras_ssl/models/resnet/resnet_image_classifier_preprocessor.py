import keras
from keras_hub.models import ImageClassifierPreprocessor

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.resnet.resnet_image_converter import (
    ResNetImageConverter,
)


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetImageClassifierPreprocessor(
    PresetMixin, ImageClassifierPreprocessor
):
    """Image classification preprocessor for `ResNetImageClassifier`.

    Applies a `ResNetImageConverter` to `x` and passes labels through.

    Args:
        image_converter: `ResNetImageConverter` or `None`.
        **kwargs: base layer arguments.

    Example:
    ```python
    preprocessor = ResNetImageClassifierPreprocessor(
        image_converter=ResNetImageConverter(image_size=(32, 32)),
    )
    preprocessor(np.random.randint(0, 256, size=(2, 64, 64, 3)))
    ```
    """

    backbone_cls = ResNetBackbone
    image_converter_cls = ResNetImageConverter
