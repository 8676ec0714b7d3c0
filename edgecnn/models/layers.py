"""Blocks shared by the builders: each architecture file composes these, none re-implements them.

Batch-normalisation and bias conventions follow the reference Keras implementations so that
parameter counts match ``keras.applications`` exactly (see the tests).
"""

from __future__ import annotations

from edgecnn.models._tf import keras, layers

BN_EPS = 1e-3


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%.

    The rounding used by MobileNet v2 and EfficientNet (``_make_divisible`` in the reference code).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def activation(x, kind: str | None, name: str | None = None):
    """Apply an activation by name; ``relu6`` becomes a ``ReLU(6)`` layer (TFLite RELU6)."""
    if kind is None or kind == "linear":
        return x
    if kind == "relu6":
        return layers.ReLU(6.0, name=name)(x)
    if kind == "leaky":
        return layers.LeakyReLU(negative_slope=0.1, name=name)(x)
    return layers.Activation(kind, name=name)(x)


def conv_bn(
    x,
    filters: int,
    kernel,
    strides=1,
    act: str | None = "relu",
    *,
    use_bias: bool = False,
    bn: bool = True,
    groups: int = 1,
    padding: str = "same",
    bn_eps: float = BN_EPS,
    name: str | None = None,
):
    """Convolution, optional batch normalisation, activation."""
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        groups=groups,
        name=None if name is None else f"{name}_conv",
    )(x)
    if bn:
        x = layers.BatchNormalization(epsilon=bn_eps, name=None if name is None else f"{name}_bn")(x)
    return activation(x, act, name=None if name is None else f"{name}_{act}")


def depthwise_bn(x, kernel=3, strides=1, act: str | None = "relu6", *, name: str | None = None):
    """Depthwise convolution (one filter per channel), batch normalisation, activation."""
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=None if name is None else f"{name}_dw")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name=None if name is None else f"{name}_dw_bn")(x)
    return activation(x, act, name=None if name is None else f"{name}_dw_{act}")


def separable_block(x, pointwise_filters: int, strides=1, *, name: str):
    """MobileNet v1 depthwise-separable block: 3x3 depthwise + 1x1 pointwise, each BN + ReLU6."""
    x = depthwise_bn(x, 3, strides, "relu6", name=name)
    return conv_bn(x, pointwise_filters, 1, act="relu6", name=f"{name}_pw")


def squeeze_excite(x, squeeze_filters: int, act: str = "swish", *, name: str):
    """Squeeze-and-excitation (Hu et al., 2018): global pool, bottleneck, sigmoid channel gate."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = layers.Conv2D(squeeze_filters, 1, activation=act, name=f"{name}_se_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_excite")([x, s])


def inverted_residual(
    x,
    *,
    expansion: float,
    filters_out: int,
    kernel: int = 3,
    strides: int = 1,
    act: str = "relu6",
    se_ratio: float = 0.0,
    drop_rate: float = 0.0,
    skip: bool = True,
    name: str,
):
    """Inverted residual bottleneck: 1x1 expansion, depthwise, (squeeze-excite), linear 1x1 projection.

    MobileNet v2 (Sandler et al., 2018) uses it with ReLU6 and no SE; EfficientNet's MBConv
    (Tan & Le, 2019) with swish, SE ratio 0.25 (of the block's *input* channels) and drop-connect.
    The skip connection is added when input and output shapes match.
    """
    filters_in = x.shape[-1]
    inputs = x
    expanded = int(filters_in * expansion)
    if expansion != 1:
        x = conv_bn(x, expanded, 1, act=act, name=f"{name}_expand")
    x = depthwise_bn(x, kernel, strides, act, name=name)
    if 0 < se_ratio <= 1:
        x = squeeze_excite(x, max(1, int(filters_in * se_ratio)), act, name=name)
    x = conv_bn(x, filters_out, 1, act=None, name=f"{name}_project")
    if skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def classifier_head(x, num_classes: int, *, dropout: float = 0.0, name: str = "predictions"):
    """Global average pooling, optional dropout, dense softmax classifier."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name=name)(x)


def input_tensor(input_shape, default):
    """A batch-agnostic Keras Input; ``input_shape`` defaults to the architecture's own."""
    shape = tuple(default if input_shape is None else input_shape)
    if len(shape) != 3 or any((d is not None and int(d) <= 0) for d in shape):
        from edgecnn.core.errors import InputError

        raise InputError(f"input_shape must be (height, width, channels) with positive sizes, got {shape}")
    return keras.Input(shape=shape, name="image")
