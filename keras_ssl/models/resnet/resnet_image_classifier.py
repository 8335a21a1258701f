import keras
from keras_hub.models import ImageClassifier

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.resnet.resnet_image_classifier_preprocessor import (
    ResNetImageClassifierPreprocessor,
)
from keras_ssl.utils.validation import check_image_shape


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetImageClassifier(PresetMixin, ImageClassifier):
    """ResNet image classifier: backbone, global pooling, dense head.

    He et al. 2016, "Deep Residual Learning for Image Recognition". With the
    default `pooling="avg"` and `activation=None` (logits) this is
    torchvision's `ResNet` head (`avgpool` + `fc`).

    Args:
        backbone: `ResNetBackbone`.
        num_classes: int. Number of output classes.
        preprocessor: `ResNetImageClassifierPreprocessor` or `None`. Applied
            by `fit`, `predict` and `evaluate`, not by a direct call.
        pooling: `"avg"` or `"max"`. Defaults to `"avg"`.
        activation: `None`, str or callable, for the dense head. Defaults to
            `None` (logits).
        dropout: float. Dropout before the dense head. Defaults to `0.0`.
        head_dtype: `None`, str or `keras.DTypePolicy` for the head.
        **kwargs: base `keras.Model` arguments such as `name`.

    Example:
    ```python
    classifier = ResNetImageClassifier(
        backbone=ResNetBackbone.cifar(depth=20),
        num_classes=10,
        preprocessor=ResNetImageClassifierPreprocessor(
            ResNetImageConverter(image_size=(32, 32))
        ),
    )
    classifier.predict(np.random.randint(0, 256, size=(2, 32, 32, 3)))
    ```
    """

    backbone_cls = ResNetBackbone
    preprocessor_cls = ResNetImageClassifierPreprocessor

    # As in `ResNetBackbone`: the classifier's own functional input checks
    # would otherwise fail first, with messages that name no fix.
    def __call__(self, inputs, *args, **kwargs):
        check_image_shape(inputs.shape, self.backbone.image_shape[-1])
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        check_image_shape(inputs.shape, self.backbone.image_shape[-1])
        return super().call(inputs, training=training, mask=mask)

    def pool(self, feature_map):
        """Pools the backbone's feature map `[B, H, W, C]` into `[B, C]`."""
        return self.pooler(feature_map)

    def head(self, features, training=None):
        """Logits from pooled features, as the classifier computes them."""
        return self.output_dense(self.output_dropout(features, training=training))
