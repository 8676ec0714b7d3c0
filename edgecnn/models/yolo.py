"""A YOLO-style grid detector (Redmon et al., You Only Look Once, CVPR 2016; anchors from YOLO9000).

The head is the convolutional form of sliding windows: one 1x1 convolution evaluates every grid
cell at once and predicts, for each of B anchors, (tx, ty, tw, th, objectness, class scores).
Decoding (sigmoid offsets in the cell, anchor-relative sizes, IoU, NMS) is device-side numpy in
:mod:`edgecnn.core.detection`.
"""

from __future__ import annotations

from edgecnn.core.detection import DEFAULT_ANCHORS
from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras, layers
from edgecnn.models.layers import conv_bn, input_tensor
from edgecnn.models.registry import get_spec, register_model

ACTIVATIONS = ("leaky", "relu", "relu6")


def tiny_backbone(inputs, activation: str = "leaky"):
    """A YOLOv2-tiny style feature extractor: 3x3 conv + BN + leaky ReLU (the paper's; ``relu`` or
    ``relu6`` for the Edge TPU, which runs LEAKY_RELU on the host CPU), 2x2 max pool, x5 (stride 32)."""
    x = inputs
    for i, filters in enumerate((16, 32, 64, 128, 256), start=1):
        x = conv_bn(x, filters, 3, act=activation, name=f"tiny{i}")
        x = layers.MaxPooling2D(2, 2, name=f"tiny{i}_pool")(x)
    return conv_bn(x, 512, 3, act=activation, name="tiny6")


@register_model(
    "yolo",
    family="yolo",
    paper="Redmon et al., You Only Look Once: Unified, Real-Time Object Detection, CVPR 2016",
    default_input=(224, 224, 3),
)
def yolo(input_shape=None, num_classes=20, anchors=DEFAULT_ANCHORS, backbone="tiny", backbone_options=None, activation="leaky"):
    """Backbone + S x S grid head with B anchors x (x, y, w, h, objectness, classes).

    The grid side S is the input side over the backbone's stride (32): 7x7 at 224x224. The output is
    raw (batch, S, S, B, 5 + num_classes); :func:`edgecnn.core.detection.decode_yolo` turns it into boxes.
    ``backbone`` is ``"tiny"`` or any registered classifier (used without its top). ``activation``
    (tiny backbone): ``leaky`` as in the paper, or ``relu``/``relu6`` for Coral: the Edge TPU has no
    LEAKY_RELU, so a leaky model leaves all but its first convolution on the host CPU.
    """
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    anchors = [tuple(float(v) for v in a) for a in anchors]
    if not anchors or any(len(a) != 2 or min(a) <= 0 for a in anchors):
        raise InputError("anchors must be a non-empty list of positive (width, height) pairs")
    if backbone == "tiny":
        inputs = input_tensor(input_shape, (224, 224, 3))
        features = tiny_backbone(inputs, activation)
    else:
        spec = get_spec(backbone)
        base = spec.builder(**spec.fixed, **(backbone_options or {}), input_shape=input_shape or (224, 224, 3), include_top=False)
        inputs, features = base.input, base.output
    per_anchor = 5 + num_classes
    x = layers.Conv2D(len(anchors) * per_anchor, 1, name="grid_head")(features)
    s_h, s_w = x.shape[1], x.shape[2]
    x = layers.Reshape((s_h, s_w, len(anchors), per_anchor), name="grid")(x)
    return keras.Model(inputs, x, name=f"yolo_{backbone}")
