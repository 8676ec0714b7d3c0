"""MobileNet v1 (depthwise separable convolutions) and MobileNet v2 (inverted residuals)."""

from __future__ import annotations

from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras
from edgecnn.models.layers import (
    classifier_head,
    conv_bn,
    input_tensor,
    inverted_residual,
    make_divisible,
    separable_block,
)
from edgecnn.models.registry import register_model

# (pointwise filters, stride) of MobileNet v1's 13 depthwise-separable blocks (Table 1).
V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

# (expansion t, output channels c, repeats n, first stride s) of MobileNet v2 (Table 2).
V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _check_alpha(alpha):
    if not (isinstance(alpha, (int, float)) and 0 < alpha <= 4):
        raise InputError(f"alpha (width multiplier) must be in (0, 4], got {alpha!r}")


def _resolution(input_shape, rho, base=224):
    if not (isinstance(rho, (int, float)) and 0 < rho <= 4):
        raise InputError(f"rho (resolution multiplier) must be in (0, 4], got {rho!r}")
    if input_shape is not None:
        return input_shape
    size = int(round(base * rho))
    return (size, size, 3)


@register_model(
    "mobilenet_v1",
    family="mobilenet",
    paper="Howard et al., MobileNets: Efficient CNNs for Mobile Vision Applications, arXiv:1704.04861",
    default_input=(224, 224, 3),
)
def mobilenet_v1(input_shape=None, num_classes=1000, include_top=True, alpha=1.0, rho=1.0, dropout=1e-3):
    """MobileNet v1 (Howard et al., 2017): a 3x3 stem then 13 depthwise-separable blocks.

    ``alpha`` is the width multiplier (channels scaled by alpha), ``rho`` the resolution multiplier
    (input side 224*rho when ``input_shape`` is not given). 4,253,864 parameters at alpha 1.0 and
    569M multiply-adds at 224x224, as in the paper and ``keras.applications.MobileNet``.
    """
    _check_alpha(alpha)
    inputs = input_tensor(_resolution(input_shape, rho), (224, 224, 3))
    x = conv_bn(inputs, int(32 * alpha), 3, 2, act="relu6", name="conv1")
    for i, (filters, strides) in enumerate(V1_BLOCKS, start=1):
        x = separable_block(x, int(filters * alpha), strides, name=f"block{i}")
    if include_top:
        x = classifier_head(x, num_classes, dropout=dropout)
    return keras.Model(inputs, x, name=f"mobilenet_v1_{alpha:g}")


@register_model(
    "mobilenet_v2",
    family="mobilenet",
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    default_input=(224, 224, 3),
)
def mobilenet_v2(input_shape=None, num_classes=1000, include_top=True, alpha=1.0, rho=1.0):
    """MobileNet v2 (Sandler et al., 2018): inverted residual bottlenecks with linear projections.

    Each block expands by t with a 1x1 convolution, filters with a 3x3 depthwise convolution,
    projects linearly (no activation) with a 1x1 convolution, and adds the input when shapes match.
    Channels are ``make_divisible(c * alpha, 8)``; the last 1x1 layer keeps 1280 channels for
    alpha <= 1. 3,538,984 parameters and about 300M multiply-adds at alpha 1.0, 224x224.
    """
    _check_alpha(alpha)
    inputs = input_tensor(_resolution(input_shape, rho), (224, 224, 3))
    x = conv_bn(inputs, make_divisible(32 * alpha, 8), 3, 2, act="relu6", name="conv1")
    block = 0
    for t, c, n, s in V2_BLOCKS:
        out = make_divisible(int(c * alpha), 8)
        for i in range(n):
            x = inverted_residual(x, expansion=t, filters_out=out, strides=s if i == 0 else 1, name=f"block{block}")
            block += 1
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = conv_bn(x, last, 1, act="relu6", name="conv_last")
    if include_top:
        x = classifier_head(x, num_classes)
    return keras.Model(inputs, x, name=f"mobilenet_v2_{alpha:g}")
