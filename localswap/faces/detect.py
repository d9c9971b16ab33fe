"""Face detector backends behind one small protocol, chosen by name.

A backend finds faces in an RGB frame and returns each with 68 iBUG landmarks in frame pixels.
`mediapipe` (default) ships its weights inside the wheel and runs offline on CPU; `facexlib`
(RetinaFace + AWing FAN) needs its weight files in weights/.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from localswap.errors import UserError


@dataclass
class Detection:
    bbox: np.ndarray        # x0, y0, x1, y1 in frame pixels
    landmarks: np.ndarray   # 68 x 2 float32, frame pixels
    score: float


class FaceBackend(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    def reset(self) -> None:
        """Forget tracking state (call between unrelated videos or photos)."""

    def close(self) -> None: ...


def bbox_of(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks)
    return np.array([*pts.min(0), *pts.max(0)], np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weights_dir() -> Path:
    """weights/ beside the package, or LOCALSWAP_WEIGHTS."""
    return Path(os.environ.get("LOCALSWAP_WEIGHTS",
                               Path(__file__).resolve().parents[2] / "weights"))


def make_backend(name: str, *, video: bool = False, min_confidence: float = 0.5,
                 max_faces: int = 4, device: str = "auto") -> FaceBackend:
    """Build a backend by name; `video=True` lets it track faces between frames."""
    if name == "mediapipe":
        from localswap.faces.mediapipe_backend import MediaPipeBackend
        return MediaPipeBackend(video=video, min_confidence=min_confidence, max_faces=max_faces)
    if name == "facexlib":
        from localswap.faces.facexlib_backend import FacexlibBackend
        return FacexlibBackend(weights_dir(), min_confidence=min_confidence, device=device)
    raise UserError(f"unknown detector {name!r}: use mediapipe or facexlib")
