"""The optional facexlib backend, loaded through the real loading code from weight files this
test creates (random weights: facexlib's published files cannot be downloaded here)."""
import pickle

import numpy as np
import pytest
import torch

from localswap.bench import samples as mb
from localswap.errors import UserError
from localswap.faces import facexlib_backend as fx
from localswap.faces.detect import make_backend


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
    backend.close()


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
