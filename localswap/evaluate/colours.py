"""Red that neither person has: painted lips, pink eye rims, blotched cheeks.

A swap can keep its identity and expression numbers while its mouth is painted red, its eyes
sit in pink rims (where the target's glasses were erased) or its cheeks carry red blotches;
only colour shows it. For the lips, the ring of skin around the eyes, the cheeks and the
whole face, `redness` is how red the region's reddest tenth is: the 90th percentile of CIE
Lab a* (green-red) against the face's median a*. Relative to the face, so a face relit or
recoloured as a whole keeps it; the reddest tenth, because blotches and rims cover part of a
region and a median walks past them. The output's redness is compared with the larger of the
target's (same frame) and the source's: a true colour is no redder than both people.

Measured on 14 corpus renders (docs/benchmarks.md, "Colour: red neither person has"): honest
renders are at most 2.9 redder than both people in any region; the one with red blotches and
rims, 4.1-6.0.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import face_hull, face_width

REGIONS = ("lips", "eyes", "cheeks", "face")
_MIN_PIXELS = 12       # fewer and a region's percentile is noise (a face ~40 px across)
# 68-point indices: the cheeks between the jaw, the nose's wing and the mouth's corner
_CHEEKS = ([2, 3, 4, 48, 31], [14, 13, 12, 54, 35])
_EYES = (slice(36, 42), slice(42, 48))


def _poly(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)


def region_masks(landmarks: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """uint8 masks (of `shape`) of the lips (outer lip line minus the mouth's opening), the ring
    of skin around each eye (eyelids and the socket under them: where glasses' rims sit), the
    cheeks and the whole face (its hull)."""
    lm = np.asarray(landmarks, np.float32)
    out = {name: np.zeros(shape[:2], np.uint8) for name in REGIONS}
    _poly(out["face"], face_hull(lm))
    _poly(out["lips"], lm[48:60])
    inner = np.zeros(shape[:2], np.uint8)
    _poly(inner, lm[60:68])
    out["lips"][inner > 0] = 0
    eyes = np.zeros(shape[:2], np.uint8)
    for part in _EYES:
        _poly(eyes, lm[part])
    grow = max(1, int(round(0.07 * face_width(lm))))
    ring = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    out["eyes"] = np.where(eyes > 0, 0, ring).astype(np.uint8)
    for part in _CHEEKS:
        _poly(out["cheeks"], lm[part])
    return out


def redness(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(4,) float32, one per REGIONS: the 90th percentile of a* there minus the face's median
    a*; NaN where a region is too small to read."""
    lm = np.asarray(landmarks, np.float32)
    hull = face_hull(lm)                        # it reaches above the brows
    h, w = rgb.shape[:2]
    pts = np.concatenate([lm, hull])
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 2, (w, h))
    out = np.full(len(REGIONS), np.nan, np.float32)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return out
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    red = cv2.cvtColor(crop.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[..., 1]
    masks = region_masks(lm - np.float32([x0, y0]), crop.shape)
    face = masks["face"] > 0
    if face.sum() < _MIN_PIXELS:
        return out
    base = np.median(red[face])
    for i, name in enumerate(REGIONS):
        sel = masks[name] > 0
        if sel.sum() >= _MIN_PIXELS:
            out[i] = np.percentile(red[sel], 90) - base
    return out


def redder(output: np.ndarray, target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per region, how much redder the output is than both the target and the source (<= 0:
    no redder than one of them); NaN where one is missing."""
    return np.asarray(output) - np.maximum(np.asarray(target), np.asarray(source))
