"""Face verification on real photographs: CLI, gallery (real SQLite file), live labels, bundles."""

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, run_cli, run_without_tf

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_verify_and_identify_on_real_people(tmp_path):
    same = json.loads(run_cli("verify", FACES / "obama.jpg", FACES / "obama2.jpg", "--json").stdout)
    diff = json.loads(run_cli("verify", FACES / "obama.jpg", FACES / "biden.jpg", "--json").stdout)
    assert same["same"] is True and diff["same"] is False
    assert same["distance"] < same["threshold"] < diff["distance"]
    g = tmp_path / "g.db"
    proc = run_cli("enroll", "obama", FACES / "obama.jpg", FACES / "obama3.jpg", "--gallery", g, "--json")
    assert proc.returncode == 0, proc.stderr
    who = json.loads(run_cli("identify", FACES / "obama2.jpg", "--gallery", g, "--json").stdout)
    assert who["name"] == "obama" and who["distance"] < who["threshold"]
    nobody = json.loads(run_cli("identify", FACES / "biden.jpg", "--gallery", g, "--json").stdout)
    assert nobody["name"] is None and nobody["nearest"] == "obama"


def test_quantized_facenet_decides_like_float(facenet_models, face_images):
    import itertools

    from edgecnn.device.faces import DEFAULT_THRESHOLDS, Embedder, FaceVerifier, distance

    thr = DEFAULT_THRESHOLDS["facenet"]
    decisions = {}
    for precision in ("fp32", "int8", "dynamic"):
        v = FaceVerifier(Embedder(facenet_models[precision][0]))
        E = {k: v.embed(im).vector for k, im in face_images.items()}
        decisions[precision] = {(a, b): distance(E[a], E[b]) <= thr for a, b in itertools.combinations(E, 2)}
    truth = {(a, b): a.startswith("obama") and b.startswith("obama") for a, b in decisions["fp32"]}
    assert decisions["fp32"] == truth
    assert decisions["int8"] == decisions["fp32"] and decisions["dynamic"] == decisions["fp32"]


def test_gallery_file_is_wal_0600_versioned_and_guards_its_embedder(tmp_path):
    from edgecnn.core.errors import InputError
    from edgecnn.device.gallery import Gallery

    path = tmp_path / "g.db"
    g = Gallery(path)
    g.enroll("ada", [np.ones(4)], "emb-A")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert raw.execute("SELECT COUNT(*) FROM embeddings WHERE image IS NOT NULL").fetchone()[0] == 0  # no faces kept by default
    with pytest.raises(InputError, match="holds embeddings of emb-A"):
        g.enroll("bob", [np.ones(4)], "emb-B")
    with pytest.raises(InputError, match="4-d"):
        g.enroll("bob", [np.ones(8)], "emb-A")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)")
    with pytest.raises(InputError, match="not an edgecnn gallery"):
        Gallery(other)


def test_gallery_cli_list_remove_export_and_bad_input(tmp_path):
    g = tmp_path / "g.db"
    assert_one_line_error(run_cli("gallery", "list", "--gallery", g), 2, "gallery not found")
    assert run_cli("enroll", "obama", FACES / "obama.jpg", "--gallery", g, "--keep-images").returncode == 0
    assert run_cli("enroll", "biden", FACES / "biden.jpg", "--gallery", g).returncode == 0
    listed = json.loads(run_cli("gallery", "list", "--gallery", g, "--json").stdout)
    assert [i["name"] for i in listed["identities"]] == ["biden", "obama"]
    assert [i["images_kept"] for i in listed["identities"]] == [0, 1]
    run_cli("gallery", "export", tmp_path / "g.json", "--gallery", g)
    exported = json.loads((tmp_path / "g.json").read_text())
    assert len(exported["identities"]) == 2 and len(exported["identities"][0]["embedding"]) == 512
    assert run_cli("gallery", "remove", "biden", "--gallery", g).returncode == 0
    assert_one_line_error(run_cli("gallery", "remove", "biden", "--gallery", g), 2, "no one named 'biden'")
    # an image without a face, an unreadable one, a missing one: exit 2 naming the file, nothing enrolled
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 180, np.uint8))
    assert_one_line_error(run_cli("enroll", "x", blank, "--gallery", g), 2, "no face found in " + str(blank))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert_one_line_error(run_cli("enroll", "x", bad, "--gallery", g), 2, "cannot read")
    assert_one_line_error(run_cli("verify", FACES / "obama.jpg", tmp_path / "nope.jpg"), 2, "image not found")
    assert "x" not in json.dumps(json.loads(run_cli("gallery", "list", "--gallery", g, "--json").stdout)["identities"])


def test_several_faces_largest_or_strict_error(tmp_path):
    canvas = np.concatenate([cv2.imread(str(FACES / "obama2.jpg")), cv2.imread(str(FACES / "biden.jpg"))], axis=1)
    group = tmp_path / "group.jpg"
    cv2.imwrite(str(group), canvas)
    same = json.loads(run_cli("verify", group, FACES / "obama.jpg", "--json").stdout)
    assert same["same"] is True  # the largest face is Obama's
    assert_one_line_error(run_cli("verify", group, FACES / "obama.jpg", "--strict"), 2, "2 faces")
    # enrolment is stricter: a photo with two people enrols nobody unless --largest says which
    assert_one_line_error(run_cli("enroll", "obama", group, "--gallery", tmp_path / "g.db"), 2, "2 faces")
    assert not (tmp_path / "g.db").exists()
    assert run_cli("enroll", "obama", group, "--gallery", tmp_path / "g.db", "--largest").returncode == 0


KILL_MID_ENROLMENT = """
import sys, time
import numpy as np
from edgecnn.device.gallery import Gallery

class RowsThenHang:  # the crops enrol() reads row by row inside its transaction
    def __getitem__(self, i):
        if i == 1:
            print("row 0 written, transaction open", flush=True)
            time.sleep(600)
        return None

g = Gallery(sys.argv[1])
v = np.ones(int(sys.argv[2]), np.float32)
g.enroll("biden", [v, v], sys.argv[3], images=RowsThenHang())
"""


def test_enrolment_killed_half_way_leaves_gallery_intact(tmp_path):
    g = tmp_path / "g.db"
    assert run_cli("enroll", "obama", FACES / "obama.jpg", "--gallery", g).returncode == 0
    raw = sqlite3.connect(g)
    identity, dim = (raw.execute("SELECT value FROM meta WHERE key=?", (k,)).fetchone()[0] for k in ("embedder", "dim"))
    raw.close()
    p = subprocess.Popen([sys.executable, "-c", KILL_MID_ENROLMENT, str(g), dim, identity], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # the first row is written, the transaction open
    assert "transaction open" in line, p.stderr.read()
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    raw = sqlite3.connect(g)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in raw.execute("SELECT name FROM identities")] == ["obama"]
    assert raw.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    who = json.loads(run_cli("identify", FACES / "obama2.jpg", "--gallery", g, "--json").stdout)
    assert who["name"] == "obama"


def test_threshold_calibration_from_labelled_folders(tmp_path):
    import shutil

    for person, files in {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}.items():
        (tmp_path / "pairs" / person).mkdir(parents=True)
        for f in files:
            shutil.copy(FACES / f, tmp_path / "pairs" / person / f)
    r = json.loads(run_cli("verify", "--calibrate", tmp_path / "pairs", "--json").stdout)
    assert r["pairs"] == {"same": 3, "different": 3}
    assert r["eer"] == 0.0 and r["auc"] == 1.0 and r["far"] == 0.0 and r["frr"] == 0.0
    r2 = json.loads(run_cli("verify", "--calibrate", tmp_path / "pairs", "--far", "0.0", "--json").stdout)
    assert r2["far"] == 0.0
    assert_one_line_error(run_cli("verify", "--calibrate", tmp_path / "nope"), 2, "not a folder")


def test_live_verification_labels_faces_and_bundle_runs_without_tensorflow(tmp_path):
    from edgecnn.device.faces import read_image
    from edgecnn.workstation.demo_data import make_face_clip

    g = tmp_path / "g.db"
    assert run_cli("enroll", "obama", FACES / "obama.jpg", FACES / "obama3.jpg", "--gallery", g).returncode == 0
    bundle = tmp_path / "bundle"
    proc = run_cli("bundle", "--target", "cpu", "--output", bundle, "--gallery", g, "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {"detector", "embedder", "gallery"} <= set(manifest) and len(manifest["files"]) == 4
    clip = tmp_path / "clip.mp4"
    truth = make_face_clip(clip, frames=40, extra_faces=[(read_image(FACES / "obama2.jpg"), "obama")])
    proc = run_without_tf(
        """
        import sys, json
        from edgecnn.cli import main
        rc = main(["camera", "--bundle", sys.argv[1], "--verify", "--source", sys.argv[2], "--headless", "--json", "--keep-per-frame"])
        assert "tensorflow" not in sys.modules
        """,
        bundle,
        clip,
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    names = [[d.get("name") for d in f] for f in s["per_frame"]]
    astronaut = [n for t, n in zip(truth, names) if t is not None and n]
    obama = [n for t, n in zip(truth, names) if t is None and n]
    assert astronaut and all(n == ["unknown"] for n in astronaut)
    assert obama and sum(n == ["obama"] for n in obama) >= 0.8 * len(obama)
    # a gallery enrolled with another embedder is refused, not silently mixed, and the line offers the ways on
    proc = run_cli("bundle", "--target", "rpi5", "--output", tmp_path / "b2", "--gallery", g)
    assert_one_line_error(proc, 2, "--enroll NAME=IMG")
    assert "--no-gallery" in proc.stderr
    assert not (tmp_path / "b2").exists()


def test_bundle_enrols_with_its_own_embedder_or_leaves_the_gallery_out(tmp_path):
    """The README's ways forward when the workstation gallery was made with another embedder."""
    g = tmp_path / "g.db"
    assert run_cli("enroll", "obama", FACES / "obama.jpg", "--gallery", g).returncode == 0  # cpu: fp16 FaceNet
    b = tmp_path / "b"
    proc = run_cli(
        "bundle",
        "--target",
        "rpi5",
        "--enroll",
        f"obama={FACES / 'obama.jpg'},{FACES / 'obama2.jpg'}",
        "--enroll",
        f"biden={FACES / 'biden.jpg'}",
        "--output",
        b,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert m["enrolled"] == {"obama": 2, "biden": 1} and m["gallery"] == "gallery.db" and m["embedder"] == "facenet_int8.tflite"
    listing = json.loads(run_cli("gallery", "list", "--bundle", b, "--json").stdout)
    assert listing["embedder"].startswith("facenet:int8:")
    assert {r["name"]: r["embeddings"] for r in listing["identities"]} == {"obama": 2, "biden": 1}
    who = json.loads(run_cli("identify", FACES / "obama3.jpg", "--bundle", b, "--json").stdout)
    assert who["name"] == "obama" and who["threshold"] == 0.95
    # calibrating on labelled folders saves the threshold into the bundle's gallery, reporting the default too
    for person, files in {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}.items():
        (tmp_path / "people" / person).mkdir(parents=True)
        for f in files:
            (tmp_path / "people" / person / f).write_bytes((FACES / f).read_bytes())
    cal = json.loads(run_cli("verify", "--calibrate", tmp_path / "people", "--bundle", b, "--json").stdout)
    assert cal["saved_to"] == str(b / "gallery.db")
    assert cal["at_default"]["threshold"] == 0.95 and cal["at_default"]["far"] == 0.0 and cal["at_default"]["frr"] == 0.0
    who = json.loads(run_cli("identify", FACES / "obama3.jpg", "--bundle", b, "--json").stdout)
    assert who["threshold"] == cal["threshold"]
    # no gallery: the bundle has none, and the line says how to enrol on the device
    nb = tmp_path / "nb"
    proc = run_cli("bundle", "--target", "rpi5", "--gallery", g, "--no-gallery", "--output", nb)
    assert_one_line_error(proc, 2, "contradict")
    proc = run_cli("bundle", "--target", "rpi5", "--no-gallery", "--output", nb)
    assert proc.returncode == 0, proc.stderr
    assert "edgecnn enroll NAME IMG… --bundle" in proc.stdout and not (nb / "gallery.db").exists()
    assert_one_line_error(run_cli("bundle", "--target", "rpi5", "--enroll", "nobody", "--output", tmp_path / "x"), 2, "NAME=IMG")
    assert_one_line_error(run_cli("bundle", "--target", "rpi5", "--enroll", "a=missing.jpg", "--output", tmp_path / "x"), 2, "not found")
    assert not (tmp_path / "x").exists()


def test_coral_bundle_says_plainly_when_the_embedder_is_not_compiled(tmp_path):
    import shutil

    if shutil.which("edgetpu_compiler"):
        pytest.skip("edgetpu_compiler is installed here: the bundle is compiled")
    proc = run_cli("bundle", "--target", "coral", "--no-gallery", "--output", tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "NOT compiled for the Edge TPU" in proc.stdout and "edgetpu_compiler -s facenet_int8_uint8.tflite" in proc.stdout
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["edgetpu_compiled"] is False and m["embedder"] == "facenet_int8_uint8.tflite"
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted([*m["files"], "manifest.json"])
