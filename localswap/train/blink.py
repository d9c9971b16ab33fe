"""Synthetic blinks: training faces whose eyes are shut by warping the upper lid down.

A guided decoder draws shut eyes only if it has seen shut eyes with shut lines. A source
clip of a few seconds often has no blink at all (the webcam and carphone clips have none),
so its model keeps the eyes open whatever the target does. Here a face with open eyes gets a
copy whose upper lid skin is stretched down onto the lower lid (the eye between them folded
away), partly or fully, and whose expression lines show the lid where it now is.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import LEFT_EYE, RIGHT_EYE, eye_opening
from localswap.train.planner import BLINK_SHARE     # copies added, as a share of the faces


def _lid(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """y of the polyline through `points` (sorted by x) at `xs`."""
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def blink(rgb: np.ndarray, landmarks: np.ndarray, closure: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """(R, R, 3) uint8 face and its 68 points (crop pixels) -> the face with both eyes
    `closure` shut (1 = fully) and the moved points."""
    size = rgb.shape[0]
    map_x, map_y = np.meshgrid(np.arange(size, dtype=np.float32),
                               np.arange(size, dtype=np.float32))
    out = np.asarray(landmarks, np.float32).copy()
    for idx in (RIGHT_EYE, LEFT_EYE):
        eye = out[idx]
        upper, lower = eye[[0, 1, 2, 3]], eye[[0, 5, 4, 3]]
        width = float(np.linalg.norm(eye[3] - eye[0]))
        cx = float(eye[[0, 3], 0].mean())
        # the white shows a little beyond the landmarks' lids: reach past them, less so
        # towards the corners
        x0, x1 = int(np.floor(cx - 0.65 * width)), int(np.ceil(cx + 0.65 * width))
        xs = np.arange(max(0, x0), min(size, x1 + 1), dtype=np.float32)
        if len(xs) < 2 or width < 2:
            continue
        taper = np.sqrt(np.clip(1 - np.abs(xs - cx) / (0.65 * width), 0, 1))
        u = _lid(upper, xs) - 0.1 * width * taper
        low = _lid(lower, xs) + 0.15 * width * taper
        new_u = u + closure * np.maximum(low - u, 0)
        top = u - 0.6 * width                       # the lid skin up to below the brow
        ys = np.arange(size, dtype=np.float32)[:, None]
        above = (ys >= top) & (ys < new_u)
        # rows top..new_u show the skin that was at top..u; rows new_u..low what was at u..low
        src_above = top + (ys - top) * (u - top) / np.maximum(new_u - top, 1e-3)
        src_below = u + (ys - new_u) * (low - u) / np.maximum(low - new_u, 1e-3)
        below = (ys >= new_u) & (ys <= low)
        cols = xs.astype(int)
        map_y[:, cols] = np.where(above, src_above, np.where(below, src_below, map_y[:, cols]))
        for k, pair in ((1, 5), (2, 4)):           # the upper lid's points onto their pairs
            eye[k] = eye[k] + closure * (eye[pair] - eye[k])
        out[idx] = eye
    shut = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return shut, out


def candidates(landmarks: list[np.ndarray], rng: np.random.Generator) -> list[int]:
    """Faces to blink: the more open-eyed half, up to BLINK_SHARE of all faces."""
    ratios = np.array([eye_opening(lm) for lm in landmarks])
    open_eyed = np.flatnonzero(ratios >= np.median(ratios))
    n = min(len(open_eyed), int(round(BLINK_SHARE * len(landmarks))))
    return sorted(rng.choice(open_eyed, n, replace=False).tolist()) if n else []
