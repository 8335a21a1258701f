import keras

from keras_ssl.models.vit.vit_backbone import ViTBackbone
from keras_ssl.models.vit.vit_image_classifier_preprocessor import (
    ViTImageClassifierPreprocessor,
)
from keras_ssl.models.token_image_classifier import TokenImageClassifier


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViTImageClassifier(TokenImageClassifier):
    """ViT image classifier: backbone, token pooling, Linear head.

    Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words".

    Args: see `TokenImageClassifier` (`backbone`, `num_classes`,
    `preprocessor`, `pooling`, `activation`, `dropout`, `head_dtype`).

    Example:
    ```python
    backbone = keras_ssl.models.ViTBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    preprocessor = keras_ssl.models.ViTImageClassifierPreprocessor(
        keras_ssl.models.ViTImageConverter(image_size=(32, 32))
    )
    classifier = keras_ssl.models.ViTImageClassifier(
        backbone, num_classes=10, preprocessor=preprocessor
    )
    classifier.fit(images, labels, epochs=1)  # images in [0, 255]
    ```
    """

    backbone_cls = ViTBackbone
    preprocessor_cls = ViTImageClassifierPreprocessor
