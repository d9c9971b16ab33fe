"""Pixel measures inside and around the face: frame-to-frame change, texture and seam energy.

All are taken in the target's face region (its landmark hull), for the target and the output
alike, so the two numbers compare the same pixels.

Frame-to-frame change is read against the face's texture (mean gradient): when a face moves,
each pixel changes in proportion to the gradient under it, so change / texture is the face's
apparent motion. Raw change alone called a faithful swap of a more textured (grainier,
older) face "flickering" (1.4x the target's change with the very same motion); flicker,
jitter and colour pumping still raise change / texture.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import face_hull, face_width


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 0/255 mask (frame size) of the face hull."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(face_hull(landmarks)).astype(np.int32), 255)
    return mask


def border_band(mask: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A thin band (about 6% of the face's width each side) along the hull's edge: where a
    swap's blend mask ends, and where a seam shows."""
    width = face_width(landmarks)
    k = max(3, int(round(width * 0.06)) * 2 + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.dilate(mask, kernel) > cv2.erode(mask, kernel)


def change(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference (0-255 scale, all channels) between two frames in `mask`."""
    sel = mask > 0
    if not sel.any():
        return 0.0
    return float(np.abs(a[sel].astype(np.int16) - b[sel].astype(np.int16)).mean())


def gradient_energy(rgb: np.ndarray, band: np.ndarray) -> float:
    """Mean gradient magnitude of the grey image where `band` is set: along the hull's edge,
    a seam (a step: high energy); inside the hull, the face's texture."""
    band = np.asarray(band) > 0
    ys, xs = np.nonzero(band)
    if not len(ys):
        return 0.0
    # Only the band's box (plus the Sobel's reach) is filtered: cheap on a 4K frame.
    y0, y1 = max(0, ys.min() - 2), ys.max() + 3
    x0, x1 = max(0, xs.min() - 2), xs.max() + 3
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    grey = grey.astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.hypot(gx, gy)[band[y0:y1, x0:x1]].mean())
