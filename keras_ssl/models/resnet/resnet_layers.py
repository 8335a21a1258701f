"""Building blocks of `ResNetBackbone`: stem, residual blocks and stages.

Every layer mirrors the PyTorch module of the same role in torchvision's
`ResNet` (and the CIFAR ResNets written in the same style), so attribute names
(`conv1`, `bn1`, ..., `downsample_conv`) follow torchvision's parameter names
and padding is explicit: Keras `"same"` padding with stride 2 pads only the
bottom/right, PyTorch pads both sides.
"""

import keras
from keras import ops

STEM_TYPES = ("cifar", "imagenet")
BLOCK_TYPES = ("basic_block", "bottleneck_block")
SHORTCUT_TYPES = ("projection", "identity_pad")


def _spatial_output_size(size, stride):
    """Output size of a conv/pool with `padding = (kernel - 1) // 2`."""
    return None if size is None else (size - 1) // stride + 1


def _downsampled_shape(input_shape, stride, channels):
    batch, height, width, _ = input_shape
    return (
        batch,
        _spatial_output_size(height, stride),
        _spatial_output_size(width, stride),
        channels,
    )


def _build_sequence(layers, input_shape):
    """Builds `layers` applied one after another; returns the output shape."""
    for layer in layers:
        layer.build(input_shape)
        input_shape = layer.compute_output_shape(input_shape)
    return input_shape


# TensorFlow's CPU kernel for a convolution's input gradient
# (Conv2DBackpropInput) is slow on small maps with many channels: at batch
# 128, a 3x3 512->512 conv on 1x1 maps takes 830 ms where a forward
# convolution computing the same gradient takes 41 ms (2x2x256: 82 vs 17 ms;
# 4x4x128: 26 vs 10 ms; 8x8x64: 6 vs 7 ms, where TF's own kernel wins). A
# CIFAR-sized ResNet-18 spent most of its train step there, and 4x less in
# the kernel gradient computed as one matrix product.
_SMALL_OUTPUT_PIXELS = 16


def _tf_conv_with_forward_input_gradient(inputs, kernel, stride):
    """A VALID NHWC convolution whose input gradient is a forward conv."""
    import tensorflow as tf

    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def conv(x, w):
        def gradient(dy):
            kernel_h, kernel_w = w.shape[0], w.shape[1]
            height, width = x.shape[1], x.shape[2]
            out_h, out_w = dy.shape[1], dy.shape[2]
            if stride > 1:  # Put the strided positions back, zeros between.
                batch, channels = tf.shape(dy)[0], dy.shape[3]
                dy_dilated = tf.pad(
                    dy[:, :, None, :, None, :],
                    [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]],
                )
                dy_dilated = tf.reshape(
                    dy_dilated, [batch, out_h * stride, out_w * stride, channels]
                )
                dy_dilated = dy_dilated[
                    :, : (out_h - 1) * stride + 1, : (out_w - 1) * stride + 1
                ]
            else:
                dy_dilated = dy
            # Full correlation with the flipped, transposed kernel; rows and
            # columns the strided conv never read get zero gradient.
            extra_h = height - ((out_h - 1) * stride + kernel_h)
            extra_w = width - ((out_w - 1) * stride + kernel_w)
            padded = tf.pad(
                dy_dilated,
                [
                    [0, 0],
                    [kernel_h - 1, kernel_h - 1 + extra_h],
                    [kernel_w - 1, kernel_w - 1 + extra_w],
                    [0, 0],
                ],
            )
            flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(padded, flipped, 1, "VALID")
            # The kernel gradient as one matrix product of the input patches
            # with dy (4x faster than Conv2DBackpropFilter on 1x1 maps).
            patches = tf.image.extract_patches(
                x, [1, kernel_h, kernel_w, 1], strides, [1, 1, 1, 1], "VALID"
            )  # [B, out_h, out_w, kernel_h * kernel_w * C_in]
            dw = tf.reshape(tf.einsum("bhwk,bhwo->ko", patches, dy), tf.shape(w))
            return dx, dw

        return tf.nn.conv2d(x, w, strides, "VALID"), gradient

    return conv(inputs, tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetConv2D(keras.layers.Conv2D):
    """`Conv2D` (VALID, square stride) with a fast TensorFlow input gradient
    on small maps; identical outputs and gradients on every backend."""

    def convolution_op(self, inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if (
            keras.backend.backend() == "tensorflow"
            and height is not None
            and width is not None
        ):
            out_h = (height - self.kernel_size[0]) // self.strides[0] + 1
            out_w = (width - self.kernel_size[1]) // self.strides[1] + 1
            if out_h * out_w <= _SMALL_OUTPUT_PIXELS:
                return _tf_conv_with_forward_input_gradient(
                    inputs, kernel, self.strides[0]
                )
        return super().convolution_op(inputs, kernel)


def _conv(filters, kernel_size, stride, dtype, name):
    # Convolutions feed a BatchNormalization, so a bias would be redundant.
    return ResNetConv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="valid",
        use_bias=False,
        dtype=dtype,
        name=name,
    )


def _batch_norm(dtype, name):
    # PyTorch defaults: eps 1e-5 and momentum 0.1 (Keras' 0.9).
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=1e-5, momentum=0.9, dtype=dtype, name=name
    )


def _pad(padding, dtype, name):
    return keras.layers.ZeroPadding2D(padding, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetStem(keras.layers.Layer):
    """The input stem of a ResNet, before the first residual stage.

    - `"cifar"`: conv 3x3 (stride 1) + BN + ReLU, as in He et al. 2016,
      "Deep Residual Learning for Image Recognition", section 4.2.
    - `"imagenet"`: conv 7x7 (stride 2, padding 3) + BN + ReLU + max-pool
      3x3 (stride 2, padding 1), as in torchvision's `ResNet`.

    Args:
        filters: int. Output channels of the stem convolution.
        stem_type: str. `"cifar"` or `"imagenet"`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:
    ```python
    stem = ResNetStem(filters=64, stem_type="imagenet")
    stem(np.zeros((2, 64, 64, 3)))  # shape (2, 16, 16, 64)
    ```
    """

    def __init__(self, filters=16, stem_type="cifar", **kwargs):
        super().__init__(**kwargs)
        if stem_type not in STEM_TYPES:
            raise ValueError(
                f"`stem_type` must be one of {STEM_TYPES}. "
                f"Received: stem_type={stem_type!r}"
            )
        self.filters = filters
        self.stem_type = stem_type
        dtype = self.dtype_policy
        if stem_type == "cifar":
            self.conv1_pad = _pad(1, dtype, "conv1_pad")
            self.conv1 = _conv(filters, 3, 1, dtype, "conv1")
        else:
            self.conv1_pad = _pad(3, dtype, "conv1_pad")
            self.conv1 = _conv(filters, 7, 2, dtype, "conv1")
        self.bn1 = _batch_norm(dtype, "bn1")
        if stem_type == "imagenet":
            # Zero padding equals PyTorch's -inf padding here: the max-pool
            # input is a ReLU output, so it is never negative.
            self.maxpool_pad = _pad(1, dtype, "maxpool_pad")
            self.maxpool = keras.layers.MaxPooling2D(
                3, strides=2, dtype=dtype, name="maxpool"
            )

    @property
    def stride(self):
        """Total downsampling factor of the stem (1 or 4)."""
        return 1 if self.stem_type == "cifar" else 4

    def build(self, input_shape):
        _build_sequence([self.conv1_pad, self.conv1, self.bn1], input_shape)
        if self.stem_type == "imagenet":
            shape = _downsampled_shape(input_shape, 2, self.filters)
            _build_sequence([self.maxpool_pad, self.maxpool], shape)

    def call(self, inputs, training=None):
        x = self.conv1(self.conv1_pad(inputs))
        x = ops.relu(self.bn1(x, training=training))
        if self.stem_type == "imagenet":
            x = self.maxpool(self.maxpool_pad(x))
        return x

    def compute_output_shape(self, input_shape):
        return _downsampled_shape(input_shape, self.stride, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stem_type": self.stem_type})
        return config


class _ResidualBlock(keras.layers.Layer):
    """Shared shortcut logic of the basic and bottleneck blocks."""

    expansion = 1

    def __init__(self, filters, stride=1, shortcut="projection", **kwargs):
        super().__init__(**kwargs)
        if shortcut not in SHORTCUT_TYPES:
            raise ValueError(
                f"`shortcut` must be one of {SHORTCUT_TYPES}. "
                f"Received: shortcut={shortcut!r}"
            )
        self.filters = filters
        self.stride = stride
        self.shortcut = shortcut
        self.output_filters = filters * self.expansion
        # Created in `build`, once the input channel count is known.
        self.downsample_conv = None
        self.downsample_bn = None
        self._pad_channels = None

    def _build_shortcut(self, input_shape):
        input_channels = input_shape[-1]
        if self.stride == 1 and input_channels == self.output_filters:
            return
        if self.shortcut == "projection":
            self.downsample_conv = _conv(
                self.output_filters,
                1,
                self.stride,
                self.dtype_policy,
                "downsample_conv",
            )
            self.downsample_bn = _batch_norm(self.dtype_policy, "downsample_bn")
            _build_sequence(
                [self.downsample_conv, self.downsample_bn], input_shape
            )
            return
        extra = self.output_filters - input_channels
        if extra < 0:
            raise ValueError(
                '`shortcut="identity_pad"` can only add channels, but this '
                f"block maps {input_channels} to {self.output_filters} "
                'channels. Use `shortcut="projection"`.'
            )
        # He et al.'s option A: subsample, then zero-pad the channels on both
        # sides (as in the common PyTorch CIFAR ports).
        self._pad_channels = (extra // 2, extra - extra // 2)

    def _apply_shortcut(self, inputs, training):
        if self.downsample_conv is not None:
            x = self.downsample_conv(inputs)
            return self.downsample_bn(x, training=training)
        if self._pad_channels is not None:
            x = inputs[:, :: self.stride, :: self.stride, :]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], self._pad_channels])
        return inputs

    def compute_output_shape(self, input_shape):
        return _downsampled_shape(input_shape, self.stride, self.output_filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "stride": self.stride,
                "shortcut": self.shortcut,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetBasicBlock(_ResidualBlock):
    """Basic residual block: two 3x3 convolutions (He et al. 2016).

    `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, the stride on
    `conv1`. The shortcut is the identity unless the shape changes; then it
    is a 1x1 conv + BN (`shortcut="projection"`) or a subsample with zero
    channel padding (`shortcut="identity_pad"`, He et al.'s option A).

    Args:
        filters: int. Channels of both convolutions and of the output.
        stride: int. Stride of the first convolution.
        shortcut: str. `"projection"` or `"identity_pad"`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:
    ```python
    block = ResNetBasicBlock(filters=32, stride=2)
    block(np.zeros((2, 16, 16, 16)))  # shape (2, 8, 8, 32)
    ```
    """

    expansion = 1

    def __init__(self, filters, stride=1, shortcut="projection", **kwargs):
        super().__init__(filters, stride=stride, shortcut=shortcut, **kwargs)
        dtype = self.dtype_policy
        self.conv1_pad = _pad(1, dtype, "conv1_pad")
        self.conv1 = _conv(filters, 3, stride, dtype, "conv1")
        self.bn1 = _batch_norm(dtype, "bn1")
        self.conv2_pad = _pad(1, dtype, "conv2_pad")
        self.conv2 = _conv(filters, 3, 1, dtype, "conv2")
        self.bn2 = _batch_norm(dtype, "bn2")

    def build(self, input_shape):
        _build_sequence(
            [
                self.conv1_pad,
                self.conv1,
                self.bn1,
                self.conv2_pad,
                self.conv2,
                self.bn2,
            ],
            input_shape,
        )
        self._build_shortcut(input_shape)

    def call(self, inputs, training=None):
        x = self.conv1(self.conv1_pad(inputs))
        x = ops.relu(self.bn1(x, training=training))
        x = self.conv2(self.conv2_pad(x))
        x = self.bn2(x, training=training)
        return ops.relu(x + self._apply_shortcut(inputs, training))


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetBottleneckBlock(_ResidualBlock):
    """Bottleneck residual block: 1x1, 3x3, 1x1 convolutions, expansion 4.

    He et al. 2016, "Deep Residual Learning for Image Recognition", with the
    stride on the 3x3 convolution (ResNet v1.5, as torchvision). The output
    has `4 * filters` channels. The shortcut is as in `ResNetBasicBlock`.

    Args:
        filters: int. Channels of the 1x1 and 3x3 bottleneck convolutions.
        stride: int. Stride of the 3x3 convolution.
        shortcut: str. `"projection"` or `"identity_pad"`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:
    ```python
    block = ResNetBottleneckBlock(filters=16)
    block(np.zeros((2, 32, 32, 16)))  # shape (2, 32, 32, 64)
    ```
    """

    expansion = 4

    def __init__(self, filters, stride=1, shortcut="projection", **kwargs):
        super().__init__(filters, stride=stride, shortcut=shortcut, **kwargs)
        dtype = self.dtype_policy
        self.conv1 = _conv(filters, 1, 1, dtype, "conv1")
        self.bn1 = _batch_norm(dtype, "bn1")
        self.conv2_pad = _pad(1, dtype, "conv2_pad")
        self.conv2 = _conv(filters, 3, stride, dtype, "conv2")
        self.bn2 = _batch_norm(dtype, "bn2")
        self.conv3 = _conv(self.output_filters, 1, 1, dtype, "conv3")
        self.bn3 = _batch_norm(dtype, "bn3")

    def build(self, input_shape):
        _build_sequence(
            [
                self.conv1,
                self.bn1,
                self.conv2_pad,
                self.conv2,
                self.bn2,
                self.conv3,
                self.bn3,
            ],
            input_shape,
        )
        self._build_shortcut(input_shape)

    def call(self, inputs, training=None):
        x = ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = self.conv2(self.conv2_pad(x))
        x = ops.relu(self.bn2(x, training=training))
        x = self.bn3(self.conv3(x), training=training)
        return ops.relu(x + self._apply_shortcut(inputs, training))


BLOCK_CLASSES = {
    "basic_block": ResNetBasicBlock,
    "bottleneck_block": ResNetBottleneckBlock,
}


@keras.saving.register_keras_serializable(package="keras_ssl")
class ResNetStage(keras.layers.Layer):
    """A stage of residual blocks at one resolution (torchvision's `layerN`).

    The first block carries the stride and any channel change; the others
    keep the shape.

    Args:
        filters: int. Base width of the blocks (the output has
            `filters * expansion` channels: 1 for basic, 4 for bottleneck).
        num_blocks: int. Number of residual blocks.
        stride: int. Stride of the first block.
        block_type: str. `"basic_block"` or `"bottleneck_block"`.
        shortcut: str. `"projection"` or `"identity_pad"`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Example:
    ```python
    stage = ResNetStage(filters=32, num_blocks=3, stride=2)
    stage(np.zeros((2, 32, 32, 16)))  # shape (2, 16, 16, 32)
    ```
    """

    def __init__(
        self,
        filters,
        num_blocks,
        stride=1,
        block_type="basic_block",
        shortcut="projection",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if block_type not in BLOCK_TYPES:
            raise ValueError(
                f"`block_type` must be one of {BLOCK_TYPES}. "
                f"Received: block_type={block_type!r}"
            )
        self.filters = filters
        self.num_blocks = num_blocks
        self.stride = stride
        self.block_type = block_type
        self.shortcut = shortcut
        block_cls = BLOCK_CLASSES[block_type]
        self.output_filters = filters * block_cls.expansion
        self.blocks = [
            block_cls(
                filters,
                stride=stride if index == 0 else 1,
                shortcut=shortcut,
                dtype=self.dtype_policy,
                name=f"block{index}",
            )
            for index in range(num_blocks)
        ]

    def build(self, input_shape):
        _build_sequence(self.blocks, input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return _downsampled_shape(input_shape, self.stride, self.output_filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "stride": self.stride,
                "block_type": self.block_type,
                "shortcut": self.shortcut,
            }
        )
        return config
