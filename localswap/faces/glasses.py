"""Glasses on a face: whether a face wears them (the edge of a frame's bridge across the nose)
and where their frame is (thin dark lines round the eyes), from the 68 landmarks.

`bridge` reads how strongly a horizontal edge crosses the nose bridge between the eyes,
where a frame's bridge sits: the strongest row of vertical gradient there, on a face scaled
to 100 px across. Measured on 32 frames of each of 14 corpus clips: the woman in glasses 168
(median; 118 at the 10th percentile), faces without glasses 19-65 (at most 102 in 1% of
frames: a furrowed brow, a strand of hair), so a face wears glasses when the median over
its frames reads at least WEARS.

`frame_mask` finds the frame itself: the thin structures darker than their surroundings
(a morphological black-hat) in the band from the brows to the nose's middle, less the eyes
and brows (they are the swapped person's), in pieces of some size. Dark frames only: a
clear or light frame is not found.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.landmarks import face_width

WEARS = 100.0      # median bridge edge of a face's frames: glasses (no-glasses clips <= 65)
WORK = 120         # face width (px) the frame is looked for at
BAR = 25.0         # median thin-dark-bar reading of a face's frames (see `bar`)
EYE, BROW = 0.04, 0.03   # margins (face widths) round the eyes and brows left to the swap


def _bridge_grey(rgb: np.ndarray, lm: np.ndarray, above: float) -> np.ndarray | None:
    """The nose bridge between the inner eye corners (the middle half of that gap), from
    `above` face widths over the inner brows down to the nose's middle, grey, float32, on a
    face scaled to 100 px across; None where it is too small to read."""
    width = face_width(lm)
    inner_left, inner_right = lm[39, 0], lm[42, 0]
    gap = inner_right - inner_left
    h, w = rgb.shape[:2]
    x0, x1 = max(0, int(inner_left + 0.25 * gap)), min(w, int(inner_right - 0.25 * gap))
    y0 = max(0, int(min(lm[21, 1], lm[22, 1]) - above * width))
    y1 = min(h, int(lm[29, 1]))
    if width < 16 or x1 - x0 < 2 or y1 - y0 < 4:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    scale = 100.0 / width
    grey = cv2.resize(grey.astype(np.float32), None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return grey if grey.shape[0] >= 3 and grey.shape[1] >= 1 else None


def bridge(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    """The nose bridge's strongest horizontal edge (68-point landmarks), None if too small."""
    grey = _bridge_grey(rgb, np.asarray(landmarks, np.float32), 0.0)
    if grey is None:
        return None
    return float(np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)).mean(1).max())


def bar(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    """How dark and thin a horizontal bar crosses the nose bridge: the strongest row of a
    vertical black-hat (a frame's bridge is a thin dark bar; a hair's edge is a step, which
    the Sobel reading of `bridge` also takes). Glasses: median 43 (10th percentile 30);
    20 clips without: medians 2-15."""
    grey = _bridge_grey(rgb, np.asarray(landmarks, np.float32), 0.05)
    if grey is None:
        return None
    dark = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT,
                            cv2.getStructuringElement(cv2.MORPH_RECT, (1, 9)))
    return float(dark.mean(1).max())


def _looks_like_glasses(found: np.ndarray, lm: np.ndarray, width: float) -> bool:
    """A frame crosses the bridge (its lines cover the span between the inner eye corners
    there: all of it in 9 of 10 frames of glasses_selfie) and rims both eyes (lines beside
    each eye). A hair's edge across one eye reads like a bridge to `bridge` and `bar` but
    covers 53-85% of that span (backlit: kept in front in 71 of 385 frames without this,
    drawing pale lines round an eye; in none with it)."""
    h, w = found.shape
    x0, x1 = int(lm[39, 0]), int(lm[42, 0])
    y0 = int(max(0, min(lm[21, 1], lm[22, 1]) - 0.05 * width))
    y1 = int(min(h, lm[29, 1]))
    if x1 - x0 < 3 or y1 <= y0:
        return False
    bridge_cols = found[y0:y1, max(0, x0):min(w, x1)].any(0)
    if bridge_cols.mean() < 0.9:            # glasses_selfie: 1.0 in 9 of 10 frames
        return False
    for eye in (lm[36:42], lm[42:48]):
        cx, cy = eye.mean(0)
        r = 0.22 * width
        box = found[int(max(0, cy - r)):int(min(h, cy + r)), int(max(0, cx - r)):int(min(w, cx + r))]
        if box.sum() < 0.5 * r:            # a rim's side at least: about half a radius of line
            return False
    return True


def wears(edges: list[float], bars: list[float]) -> bool:
    """Glasses, from a face's readings over several frames: both a strong edge and a thin
    dark bar across the bridge (hair across it gives the edge, a shadow line the bar)."""
    return bool(edges) and bool(bars) and float(np.median(edges)) >= WEARS \
        and float(np.median(bars)) >= BAR


def frame_mask(rgb: np.ndarray, landmarks: np.ndarray
               ) -> tuple[int, int, np.ndarray] | None:
    """(x0, y0, alpha float32): the glasses' frame in the region whose top-left frame pixel
    is (x0, y0), feathered by a pixel; None where the face is too small or nothing is found."""
    lm = np.asarray(landmarks, np.float32)
    width = face_width(lm)
    if width < 40:
        return None
    h, w = rgb.shape[:2]
    x0 = int(max(0, lm[0, 0] - 0.05 * width))
    x1 = int(min(w, lm[16, 0] + 0.05 * width))
    y0 = int(max(0, lm[17:27, 1].min() - 0.04 * width))
    y1 = int(min(h, lm[29, 1] + 0.02 * width))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    # found at a face width of about WORK px (a 720p face is ~300: a tenth of the time)
    scale = min(1.0, WORK / width)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    fw = width * scale
    size = max(3, int(fw / 9) | 1)               # wider than a rim, narrower than an eye
    dark = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    theirs = np.zeros_like(grey)                 # eyes and brows: the swapped person's
    off = np.float32([x0, y0])
    for part, grow in ((slice(36, 42), EYE), (slice(42, 48), EYE), (slice(17, 22), BROW),
                       (slice(22, 27), BROW)):
        one = np.zeros_like(grey)
        pts = np.round((lm[part] - off) * scale).astype(np.int32)
        cv2.fillPoly(one, [pts], 255)
        cv2.polylines(one, [pts], part.start < 36, 255, thickness=max(1, int(grow * fw)))
        theirs |= one
    found = ((dark > max(18.0, float(np.percentile(dark, 85)))) & (theirs == 0)
             ).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    least = 4 * (0.02 * fw) ** 2
    keep = np.isin(labels, [i for i in range(1, count)
                            if stats[i, cv2.CC_STAT_AREA] >= least]).astype(np.float32)
    if not keep.any() or not _looks_like_glasses(keep, (lm - off) * scale, fw):
        return None
    if scale < 1.0:
        keep = _upscale(keep, (x1 - x0, y1 - y0))
    alpha = cv2.GaussianBlur(keep, (0, 0), 1.0)
    return x0, y0, np.maximum(alpha, keep)


def _upscale(found: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame found at WORK px, at the frame's size with smooth outlines. Scaled up as
    it is, a 470 px face's rims were staircases of 4 px steps with gaps between the pieces:
    small gaps are closed and the outline is the half-way line of a softened copy."""
    found = cv2.morphologyEx(found, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    soft = cv2.resize(cv2.GaussianBlur(found, (0, 0), 0.7), size, interpolation=cv2.INTER_CUBIC)
    return np.clip((soft - 0.35) / 0.3, 0.0, 1.0)
