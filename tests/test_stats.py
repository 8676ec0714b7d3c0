import pytest
from helpers import lazy

keras = lazy("keras")
layers = lazy("keras.layers")
models = lazy("edgecnn.models")
_measure = lazy("edgecnn.models.measure")

pytestmark = [pytest.mark.tf]


def test_macs_of_each_layer_kind(keras_session):
    inp = keras.Input((8, 8, 4))
    conv = layers.Conv2D(6, 3, padding="same")
    grouped = layers.Conv2D(6, 3, padding="same", groups=2)
    dw = layers.DepthwiseConv2D(3, padding="same")
    dense = layers.Dense(5)
    c, g, d = conv(inp), grouped(inp), dw(inp)
    f = dense(layers.Flatten()(d))
    keras.Model(inp, [c, g, f])
    assert _measure.layer_macs(conv, [inp], [c]) == 8 * 8 * 6 * 3 * 3 * 4
    assert _measure.layer_macs(grouped, [inp], [g]) == 8 * 8 * 6 * 3 * 3 * 2
    assert _measure.layer_macs(dw, [inp], [d]) == 8 * 8 * 4 * 3 * 3
    flat = layers.Flatten()(d)
    assert _measure.layer_macs(dense, [flat], [dense(flat)]) == 256 * 5


def test_peak_activation_chain_and_skip(keras_session):
    inp = keras.Input((10, 10, 1))
    a = layers.Conv2D(4, 1)(inp)  # 400 values
    b = layers.Conv2D(2, 1)(a)  # 200
    chain = keras.Model(inp, layers.Conv2D(1, 1)(b))
    # the largest step holds input (100) + a (400), then a + b = 600 values
    assert models.peak_activation_bytes(chain) == 600 * 4
    inp = keras.Input((10, 10, 4))
    a = layers.Conv2D(4, 1)(inp)
    b = layers.Conv2D(4, 1)(a)
    out = layers.Add()([inp, b])  # the skip keeps `inp` alive while a and b are computed
    skip = keras.Model(inp, out)
    assert models.peak_activation_bytes(skip) == 3 * 400 * 4


def test_stats_keys_and_types(keras_session):
    s = models.stats(models.build("lenet5"))
    assert set(s) >= {"params", "macs", "peak_activation_bytes"}
    assert s["macs"] == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 25 * 6 + 120 * 400 + 120 * 84 + 84 * 10
    assert all(isinstance(s[k], int) for k in ("params", "macs", "peak_activation_bytes"))


def test_registry_lists_required_names_and_rejects_bad_ones():
    required = {
        "lenet5",
        "alexnet",
        "vgg16",
        "vgg19",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "nin",
        "googlenet",
        "mobilenet_v1",
        "mobilenet_v2",
        "siamese",
        "yolo",
    } | {f"efficientnet_b{i}" for i in range(8)}
    assert required <= set(models.list_models())
    from edgecnn.core.errors import InputError

    with pytest.raises(InputError, match="did you mean mobilenet_v2"):
        models.build("mobilenet_v3")
    with pytest.raises(InputError, match="valid options: .*alpha"):
        models.build("mobilenet_v2", beta=2)
    with pytest.raises(InputError, match="input_shape"):
        models.build("lenet5", input_shape=(0, 32, 1))
