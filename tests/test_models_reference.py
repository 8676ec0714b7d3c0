"""Parameter counts equal the reference implementations built in the same run; MACs match the papers."""

import gc

import pytest
from helpers import lazy

keras = lazy("keras")
models = lazy("edgecnn.models")

pytestmark = [pytest.mark.tf]


def _ref_params(model):
    """Reference parameter count without preprocessing layers (Rescaling/Normalization)."""
    skip = sum(layer.count_params() for layer in model.layers if type(layer).__name__ in ("Rescaling", "Normalization"))
    return model.count_params() - skip


def _compare(ours, ref):
    got, want = ours.count_params(), _ref_params(ref)
    assert got == want, (ours.name, got, want)
    assert sum(w.numpy().size for w in ours.trainable_weights) == sum(w.numpy().size for w in ref.trainable_weights)
    return got


CASES = [
    ("vgg16", {}, lambda: keras.applications.VGG16(weights=None)),
    ("vgg19", {}, lambda: keras.applications.VGG19(weights=None)),
    ("resnet50", {}, lambda: keras.applications.ResNet50(weights=None)),
    ("resnet101", {}, lambda: keras.applications.ResNet101(weights=None)),
    ("resnet152", {}, lambda: keras.applications.ResNet152(weights=None)),
    ("mobilenet_v1", {}, lambda: keras.applications.MobileNet(weights=None)),
    ("mobilenet_v1", {"alpha": 0.5}, lambda: keras.applications.MobileNet(weights=None, alpha=0.5)),
    ("mobilenet_v2", {}, lambda: keras.applications.MobileNetV2(weights=None)),
    ("mobilenet_v2", {"alpha": 0.35}, lambda: keras.applications.MobileNetV2(weights=None, alpha=0.35)),
    ("mobilenet_v2", {"alpha": 1.4}, lambda: keras.applications.MobileNetV2(weights=None, alpha=1.4)),
] + [(f"efficientnet_b{i}", {}, (lambda i=i: getattr(keras.applications, f"EfficientNetB{i}")(weights=None))) for i in range(8)]


# The big ones build in seconds each: the full run (.ci/run) checks them, the fast loop one of each
# family (and the width multipliers below 1, where rounding the channels differs).
HEAVY = {"vgg16", "vgg19", "resnet101", "resnet152", "efficientnet_b1", "efficientnet_b2"} | {f"efficientnet_b{i}" for i in range(3, 8)}


@pytest.mark.parametrize(
    "name,kwargs,reference",
    [pytest.param(*c, marks=[pytest.mark.slow] if c[0] in HEAVY or c[1].get("alpha", 0) > 1 else [], id=f"{c[0]}{c[1] or ''}") for c in CASES],
)
def test_params_equal_keras_applications(name, kwargs, reference, keras_session):
    ours = models.build(name, **kwargs)
    ref = reference()
    _compare(ours, ref)
    del ours, ref
    gc.collect()


def test_headless_and_class_count_variants_match_reference(keras_session):
    ours = models.build("mobilenet_v2", alpha=0.35, input_size=96, include_top=False)
    ref = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), include_top=False)
    _compare(ours, ref)
    ours = models.build("resnet50", num_classes=10)
    ref = keras.applications.ResNet50(weights=None, classes=10)
    _compare(ours, ref)


# MACs of the papers (multiply-adds at the default resolution), within 3%.
PAPER_MACS = {
    "mobilenet_v1": 569e6,  # Howard et al. Table 8
    "mobilenet_v2": 300e6,  # Sandler et al. Table 4
    "vgg16": 15.5e9,  # commonly cited 15.5G for configuration D
    "resnet50": 3.86e9,  # He et al. Table 1 ("3.8 x 10^9 FLOPs", 3.86G with the stride on the 1x1)
    "efficientnet_b0": 0.39e9,  # Tan & Le Table 2
}


@pytest.mark.parametrize("name", sorted(PAPER_MACS))
def test_macs_within_3_percent_of_paper(name, keras_session):
    macs = models.stats(models.build(name))["macs"]
    assert abs(macs - PAPER_MACS[name]) / PAPER_MACS[name] < 0.03, (name, macs)


def test_mobilenet_width_and_resolution_multipliers_scale_macs(keras_session):
    """MobileNet Table 6/7: alpha 0.5 -> 149M mult-adds; rho 0.571 (128 px) -> 186M."""
    half = models.stats(models.build("mobilenet_v1", alpha=0.5))["macs"]
    assert abs(half - 149e6) / 149e6 < 0.03
    small = models.build("mobilenet_v1", rho=128 / 224)
    assert small.input_shape[1:3] == (128, 128)
    assert abs(models.stats(small)["macs"] - 186e6) / 186e6 < 0.03
