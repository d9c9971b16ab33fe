"""The optional facexlib backend, loaded through the real loading code from weight files this
test creates (random weights: facexlib's published files cannot be downloaded here)."""
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from localswap.bench import samples as mb
from localswap.errors import UserError
from localswap.faces import facexlib_backend as fx
from localswap.faces.detect import make_backend
from localswap.faces.landmarks import from_wflw98


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from facexlib.alignment.awing_arch import FAN
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.bisenet import BiSeNet
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    det = RetinaFace(network_name="mobile0.25", device="cpu")
    # facexlib's published files carry DataParallel's 'module.' prefix: keep that quirk.
    torch.save({f"module.{k}": v for k, v in det.state_dict().items()},
               d / fx.DETECTOR_FILES["mobile0.25"])
    torch.save({"state_dict": FAN(num_modules=4, num_landmarks=98, device="cpu").state_dict()},
               d / fx.ALIGNMENT_FILE)
    torch.save(BiSeNet(num_class=19).state_dict(), d / fx.PARSING_FILE)
    return d


def test_loaders_read_created_weights(weights):
    saved = torch.load(weights / fx.DETECTOR_FILES["mobile0.25"], weights_only=True)
    det = fx.load_detector(weights)
    for k, v in det.state_dict().items():
        if k in ("mean_tensor",):
            continue
        assert torch.equal(v, saved[f"module.{k}"]), k
    aligner = fx.load_aligner(weights)
    assert not aligner.training
    parser = fx.load_parser(weights)
    with torch.no_grad():
        out = parser(torch.rand(1, 3, 128, 128))[0]
    assert out.shape == (1, 19, 128, 128)
    assert fx.available(weights)


def test_backend_runs_detection_and_landmarks(weights, monkeypatch):
    monkeypatch.setenv("LOCALSWAP_WEIGHTS", str(weights))
    backend = make_backend("facexlib", min_confidence=0.05, device="cpu")
    frame = mb.astronaut()
    dets = backend.detect(frame)
    # Random weights find arbitrary boxes; what matters is the real code path end to end.
    for d in dets:
        assert d.landmarks.shape == (68, 2) and np.isfinite(d.landmarks).all()
        assert d.bbox[2] >= d.bbox[0] and d.bbox[3] >= d.bbox[1]
    if not dets:        # an empty answer must be the detector's, not a swallowed failure
        raw = backend.detector.detect_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                            conf_threshold=0.05)
        assert len(raw) == 0, f"the detector found {len(raw)} boxes, the backend none"
    # The landmark step on a face crop of its own, whatever the detector found: 98 AWing
    # points inside the crop, mapped to 68 finite iBUG points.
    (cx, cy), half = mb.FACE_CENTRES["astronaut"], 100
    crop = np.ascontiguousarray(frame[int(cy) - half:int(cy) + half,
                                      int(cx) - half:int(cx) + half])
    with torch.inference_mode():            # as detect() runs it
        pts98 = backend._landmarks98(crop)
    assert pts98.shape == (98, 2) and np.isfinite(pts98).all()
    assert (pts98 >= 0).all() and (pts98 <= 2 * half).all()
    pts = from_wflw98(pts98)
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    backend.close()


def test_weights_folder_for_a_checkout_an_install_and_the_environment(tmp_path, monkeypatch):
    from localswap.faces import detect
    monkeypatch.delenv("LOCALSWAP_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    # A source checkout: weights/ beside the package (this repository has one).
    assert detect.SOURCE_WEIGHTS.is_dir() and detect.weights_dir() == detect.SOURCE_WEIGHTS
    # An installed package has no weights/ beside it: the user data folder.
    monkeypatch.setattr(detect, "SOURCE_WEIGHTS", tmp_path / "site-packages" / "weights")
    assert detect.weights_dir() == tmp_path / "data" / "localswap" / "weights"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert detect.weights_dir() == Path.home() / ".local" / "share" / "localswap" / "weights"
    # LOCALSWAP_WEIGHTS wins over both.
    monkeypatch.setenv("LOCALSWAP_WEIGHTS", str(tmp_path / "mine"))
    assert detect.weights_dir() == tmp_path / "mine"


def test_an_installed_package_finds_weights_in_the_user_data_folder(weights, tmp_path):
    """The package copied out of the source tree, as pip installs it, loads facexlib's
    weights from $XDG_DATA_HOME/localswap/weights (a fresh process: nothing patched)."""
    import shutil
    import subprocess
    import sys
    site = tmp_path / "site-packages"
    shutil.copytree(Path(__file__).resolve().parents[1] / "localswap", site / "localswap",
                    ignore=shutil.ignore_patterns("__pycache__"))
    data = tmp_path / "data"
    shutil.copytree(weights, data / "localswap" / "weights")
    env = {k: v for k, v in os.environ.items() if k != "LOCALSWAP_WEIGHTS"}
    env.update(XDG_DATA_HOME=str(data), PYTHONPATH=str(site))
    code = ("import localswap.faces.detect as d; print(d.weights_dir()); "
            "b = d.make_backend('facexlib', device='cpu'); print(b.name)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines == [str(data / "localswap" / "weights"), "facexlib"], out.stdout


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALSWAP_WEIGHTS", str(tmp_path))
    with pytest.raises(UserError, match="download-weights"):
        make_backend("facexlib", device="cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_pickled_object_refused(tmp_path):
    (tmp_path / fx.ALIGNMENT_FILE).write_bytes(pickle.dumps({"state_dict": _Evil()}))
    with pytest.raises(UserError, match="not a loadable weights file"):
        fx.load_aligner(tmp_path)


def test_wrong_shapes_refused(tmp_path):
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / fx.ALIGNMENT_FILE)
    with pytest.raises(UserError, match="do not match"):
        fx.load_aligner(tmp_path)
