"""ResNet (He et al. 2016), CIFAR and ImageNet (torchvision) layouts."""

from keras_ssl.models.resnet.resnet_backbone import ResNetBackbone
from keras_ssl.models.resnet.resnet_image_classifier import (
    ResNetImageClassifier,
)
from keras_ssl.models.resnet.resnet_image_classifier_preprocessor import (
    ResNetImageClassifierPreprocessor,
)
from keras_ssl.models.resnet.resnet_image_converter import (
    ResNetImageConverter,
)
from keras_ssl.models.resnet.resnet_layers import ResNetBasicBlock
from keras_ssl.models.resnet.resnet_layers import ResNetBottleneckBlock
from keras_ssl.models.resnet.resnet_layers import ResNetStage
from keras_ssl.models.resnet.resnet_layers import ResNetStem
from keras_ssl.models.resnet.resnet_presets import backbone_presets
from keras_ssl.models.resnet.resnet_torchvision import (
    load_torchvision_state_dict,
)
from keras_ssl.hub import register_presets

register_presets(backbone_presets, ResNetBackbone)
