"""ResNet-18/34/50/101/152 (He et al., Deep Residual Learning for Image Recognition, CVPR 2016)."""

from __future__ import annotations

from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras, layers
from edgecnn.models.layers import classifier_head, conv_bn, input_tensor
from edgecnn.models.registry import register_model

# depth -> (block kind, blocks per stage)
_CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_EPS = 1.001e-5  # the reference Keras ResNet's batch-norm epsilon


def basic_block(x, filters, strides, use_bias, name):
    """Two 3x3 convolutions; a projection shortcut (1x1, BN) where the shape changes."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, act=None, use_bias=use_bias, bn_eps=_EPS, name=f"{name}_0")
    x = conv_bn(x, filters, 3, strides, act="relu", use_bias=use_bias, bn_eps=_EPS, name=f"{name}_1")
    x = conv_bn(x, filters, 3, 1, act=None, use_bias=use_bias, bn_eps=_EPS, name=f"{name}_2")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


def bottleneck_block(x, filters, strides, use_bias, name):
    """1x1 reduce, 3x3, 1x1 expand (x4); projection shortcut where the shape changes.

    As in the paper and the reference Keras ResNet (v1), the stride sits on the first 1x1.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, strides, act=None, use_bias=use_bias, bn_eps=_EPS, name=f"{name}_0")
    x = conv_bn(x, filters, 1, strides, act="relu", use_bias=use_bias, bn_eps=_EPS, name=f"{name}_1")
    x = conv_bn(x, filters, 3, 1, act="relu", use_bias=use_bias, bn_eps=_EPS, name=f"{name}_2")
    x = conv_bn(x, 4 * filters, 1, 1, act=None, use_bias=use_bias, bn_eps=_EPS, name=f"{name}_3")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


def resnet(depth=50, input_shape=None, num_classes=1000, include_top=True, use_bias=None):
    """ResNet (He et al., 2016) with basic (18, 34) or bottleneck (50, 101, 152) residual blocks.

    ``use_bias`` defaults to the reference implementation of each kind so parameter counts match it:
    bottleneck models follow ``keras.applications`` (convolutions with biases: ResNet-50 has
    25,636,712 parameters), basic-block models follow torchvision (no biases before batch norm:
    ResNet-18 has 11,689,512).
    """
    if depth not in _CONFIGS:
        raise InputError(f"ResNet depth must be one of {sorted(_CONFIGS)}, got {depth}")
    kind, stages = _CONFIGS[depth]
    block = basic_block if kind == "basic" else bottleneck_block
    if use_bias is None:
        use_bias = kind == "bottleneck"
    inputs = input_tensor(input_shape, (224, 224, 3))
    x = conv_bn(inputs, 64, 7, 2, act="relu", use_bias=use_bias, bn_eps=_EPS, name="conv1")
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    for stage, (blocks, filters) in enumerate(zip(stages, (64, 128, 256, 512)), start=2):
        for b in range(1, blocks + 1):
            strides = 2 if (b == 1 and stage > 2) else 1
            x = block(x, filters, strides, use_bias, name=f"conv{stage}_block{b}")
    if include_top:
        x = classifier_head(x, num_classes)
    return keras.Model(inputs, x, name=f"resnet{depth}")


_PAPER = "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016"
for _depth in _CONFIGS:
    register_model(f"resnet{_depth}", family="resnet", paper=_PAPER, default_input=(224, 224, 3), depth=_depth)(resnet)
