"""Masks that say where the swapped face replaces the original.

`hull`: the landmark face hull (jaw + brows lifted to the forehead), drawn where it is used;
`learned`: the model's own mask (it learned where the face is, including past the hull when
hair or hands cover it); `both`: their intersection, the safe default. Then erode (shrink,
negative grows) and blur (feather width), both in frame pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import face_hull, lip_gap, mouth_width

# the target's own open mouth: from a lip gap of this share of the mouth's width, kept this
# share of the width inside the inner lip line (the model's lips stay; check4 and check2)
MOUTH_PARTED = 0.06
MOUTH_INSET = 0.03


def hull_mask(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """float32 0..1 mask of the face hull (landmarks in this image's pixels, anti-aliased)."""
    m = np.zeros((height, width), np.uint8)
    poly = np.round(face_hull(landmarks) * 16).astype(np.int32)   # 4 fractional bits
    cv2.fillConvexPoly(m, poly, 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) * (1 / 255)


def combine(kind: str, hull: np.ndarray, learned: np.ndarray | None) -> np.ndarray:
    """The mask `kind` asks for; without a learned mask every kind falls back to the hull."""
    if kind == "hull" or learned is None:
        return hull
    if kind == "learned":
        return learned
    return np.minimum(hull, learned)


def auto_sizes(face_width: float) -> tuple[int, int]:
    """(erode, blur) in pixels when the user sets none: a feather of ~6% of the face width,
    half of it inside the hull, so the seam never sits on the hull line itself."""
    blur = max(2, int(round(0.06 * face_width)))
    return max(1, blur // 2), blur


def refine(mask: np.ndarray, erode: int, blur: int) -> np.ndarray:
    """Erode (or dilate when negative) by `erode` px, then feather over about `blur` px."""
    if erode:
        k = 2 * abs(erode) + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.erode(mask, kernel) if erode > 0 else cv2.dilate(mask, kernel)
    if blur > 0:
        # sigma = blur/4: the 2%-98% transition of the edge spans about `blur` pixels.
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=blur / 4, borderType=cv2.BORDER_REPLICATE)
    return mask


def mouth_interior(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """(h, w) float: 1 well inside the parted lips (teeth, tongue, the dark gap), fading to
    0 short of the inner lip line; None while the lips hardly part (68-point `landmarks` in
    the region's pixels)."""
    width = mouth_width(landmarks)
    if lip_gap(landmarks) < MOUTH_PARTED * width:
        return None
    area = np.zeros(shape, np.uint8)
    cv2.fillPoly(area, [np.round(landmarks[60:68]).astype(np.int32)], 255)
    inset = max(1, int(round(MOUTH_INSET * width)))
    area = cv2.erode(area, np.ones((2 * inset + 1,) * 2, np.uint8))
    return cv2.GaussianBlur(area.astype(np.float32) / 255, (0, 0), inset)
