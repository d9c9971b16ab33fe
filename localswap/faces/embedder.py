"""The identity embedder: dlib's ResNet face descriptor (128 numbers; two photos of one person
are usually within 0.6 of each other).

The weights are public domain and ship inside the `face-recognition-models` wheel, and dlib
comes as the `dlib-bin` wheel: nothing is downloaded. Both are imported only when a judge is
made, so the rest of localswap runs without them.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from localswap.errors import UserError

MISSING = ("evaluate needs dlib and its face models: pip install dlib-bin "
           "face-recognition-models")


def _models_dir() -> Path:
    # The package's own locator imports pkg_resources, which new setuptools no longer ships:
    # find its data folder directly instead.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(MISSING)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@lru_cache(maxsize=1)
def _load():
    """(shape predictor, recognition net), loaded once per process (about 1 s, 120 MB)."""
    try:
        import dlib
    except ImportError as exc:
        raise UserError(MISSING) from exc
    models = _models_dir()
    pose = models / "shape_predictor_68_face_landmarks.dat"
    net = models / "dlib_face_recognition_resnet_model_v1.dat"
    for f in (pose, net):
        if not f.is_file():
            raise UserError(f"{f.name} is missing from face-recognition-models: reinstall it "
                            "(pip install --force-reinstall face-recognition-models)")
    return dlib, dlib.shape_predictor(str(pose)), dlib.face_recognition_model_v1(str(net))


class Embedder:
    """Face descriptor of the face that localswap's detector found (its box, not dlib's
    detector: both sides of a comparison are located by the same detector)."""

    def __init__(self):
        self._dlib, self._pose, self._net = _load()

    def embed(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in bbox)
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        rgb = np.ascontiguousarray(rgb)
        shape = self._pose(rgb, rect)     # dlib's own 68 points: its chip alignment needs them
        return np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance along the last axis (dlib's scale: <= 0.6 reads as one person)."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
