"""What a face detector backend is and returns: `Detection` (a box and 68 iBUG landmarks in
frame pixels), the `FaceBackend` protocol, and the box helpers the backends and trackers share.
The backends themselves are chosen by name in localswap.faces.detect."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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
