"""The classic CNNs: LeNet-5, AlexNet, VGG-16/19 and Network-in-Network."""

from __future__ import annotations

from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras, layers
from edgecnn.models.layers import input_tensor
from edgecnn.models.registry import register_model


@register_model(
    "lenet5",
    family="lenet",
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998",
    default_input=(32, 32, 1),
)
def lenet5(input_shape=None, num_classes=10, include_top=True, classic=True):
    """LeNet-5 (LeCun et al., 1998) with a dense C3: 61,706 parameters for 10 classes.

    ``classic=True`` is the paper's form: tanh units and average-pooling subsampling (the paper's
    trainable S2/S4 coefficients are plain pooling here, the common convention behind 61,706).
    ``classic=False`` uses ReLU and max pooling. C5 is a 5x5 convolution over the 5x5 S4 maps, so it
    behaves as the paper's fully connected C5 at 32x32 input.
    """
    act = "tanh" if classic else "relu"
    pool = layers.AveragePooling2D if classic else layers.MaxPooling2D
    inputs = input_tensor(input_shape, (32, 32, 1))
    x = layers.Conv2D(6, 5, activation=act, name="c1")(inputs)
    x = pool(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation=act, name="c3")(x)
    x = pool(2, name="s4")(x)
    x = layers.Conv2D(120, 5, activation=act, name="c5")(x)
    x = layers.Flatten(name="flatten")(x)
    if include_top:
        x = layers.Dense(84, activation=act, name="f6")(x)
        x = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="lenet5")


@register_model(
    "alexnet",
    family="alexnet",
    paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs, NeurIPS 2012",
    default_input=(227, 227, 3),
)
def alexnet(input_shape=None, num_classes=1000, include_top=True, grouped=True, dropout=0.5):
    """AlexNet (Krizhevsky et al., 2012), the paper's configuration: 60,965,224 parameters.

    96-256-384-384-256 filters; conv2, conv4 and conv5 are split in two groups as on the paper's two
    GPUs (``grouped=True``); 227x227 input (the size the paper's arithmetic needs). Local response
    normalisation is left out (it has no parameters and no TFLite delegate runs it).
    ``grouped=False`` gives the one-tower variant with full convolutions.
    """
    g = 2 if grouped else 1
    inputs = input_tensor(input_shape, (227, 227, 3))
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", groups=g, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, 2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", groups=g, activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", groups=g, activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, 2, name="pool5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dropout(dropout, name="drop6")(x)
        x = layers.Dense(4096, activation="relu", name="fc6")(x)
        x = layers.Dropout(dropout, name="drop7")(x)
        x = layers.Dense(4096, activation="relu", name="fc7")(x)
        x = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="alexnet")


_VGG_STAGES = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def vgg(depth=16, input_shape=None, num_classes=1000, include_top=True):
    """VGG (Simonyan & Zisserman, 2015): stacks of 3x3 convolutions, 2x2 max pools, three FC layers.

    Configuration D (16 layers, 138,357,544 parameters) or E (19 layers, 143,667,240).
    """
    if depth not in _VGG_STAGES:
        raise InputError(f"VGG depth must be one of {sorted(_VGG_STAGES)}, got {depth}")
    inputs = input_tensor(input_shape, (224, 224, 3))
    x = inputs
    for stage, (convs, filters) in enumerate(zip(_VGG_STAGES[depth], (64, 128, 256, 512, 512)), start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{stage}_conv{i}")(x)
        x = layers.MaxPooling2D(2, 2, name=f"block{stage}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=f"vgg{depth}")


_VGG_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015"
register_model("vgg16", family="vgg", paper=_VGG_PAPER, default_input=(224, 224, 3), depth=16)(vgg)
register_model("vgg19", family="vgg", paper=_VGG_PAPER, default_input=(224, 224, 3), depth=19)(vgg)


@register_model(
    "nin",
    family="nin",
    paper="Lin, Chen & Yan, Network In Network, ICLR 2014",
    default_input=(32, 32, 3),
)
def nin(input_shape=None, num_classes=10, include_top=True, dropout=0.5):
    """Network-in-Network (Lin et al., 2014), the CIFAR-10 model: 966,986 parameters for 10 classes.

    Each mlpconv block is a spatial convolution followed by two 1x1 convolutions, which act as a
    small fully connected network applied at every pixel. The last mlpconv outputs one map per class
    and global average pooling replaces the fully connected classifier.
    """
    inputs = input_tensor(input_shape, (32, 32, 3))

    def mlpconv(x, kernel, filters, name, last_act="relu"):
        x = layers.Conv2D(filters[0], kernel, padding="same", activation="relu", name=f"{name}_conv")(x)
        x = layers.Conv2D(filters[1], 1, activation="relu", name=f"{name}_cccp1")(x)
        return layers.Conv2D(filters[2], 1, activation=last_act, name=f"{name}_cccp2")(x)

    x = mlpconv(inputs, 5, (192, 160, 96), "mlpconv1")
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = mlpconv(x, 5, (192, 192, 192), "mlpconv2")
    x = layers.AveragePooling2D(3, 2, padding="same", name="pool2")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    if include_top:
        x = mlpconv(x, 3, (192, 192, num_classes), "mlpconv3")
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        x = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="nin")
