import math

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.models.resnet.resnet_layers import BLOCK_TYPES
from keras_ssl.models.resnet.resnet_layers import SHORTCUT_TYPES
from keras_ssl.models.resnet.resnet_layers import STEM_TYPES
from keras_ssl.models.resnet.resnet_layers import ResNetStage
from keras_ssl.models.resnet.resnet_layers import ResNetStem
from keras_ssl.utils.validation import check_image_shape

# depth -> (block type, blocks per stage).
CIFAR_DEPTHS = {
    8: ("basic_block", 1),
    20: ("basic_block", 3),
    32: ("basic_block", 5),
    44: ("basic_block", 7),
    56: ("basic_block", 9),
    110: ("basic_block", 18),
    164: ("bottleneck_block", 18),
}
IMAGENET_DEPTHS = {
    18: ("basic_block", [2, 2, 2, 2]),
    34: ("basic_block", [3, 4, 6, 3]),
    50: ("bottleneck_block", [3, 4, 6, 3]),
    101: ("bottleneck_block", [3, 4, 23, 3]),
    152: ("bottleneck_block", [3, 8, 36, 3]),
}


def _check_depth(depth, depths, style):
    if depth not in depths:
        listed = ", ".join(
            f"{d} ({block.split('_')[0]})" for d, (block, _) in depths.items()
        )
        raise ValueError(
            f"Unsupported {style} ResNet depth {depth!r}. Supported depths: "
            f"{listed}. For another layout, call `ResNetBackbone(...)` with "
            "explicit `stackwise_*` arguments."
        )
    return depths[depth]


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetBackbone(PresetMixin, FeaturePyramidBackbone):
    """ResNet (v1) backbone, CIFAR or ImageNet style, channels last.

    He et al. 2016, "Deep Residual Learning for Image Recognition" (CVPR).
    Blocks are post-activation (conv, BN, ReLU; ReLU after the addition).

    - CIFAR style (`stem_type="cifar"`, section 4.2 of the paper): a 3x3
      conv with 16 filters, then three stages of 16/32/64 channels with
      strides 1/2/2; basic blocks give depth 6n+2 (ResNet-8/20/32/44/56/110),
      bottleneck blocks (expansion 4) depth 9n+2 (ResNet-164; post-activation
      as in the PyTorch CIFAR code SFE builds on, not the pre-activation
      ResNet-164 of He et al.'s "Identity Mappings" paper).
    - ImageNet style (`stem_type="imagenet"`): torchvision's exact layout
      (conv 7x7 stride 2, max-pool, four stages of 64/128/256/512 base
      widths; the bottleneck stride is on the 3x3 conv, "ResNet v1.5"), so
      torchvision weights load exactly (see `load_torchvision_state_dict`).

    When a block changes the shape, its shortcut is a 1x1 conv + BN
    (`shortcut="projection"`, option B of the paper, torchvision's
    `downsample`). He et al.'s CIFAR models used option A instead: subsample
    and zero-pad the new channels (`shortcut="identity_pad"`), which has no
    parameters (ResNet-20 with a 10-class head: 269,722 parameters, the
    paper's 0.27M, vs 272,474 with projections).

    The output is the last stage's feature map `[batch, height', width',
    channels]`. For methods that work stage by stage, `backbone.stem` and
    `backbone.stages` are the layers that compose it (`stages[i]` is
    torchvision's `layer{i+1}`), `backbone.stage_output_channels` their
    widths, and `backbone.pyramid_outputs` maps `"P{log2(stride)}"` to the
    stage outputs (the last stage at each stride).

    Args:
        stackwise_num_filters: list of ints. Base width of each stage; the
            stem has `stackwise_num_filters[0]` filters. Defaults to
            `[16, 32, 64]` (CIFAR).
        stackwise_num_blocks: list of ints. Residual blocks per stage.
            Defaults to `[3, 3, 3]` (ResNet-20).
        stackwise_num_strides: list of ints (powers of two). Stride of the
            first block of each stage. Defaults to `[1, 2, 2]`.
        block_type: str. `"basic_block"` (two 3x3 convs) or
            `"bottleneck_block"` (1x1, 3x3, 1x1; output `4 * filters`).
            Defaults to `"basic_block"`.
        stem_type: str. `"cifar"` (3x3 conv, stride 1) or `"imagenet"` (7x7
            conv stride 2 + max-pool stride 2). Defaults to `"cifar"`.
        shortcut: str. `"projection"` or `"identity_pad"` (option A), used
            where a block changes the shape. Defaults to `"projection"`.
        image_shape: tuple. Input shape without the batch axis, channels
            last; the channel count must be known. Defaults to
            `(None, None, 3)`.
        dtype: `None`, str or `keras.DTypePolicy`. Dtype of the computations
            and weights.
        **kwargs: base `keras.Model` arguments such as `name`.

    Example:
    ```python
    images = np.random.uniform(size=(2, 32, 32, 3))

    # CIFAR ResNet-20 (64-d features at 8x8).
    backbone = ResNetBackbone.cifar(depth=20)
    backbone(images)  # shape (2, 8, 8, 64)

    # torchvision's ResNet-50 layout, 2048-d features at stride 32.
    backbone = ResNetBackbone.imagenet(depth=50)

    # Run the network stage by stage.
    x = backbone.stem(images)
    for stage in backbone.stages:
        x = stage(x)
    ```
    """

    def __init__(
        self,
        stackwise_num_filters=(16, 32, 64),
        stackwise_num_blocks=(3, 3, 3),
        stackwise_num_strides=(1, 2, 2),
        block_type="basic_block",
        stem_type="cifar",
        shortcut="projection",
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        stackwise_num_filters = list(stackwise_num_filters)
        stackwise_num_blocks = list(stackwise_num_blocks)
        stackwise_num_strides = list(stackwise_num_strides)
        image_shape = tuple(image_shape)
        _check_arguments(
            stackwise_num_filters,
            stackwise_num_blocks,
            stackwise_num_strides,
            block_type,
            stem_type,
            shortcut,
            image_shape,
        )

        # === Layers ===
        self.stem = ResNetStem(
            filters=stackwise_num_filters[0],
            stem_type=stem_type,
            dtype=dtype,
            name="stem",
        )
        self.stages = [
            ResNetStage(
                filters=filters,
                num_blocks=num_blocks,
                stride=stride,
                block_type=block_type,
                shortcut=shortcut,
                dtype=dtype,
                name=f"stage{index + 1}",
            )
            for index, (filters, num_blocks, stride) in enumerate(
                zip(
                    stackwise_num_filters,
                    stackwise_num_blocks,
                    stackwise_num_strides,
                )
            )
        ]

        # === Functional Model ===
        image_input = keras.layers.Input(shape=image_shape, name="images")
        x = self.stem(image_input)
        total_stride = self.stem.stride
        pyramid_outputs = {}
        for stage in self.stages:
            x = stage(x)
            total_stride *= stage.stride
            pyramid_outputs[f"P{int(math.log2(total_stride))}"] = x

        super().__init__(inputs=image_input, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.stackwise_num_filters = stackwise_num_filters
        self.stackwise_num_blocks = stackwise_num_blocks
        self.stackwise_num_strides = stackwise_num_strides
        self.block_type = block_type
        self.stem_type = stem_type
        self.shortcut = shortcut
        self.image_shape = image_shape
        self.pyramid_outputs = pyramid_outputs
        self.stage_output_channels = [
            stage.output_filters for stage in self.stages
        ]
        self.data_format = "channels_last"

    # Keras' own functional input checks fail first, with messages that do
    # not say how to fix the input: check in `__call__` (eager and symbolic
    # calls) and in `call` (JAX `fit`/`predict` run `call` directly).
    def __call__(self, inputs, *args, **kwargs):
        check_image_shape(inputs.shape, self.image_shape[-1])
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        check_image_shape(inputs.shape, self.image_shape[-1])
        return super().call(inputs, training=training, mask=mask)

    @classmethod
    def cifar(cls, depth=20, **kwargs):
        """CIFAR ResNet of He et al. 2016 (section 4.2) at a given depth.

        Args:
            depth: int. One of 8, 20, 32, 44, 56, 110 (basic blocks) or 164
                (bottleneck blocks).
            **kwargs: other `ResNetBackbone` arguments, e.g. `shortcut`,
                `image_shape`, `dtype`.
        """
        block_type, num_blocks = _check_depth(depth, CIFAR_DEPTHS, "CIFAR")
        return cls(
            stackwise_num_filters=[16, 32, 64],
            stackwise_num_blocks=[num_blocks] * 3,
            stackwise_num_strides=[1, 2, 2],
            block_type=block_type,
            stem_type="cifar",
            **kwargs,
        )

    @classmethod
    def imagenet(cls, depth=50, **kwargs):
        """torchvision's ImageNet ResNet (v1.5) at a given depth.

        Args:
            depth: int. One of 18, 34 (basic blocks), 50, 101, 152
                (bottleneck blocks).
            **kwargs: other `ResNetBackbone` arguments, e.g. `image_shape`,
                `dtype`.
        """
        block_type, num_blocks = _check_depth(
            depth, IMAGENET_DEPTHS, "ImageNet"
        )
        return cls(
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=num_blocks,
            stackwise_num_strides=[1, 2, 2, 2],
            block_type=block_type,
            stem_type="imagenet",
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stackwise_num_filters": self.stackwise_num_filters,
                "stackwise_num_blocks": self.stackwise_num_blocks,
                "stackwise_num_strides": self.stackwise_num_strides,
                "block_type": self.block_type,
                "stem_type": self.stem_type,
                "shortcut": self.shortcut,
                "image_shape": self.image_shape,
            }
        )
        return config


def _check_arguments(
    stackwise_num_filters,
    stackwise_num_blocks,
    stackwise_num_strides,
    block_type,
    stem_type,
    shortcut,
    image_shape,
):
    lengths = {
        len(stackwise_num_filters),
        len(stackwise_num_blocks),
        len(stackwise_num_strides),
    }
    if len(lengths) != 1 or not stackwise_num_filters:
        raise ValueError(
            "`stackwise_num_filters`, `stackwise_num_blocks` and "
            "`stackwise_num_strides` must be non-empty and of equal length. "
            f"Received: stackwise_num_filters={stackwise_num_filters}, "
            f"stackwise_num_blocks={stackwise_num_blocks}, "
            f"stackwise_num_strides={stackwise_num_strides}"
        )
    for stride in stackwise_num_strides:
        # Pyramid levels are named by log2 of the stride.
        if stride < 1 or stride & (stride - 1):
            raise ValueError(
                "`stackwise_num_strides` must be powers of two. "
                f"Received: stackwise_num_strides={stackwise_num_strides}"
            )
    for name, value, allowed in (
        ("block_type", block_type, BLOCK_TYPES),
        ("stem_type", stem_type, STEM_TYPES),
        ("shortcut", shortcut, SHORTCUT_TYPES),
    ):
        if value not in allowed:
            raise ValueError(
                f"`{name}` must be one of {allowed}. "
                f"Received: {name}={value!r}"
            )
    if len(image_shape) != 3 or image_shape[-1] is None:
        raise ValueError(
            "`image_shape` must be `(height, width, channels)` (channels "
            "last) with a known channel count; height and width may be "
            f"None. Received: image_shape={image_shape}"
        )
