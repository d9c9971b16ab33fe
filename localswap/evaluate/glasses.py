"""Glasses the render erased: a model that never saw glasses paints skin over the target's
and leaves the arms at the temples (issue 29's quick swap onto a person in glasses).

`bridge` reads how strongly a horizontal edge crosses the nose bridge between the eyes, where
a frame's bridge sits: the strongest row of vertical gradient there, on a face scaled to 100
px across. Measured on 32 frames of each of 14 corpus clips: the woman in glasses 168
(median; 118 at the 10th percentile), faces without glasses 19-65 (at most 102 in 1% of
frames: a furrowed brow, a strand of hair). A target wears glasses when the median of its
frames reads at least WEARS; the render keeps them in a frame when its bridge reads at least
KEPT of the target's in that frame (the erased render: 29 against 168).
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import face_width

WEARS = 100.0      # the target's median bridge edge: glasses (no-glasses clips <= 65)
KEPT = 0.5         # the output's bridge edge over the target's, frame by frame
ERASED = 0.5       # glasses kept in fewer frames than this share: erased


def bridge(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    """The nose bridge's strongest horizontal edge (68-point landmarks), None if too small."""
    lm = np.asarray(landmarks, np.float32)
    width = face_width(lm)
    inner_left, inner_right = lm[39, 0], lm[42, 0]
    gap = inner_right - inner_left
    x0, x1 = int(inner_left + 0.25 * gap), int(inner_right - 0.25 * gap)
    y0, y1 = int(min(lm[21, 1], lm[22, 1])), int(lm[29, 1])
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if width < 16 or x1 - x0 < 2 or y1 - y0 < 4:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    scale = 100.0 / width
    grey = cv2.resize(grey.astype(np.float32), None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if grey.shape[0] < 3 or grey.shape[1] < 1:
        return None
    rows = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)).mean(1)
    return float(rows.max())


def kept(pairs: list[tuple[float, float]]) -> float | None:
    """Share of frames whose output keeps the target's glasses; None when the target does
    not wear glasses. `pairs`: (output bridge, target bridge) per frame."""
    pairs = [(o, t) for o, t in pairs if o is not None and t is not None and np.isfinite(t)]
    if not pairs or np.median([t for _, t in pairs]) < WEARS:
        return None
    return float(np.mean([o >= KEPT * t for o, t in pairs]))
