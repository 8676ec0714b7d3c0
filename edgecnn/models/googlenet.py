"""GoogLeNet / Inception v1 (Szegedy et al., Going Deeper with Convolutions, CVPR 2015)."""

from __future__ import annotations

from edgecnn.models._tf import keras, layers
from edgecnn.models.layers import conv_bn, input_tensor
from edgecnn.models.registry import register_model

# name -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): Table 1 of the paper.
INCEPTION_TABLE = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
AUX_LOSS_WEIGHT = 0.3  # the paper's weight for each auxiliary classifier's loss during training


def inception_module(x, spec, branch5_kernel, batch_norm, name):
    """Four parallel branches concatenated; 1x1 convolutions reduce channels before 3x3 and 5x5."""
    c1, r3, c3, r5, c5, pp = spec

    def cb(t, f, k, n):
        return conv_bn(t, f, k, act="relu", use_bias=not batch_norm, bn=batch_norm, name=f"{name}_{n}")

    b1 = cb(x, c1, 1, "1x1")
    b2 = cb(cb(x, r3, 1, "3x3_reduce"), c3, 3, "3x3")
    b3 = cb(cb(x, r5, 1, "5x5_reduce"), c5, branch5_kernel, "5x5")
    b4 = layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
    b4 = cb(b4, pp, 1, "pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def aux_head(x, num_classes, batch_norm, name):
    """Auxiliary side classifier: 5x5/3 average pool, 1x1 conv (128), FC 1024, dropout 0.7, FC."""
    x = layers.AveragePooling2D(5, 3, name=f"{name}_pool")(x)
    x = conv_bn(x, 128, 1, act="relu", use_bias=not batch_norm, bn=batch_norm, name=f"{name}_proj")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name=name)(x)


@register_model(
    "googlenet",
    family="inception",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    default_input=(224, 224, 3),
)
def googlenet(
    input_shape=None,
    num_classes=1000,
    include_top=True,
    aux_heads=False,
    batch_norm=True,
    branch5_kernel=5,
    dropout=0.4,
):
    """GoogLeNet (Inception v1): nine inception modules with 1x1 reductions, global pooling head.

    ``aux_heads=True`` gives the *training* model with the paper's two auxiliary classifiers (after
    4a and 4d); it returns three outputs ``predictions, aux1, aux2`` whose losses weigh
    1, 0.3, 0.3 (:func:`loss_weights`). :func:`deployable` strips them; the default build has none.

    ``batch_norm=True`` puts batch normalisation after each convolution, as torchvision does (the
    2014 paper predates it). torchvision's model also uses a 3x3 kernel where the paper has 5x5 (a
    bug kept there for its weights); ``branch5_kernel=3`` reproduces it: 6,624,904 trainable
    parameters, while the paper's 5x5 gives 7,005,832.
    """
    inputs = input_tensor(input_shape, (224, 224, 3))

    def cb(t, f, k, s, n):
        return conv_bn(t, f, k, s, act="relu", use_bias=not batch_norm, bn=batch_norm, name=n)

    x = cb(inputs, 64, 7, 2, "conv1")
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = cb(x, 64, 1, 1, "conv2_reduce")
    x = cb(x, 192, 3, 1, "conv2")
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool2")(x)
    aux_outputs = []
    for key, spec in INCEPTION_TABLE.items():
        if key in ("4a", "5a"):
            x = layers.MaxPooling2D(3, 2, padding="same", name=f"pool{key[0]}")(x)
        x = inception_module(x, spec, branch5_kernel, batch_norm, name=f"inception{key}")
        if aux_heads and include_top and key in ("4a", "4d"):
            aux_outputs.append(aux_head(x, num_classes, batch_norm, name=f"aux{len(aux_outputs) + 1}"))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    outputs = [x, *aux_outputs] if aux_outputs else x
    return keras.Model(inputs, outputs, name="googlenet")


def loss_weights(model) -> dict[str, float]:
    """Loss weight per output of a GoogLeNet: 1 for the main head, 0.3 for each side head."""
    return {name: (1.0 if name == "predictions" else AUX_LOSS_WEIGHT) for name in model.output_names}


def deployable(model):
    """The inference model of a training GoogLeNet: same weights, the auxiliary heads dropped."""
    return keras.Model(model.inputs, model.get_layer("predictions").output, name=model.name)
