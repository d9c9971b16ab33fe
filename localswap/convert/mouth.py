"""How much of the target's own open mouth to keep: as much as the model's mouth opens less.

A small model follows the target's mouth only in part. On the corpus at Basic's budget it
opened its lips with the target's on some pairs and kept them nearly shut on others while the
target talked. Keeping the target's teeth and tongue inside his parted lips (Look.mouth)
gives back the opening where the model's lips stay shut; where the model does open its mouth
it puts a second mouth inside the first (the model's teeth band above his dark gap: the
mouth figure of man_webcam -> bearded_test fell 0.85 -> 0.79). So the swapped crop and the
target's crop are both read (MediaPipe FaceMesh, image mode, ~4 ms each on a 192 px crop,
only while the target's lips part) and the target's mouth is kept in the measure that the
model's lip gap falls short of his. Simulated per frame on the ten corpus pairs' renders it
took the better of "never" and "always" on each pair (docs/benchmarks.md, session 18).
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from localswap.faces.landmarks import mouth_opening

READ_SIZE = 192          # px the crops are read at (a 64 px model's face is too small)
PAD = 0.3                # border on each side: the face finder wants a margin round a face
# model gap / target gap: the whole target mouth is kept at or below ALL, none from NONE up.
# A blurred shut mouth still reads ~0.7-0.8 as open as the target's (lowres_woman ->
# dvd_woman), so ALL sits above that; a model that opens as far as the target keeps half.
ALL, NONE = 0.85, 1.15

# One FaceMesh graph for the process, behind a lock: previews run in a pool of threads, and a
# graph per thread would hold ~tens of MB each for a 4 ms reading.
_reader: list = []
_lock = threading.Lock()


def opening(crop: np.ndarray) -> float | None:
    """The lips' inner gap over the jaw's width in an aligned RGB crop, or None when no face
    is read in it."""
    pad = int(round(PAD * READ_SIZE))
    big = cv2.resize(crop, (READ_SIZE, READ_SIZE), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    with _lock:
        if not _reader:
            from localswap.faces.detect import make_backend
            _reader.append(make_backend("mediapipe", max_faces=1))
        found = _reader[0].detect(big)
    return mouth_opening(found[0].landmarks) if found else None


def keep_share(target: np.ndarray, swapped: np.ndarray, lm_crop: np.ndarray) -> float:
    """0..1: how much of the target's open mouth to keep for this face (`target` its aligned
    crop, `swapped` the model's face for it, `lm_crop` its landmarks in crop pixels). All of
    it when the model's face cannot be read: the target's own mouth is the safe one."""
    mine = opening(target)
    if mine is None:
        mine = mouth_opening(lm_crop)
    model = opening(swapped)
    if model is None or mine <= 0:
        return 1.0
    return float(np.clip((NONE - model / mine) / (NONE - ALL), 0.0, 1.0))
