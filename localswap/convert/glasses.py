"""The target's glasses stay in front (`--glasses keep`, the default): a model draws the
source's face, and a source without glasses has none to draw, so without this the target's
frames vanish into skin and leave their arms at the temples. The frame found in the target's
own frame (faces.glasses.frame_mask) is kept over the swap, like a hand; the source's eyes
show through the lenses. `--glasses source` leaves the face to the model.

Whether a face wears glasses is decided over the last WINDOW frames of it (the medians of
its bridge readings, faces.glasses.wears), so a frame that reads low (a turn, motion blur)
keeps them all the same.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from localswap.faces.glasses import bar, bridge, frame_mask, wears

WINDOW = 15


class GlassesKeeper:
    """keeper(image, faces) -> [(x0, y0, alpha)] the glasses' frames to keep in front."""

    def __init__(self):
        # per face, in the order the faces come: its bridge's edge and bar readings
        self.seen: dict[int, tuple[deque, deque]] = {}

    def __call__(self, image: np.ndarray, faces: list) -> list:
        out = []
        for k, face in enumerate(faces):
            edges, bars = self.seen.setdefault(k, (deque(maxlen=WINDOW), deque(maxlen=WINDOW)))
            for reads, read in ((edges, bridge), (bars, bar)):
                value = read(image, face.landmarks)
                if value is not None:
                    reads.append(value)
            if wears(list(edges), list(bars)):
                found = frame_mask(image, face.landmarks)
                if found is not None:
                    out.append(found)
        return out


def keeper_for(glasses: str) -> GlassesKeeper | None:
    return GlassesKeeper() if glasses == "keep" else None


def find_glasses(keeper: GlassesKeeper | None, image: np.ndarray, faces: list) -> list:
    return [] if keeper is None or not faces else keeper(image, faces)


def keep_mask(kept: list, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 of the region at `origin` (frame pixels): 1 where a kept frame is."""
    out = np.zeros(shape[:2], np.float32)
    ox, oy = origin
    for x0, y0, alpha in kept:
        h, w = alpha.shape
        ax0, ay0 = max(x0, ox), max(y0, oy)
        ax1, ay1 = min(x0 + w, ox + shape[1]), min(y0 + h, oy + shape[0])
        if ax1 <= ax0 or ay1 <= ay0:
            continue
        region = out[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
        np.maximum(region, alpha[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0], out=region)
    return out
