"""Which face is which from frame to frame. One rule, used by extraction, the people listing
and the converter's smoothing tracker (localswap.convert.smooth): a face found now is a face
seen before when their boxes overlap (IoU above 0.2) or their centres lie within half a face
width; the closest pairs are taken first and each earlier face is taken at most once."""
from __future__ import annotations

from collections import Counter

import numpy as np

from localswap.faces.detection import Detection, bbox_of, iou
from localswap.faces.landmarks import face_width

MIN_IOU = 0.2
MAX_CENTRE = 0.5        # centre distance, in face widths


def match(found: list[np.ndarray], previous: dict[int, np.ndarray]) -> list[int | None]:
    """For each face found (68 landmarks, frame pixels) the id of the earlier face it is, from
    `previous` ({id: that face's last landmarks}), or None for a face not seen before."""
    pairs = []
    for i, lm in enumerate(found):
        lm = np.asarray(lm, np.float64)
        box = bbox_of(lm)
        for tid, prev in previous.items():
            prev = np.asarray(prev, np.float64)
            overlap = iou(box, bbox_of(prev))
            centre = np.linalg.norm(lm.mean(0) - prev.mean(0)) / max(face_width(prev), 1.0)
            if overlap > MIN_IOU or centre < MAX_CENTRE:
                pairs.append((centre - overlap, i, tid))
    out: list[int | None] = [None] * len(found)
    used: set[int] = set()
    for _, i, tid in sorted(pairs, key=lambda p: p[0]):
        if out[i] is None and tid not in used:
            out[i] = tid
            used.add(tid)
    return out


class Tracks:
    """Track ids for the detections of a video, frame after frame, and how many frames each
    track was seen in (the longest track is the video's main person)."""

    def __init__(self):
        self.last: dict[int, np.ndarray] = {}
        self.count: Counter = Counter()

    def assign(self, dets: list[Detection]) -> list[int]:
        ids = match([d.landmarks for d in dets], self.last)
        for k, d in enumerate(dets):
            if ids[k] is None:
                ids[k] = max([0, *self.last.keys(), *(i for i in ids if i is not None)]) + 1
            self.last[ids[k]] = d.landmarks
            self.count[ids[k]] += 1
        return ids
