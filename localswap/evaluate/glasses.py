"""Glasses the render erased: a model that never saw glasses paints skin over the target's
and leaves the arms at the temples (issue 29's quick swap onto a person in glasses).

Identity is read without glasses (`without`): dlib's descriptor counts glasses as part of a
face, so a render that keeps the target's glasses (convert.glasses) read as nearer the target
(40% of frames closer to the source, against 96% with them erased, on the same model). Where
a frame shows glasses, their frame is painted out (inpainted) before the descriptor is taken,
in the target's, the source's and the output's frames alike.

The target wears glasses when the median of its frames' bridge edge (faces.glasses) reads
at least WEARS; the render keeps them in a frame when its bridge reads at least KEPT of the
target's in that frame (the erased render: 29 against 168).
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.faces.glasses import BAR, WEARS, bar, bridge, frame_mask

KEPT = 0.5         # the output's bridge edge over the target's, frame by frame
ERASED = 0.5       # glasses kept in fewer frames than this share: erased


def kept(pairs: list[tuple[float, float]]) -> float | None:
    """Share of frames whose output keeps the target's glasses; None when the target does
    not wear glasses. `pairs`: (output bridge, target bridge) per frame."""
    pairs = [(o, t) for o, t in pairs if o is not None and t is not None and np.isfinite(t)]
    if not pairs or np.median([t for _, t in pairs]) < WEARS:
        return None
    return float(np.mean([o >= KEPT * t for o, t in pairs]))


def without(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """`rgb` with the glasses' frame painted out where this frame shows glasses (else as is),
    for the identity descriptor."""
    edge, dark = bridge(rgb, landmarks), bar(rgb, landmarks)
    if edge is None or dark is None or edge < WEARS or dark < BAR:
        return rgb
    found = frame_mask(rgb, landmarks)
    if found is None:
        return rgb
    x0, y0, alpha = found
    h, w = alpha.shape
    mask = cv2.dilate((alpha > 0.2).astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
    out = rgb.copy()
    out[y0:y0 + h, x0:x0 + w] = cv2.inpaint(np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w]),
                                            mask, 3, cv2.INPAINT_TELEA)
    return out
