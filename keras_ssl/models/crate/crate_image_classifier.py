import keras

from keras_ssl.models.crate.crate_backbone import CRATEBackbone
from keras_ssl.models.crate.crate_image_classifier_preprocessor import (
    CRATEImageClassifierPreprocessor,
)
from keras_ssl.models.token_image_classifier import TokenImageClassifier


@keras.saving.register_keras_serializable(package="keras_ssl")
class CRATEImageClassifier(TokenImageClassifier):
    """CRATE image classifier: backbone, token pooling, Linear head.

    Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction".

    Args: see `TokenImageClassifier` (`backbone`, `num_classes`,
    `preprocessor`, `pooling`, `activation`, `dropout`, `head_dtype`).

    Example:
    ```python
    backbone = keras_ssl.models.CRATEBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    preprocessor = keras_ssl.models.CRATEImageClassifierPreprocessor(
        keras_ssl.models.CRATEImageConverter(image_size=(32, 32))
    )
    classifier = keras_ssl.models.CRATEImageClassifier(
        backbone, num_classes=10, preprocessor=preprocessor
    )
    classifier.fit(images, labels, epochs=1)  # images in [0, 255]
    ```
    """

    backbone_cls = CRATEBackbone
    preprocessor_cls = CRATEImageClassifierPreprocessor
