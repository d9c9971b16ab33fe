"""What landmarks say about a face's expression and pose, and how two series compare.

All take 68-point iBUG landmarks (localswap.faces.landmarks) in frame pixels.
"""
from __future__ import annotations

import numpy as np

# eye_opening and mouth_opening are face measures too; they live beside eye_ratio and
# lip_gap, which training and the render (convert.mouth) also use
from localswap.faces.landmarks import (  # noqa: F401
    estimate_pose, eye_opening, face_width, lip_gap, mouth_opening)

# Below these standard deviations a series is flat (a still face, or a face the detector
# could not read): a correlation with it would be noise, so none is reported.
FLAT_EYE = 0.004      # eye aspect ratio; a blink moves it by ~0.2, landmark jitter by ~0.01
FLAT_MOUTH = 0.002    # inner-lip gap / face width; talking moves it by ~0.1


def pose(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Yaw, pitch, roll in degrees."""
    return np.array(estimate_pose(landmarks, width, height), np.float64)


def pose_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute yaw, pitch, roll difference (degrees) of two N x 3 series, wrapped."""
    d = (np.asarray(a) - np.asarray(b) + 180) % 360 - 180
    return np.abs(d).mean(0)


def correlation(a: list[float], b: list[float], flat: float) -> float | None:
    """Pearson correlation of two series, or None when either is flat or too short."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < flat or b.std() < flat:
        return None
    return float(np.corrcoef(a, b)[0, 1])
