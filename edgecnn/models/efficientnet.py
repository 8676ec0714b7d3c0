"""EfficientNet B0-B7 and compound scaling for any phi (Tan & Le, ICML 2019)."""

from __future__ import annotations

import math

from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras
from edgecnn.models.layers import classifier_head, conv_bn, input_tensor, inverted_residual, make_divisible
from edgecnn.models.registry import register_model

PAPER = "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019"

# The B0 baseline (Table 1): (kernel, repeats, filters in, filters out, expansion, stride).
B0_BLOCKS = [
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
]

# The released B0-B7 (width, depth, resolution, dropout) of the reference implementation.
VARIANTS = {
    0: (1.0, 1.0, 224, 0.2),
    1: (1.0, 1.1, 240, 0.2),
    2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 300, 0.3),
    4: (1.4, 1.8, 380, 0.4),
    5: (1.6, 2.2, 456, 0.4),
    6: (1.8, 2.6, 528, 0.5),
    7: (2.0, 3.1, 600, 0.5),
}

# Compound scaling constants found by the paper's grid search: alpha * beta^2 * gamma^2 ~= 2.
ALPHA_DEPTH, BETA_WIDTH, GAMMA_RESOLUTION = 1.2, 1.1, 1.15


def compound_coefficients(phi: float) -> tuple[float, float, int]:
    """(width, depth, resolution) for compound coefficient ``phi``: beta^phi, alpha^phi, 224*gamma^phi."""
    if not isinstance(phi, (int, float)) or not (0 <= phi <= 12):
        raise InputError(f"phi must be a number in [0, 12], got {phi!r}")
    resolution = make_divisible(224 * GAMMA_RESOLUTION**phi, 8)
    return BETA_WIDTH**phi, ALPHA_DEPTH**phi, resolution


def round_filters(filters: int, width: float) -> int:
    return make_divisible(filters * width, 8)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def efficientnet(
    phi=0.0,
    input_shape=None,
    num_classes=1000,
    include_top=True,
    width=None,
    depth=None,
    dropout=None,
    drop_connect_rate=0.2,
):
    """EfficientNet (Tan & Le, 2019): MBConv blocks with squeeze-excite, compound-scaled.

    An integer ``phi`` in 0..7 uses the released B0-B7 coefficients (so parameter counts equal
    ``keras.applications.EfficientNetB*``); any other ``phi`` scales depth by 1.2^phi, width by
    1.1^phi and resolution by 1.15^phi. ``width``/``depth`` override the coefficients. Filters are
    rounded to multiples of 8 and repeats up, as in the reference code. Preprocessing (rescaling,
    normalisation) is not part of the model: it travels as the converted model's metadata.
    """
    if isinstance(phi, (int, float)) and float(phi).is_integer() and int(phi) in VARIANTS:
        w, d, res, drop = VARIANTS[int(phi)]
    else:
        w, d, res = compound_coefficients(phi)
        drop = min(0.5, 0.2 + 0.05 * phi)
    w = w if width is None else width
    d = d if depth is None else depth
    drop = drop if dropout is None else dropout
    inputs = input_tensor(input_shape, (res, res, 3))
    x = conv_bn(inputs, round_filters(32, w), 3, 2, act="swish", name="stem")
    total = sum(round_repeats(b[1], d) for b in B0_BLOCKS)
    index = 0
    for stage, (kernel, repeats, _fin, fout, expansion, stride) in enumerate(B0_BLOCKS, start=1):
        out = round_filters(fout, w)
        for i in range(round_repeats(repeats, d)):
            x = inverted_residual(
                x,
                expansion=expansion,
                filters_out=out,
                kernel=kernel,
                strides=stride if i == 0 else 1,
                act="swish",
                se_ratio=0.25,
                drop_rate=drop_connect_rate * index / total,
                name=f"block{stage}{chr(ord('a') + i) if i < 26 else i}",
            )
            index += 1
    x = conv_bn(x, round_filters(1280, w), 1, act="swish", name="top")
    if include_top:
        x = classifier_head(x, num_classes, dropout=drop)
    tag = f"b{int(phi)}" if float(phi).is_integer() else f"phi{phi:g}"
    return keras.Model(inputs, x, name=f"efficientnet_{tag}")


for _phi, (_w, _d, _res, _drop) in VARIANTS.items():
    register_model(f"efficientnet_b{_phi}", family="efficientnet", paper=PAPER, default_input=(_res, _res, 3), phi=_phi)(efficientnet)
register_model("efficientnet", family="efficientnet", paper=PAPER, default_input=(224, 224, 3))(efficientnet)
