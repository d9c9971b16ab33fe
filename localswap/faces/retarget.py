"""Retarget a target face's expression into the source's own range and geometry.

An expression-guided model draws the lids and lips where its line map says. Drawn straight
from the target's landmarks the lines carry the target's geometry (eye spacing, mouth width:
part of who he is) and his range of movement: a man whose eyes move between aspect 0.18 and
0.23 drives a source whose eyes move between 0.15 and 0.31 only within her half-closed band.
So before the map is drawn, each point keeps its offset from the target's median face but is
placed around the source's median face, and the eye openings are scaled by the ratio of the
two people's median openings: his resting eye becomes hers, his blink a blink of hers. (Rank
for rank quantile mapping was tried first: a source clip without a blink has no shut eye in
its distribution, so the target's blink mapped to an open eye.) The mouth keeps the target's
own movement (its offset from his median): speech sets how far it opens, and mapped rank for
rank onto a source who talks with a wide-open mouth it gaped in every frame (tried: identity
distance +0.03 to +0.04, the picture over-animated).

Statistics come from the training facesets (landmarks in aligned-crop units, 0..1) and are
kept in the model's manifest ("expression").
"""
from __future__ import annotations

import numpy as np

from localswap.faces.landmarks import LEFT_EYE, RIGHT_EYE, eye_ratio


def expression_stats(landmarks: list[np.ndarray]) -> dict:
    """Per-person statistics from aligned-crop landmarks (68 x 2, crop units 0..1): the median
    face and the median eye opening (aspect ratio, both eyes)."""
    pts = np.asarray(landmarks, np.float64)
    eyes = [eye_ratio(p[idx]) for p in pts for idx in (RIGHT_EYE, LEFT_EYE)]
    return {"faces": len(pts), "median": np.round(np.median(pts, 0), 5).tolist(),
            "eye": round(float(np.median(eyes)), 5)}


def _set_eye(eye: np.ndarray, ratio: float) -> np.ndarray:
    """Scale the lids' distance from the line through the corners until the eye's aspect
    ratio is `ratio` (it grows with that distance, not linearly: found by bisection)."""
    c = (eye[0] + eye[3]) / 2
    axis = eye[3] - eye[0]
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    normal = np.array([-axis[1], axis[0]])
    d = eye - c
    along, across = np.outer(d @ axis, axis), d @ normal
    # upper lid above the corners' line, lower below (the normal points down the image): lids
    # that crossed in the target's offsets would otherwise not open with any scale
    width = float(np.linalg.norm(eye[3] - eye[0]))
    across = np.maximum(np.abs(across), 1e-3 * width) * np.array([0, -1, -1, 0, 1, 1])
    def shaped(scale: float) -> np.ndarray:
        return c + along + np.outer(across * scale, normal)
    low, high = 0.0, 1.0
    while eye_ratio(shaped(high)) < ratio and high < 1e3:     # the ratio grows with the scale
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if eye_ratio(shaped(mid)) < ratio else (low, mid)
    return shaped((low + high) / 2)


def retarget(landmarks: np.ndarray, size: int, target: dict, source: dict) -> np.ndarray:
    """68 points in crop pixels (a crop of `size` px) of a target face -> the points to draw
    the guide from: the source's geometry, the target's movement, his eye openings scaled to
    the source's. `target`/`source`: expression_stats of each person."""
    pts = np.asarray(landmarks, np.float64) / size
    out = np.asarray(source["median"]) + (pts - np.asarray(target["median"]))
    scale = source["eye"] / max(target["eye"], 1e-6)
    for idx in (RIGHT_EYE, LEFT_EYE):
        out[idx] = _set_eye(out[idx], eye_ratio(pts[idx]) * scale)
    return (out * size).astype(np.float32)
