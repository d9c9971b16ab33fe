"""What else stands in front of the face (a cup, a microphone, a phone, a strand of hair): found
where the frame departs from the model's own drawing of the target's face.

The model's target decoder was trained to redraw the target person's face from the encoding
the swap uses. Run on a frame of that person, its drawing matches the frame within a few Lab
levels everywhere (median 2.0 on the clip a Basic model was trained on, 3.1 after a 2-minute
adaptation to a new clip), except where something the model never saw covers the face: there
it draws the face underneath. Those pixels are kept from the frame, like a hand.

The check only works where the model draws this person closely: on anyone else the drawing
departs everywhere, and a model trained for minutes draws even its own target loosely, so
that hair, teeth and the jaw's edge depart as much as a cup does. How closely it draws is
read over the video's faces so far (each face's closer-40% distance, so a cup over half the
face does not count, then the 30th percentile of the latest faces', so that frames where the
cup is held do not either): the check looks only while that stays under TRUST.
Measured (docs/benchmarks.md, "Objects in front of the face"): 1.7 for a Basic model on its
own target, 2.5 adapted for 2 minutes to a new one, 3.7-4.1 for a model trained 2 minutes from
scratch (which kept the target's face in 379 of 472 faces and fell from 77% to 33% of frames
closer to the source), 5.3-7.5 on other people. The caller may also say the video shows
someone else (quick swaps and `convert` ask swap.fit, which tells people apart by their dlib
signature): then the check stands aside from the start.
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.convert.mask import hull_mask

THRESHOLD = 12.0      # Lab distance from the model's drawing that marks a pixel as in front
TRUST = 3.2           # the video's closeness at and above which the check stands aside:
WINDOW = 150          # ... the 30th percentile of the latest this many faces' (a cup held
SHARE = 30            #     for a third of the clip raises the median, not the 30th)
MIN_SHARE = 0.02      # a region smaller than this share of the face is an edge, not a thing,
STRONG = 30.0         # ... unless it departs this far somewhere (a cup's white rim just
#                       entering the face: wrinkles and lids the drawing misses stay under 25)
GROW = 0.06           # the kept region grows by this share of the crop, then fades as far
#                       (at 0.03 the swap's feathered edge still covered a cup's rim)


def departure(crop: np.ndarray, own: np.ndarray, landmarks: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(Lab distance per pixel between `crop` and the model's drawing `own`, both RGB uint8
    crops, after matching the drawing's median colour in the face; the face hull as bool)."""
    size = crop.shape[0]
    hull = hull_mask(landmarks, size, size) > 0.5
    sigma = size / 64          # the drawing is soft: compare both at its sharpness
    lab = [cv2.cvtColor(cv2.GaussianBlur(im, (0, 0), sigma).astype(np.float32) / 255,
                        cv2.COLOR_RGB2LAB) for im in (crop, own)]
    if hull.any():
        lab[1] += np.median(lab[0][hull], 0) - np.median(lab[1][hull], 0)
    return np.sqrt(((lab[0] - lab[1]) ** 2).sum(-1)), hull


def closeness(distance: np.ndarray, hull: np.ndarray) -> float:
    """How far the closer 40% of the face departs from the drawing. (The 40th percentile,
    not the median, so a thing covering half the face does not count.)"""
    return float(np.percentile(distance[hull], 40)) if hull.sum() >= 64 else float("inf")


def in_front(distance: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """float32 0..1 (crop pixels): the regions in front of the face, filled, grown and
    feathered outwards so every pixel of the thing stays the frame's."""
    size = hull.shape[0]
    r = max(1, size // 64)
    hit = ((distance > THRESHOLD) & hull).astype(np.uint8)
    hit = cv2.morphologyEx(hit, cv2.MORPH_OPEN, _disk(r))       # thin lines are edges
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hit)
    strong = distance > STRONG
    big = [j for j in range(1, count)
           if stats[j, cv2.CC_STAT_AREA] >= MIN_SHARE * hull.sum()
           or (strong & (labels == j)).sum() >= 4]
    if not big:
        return np.zeros(hull.shape, np.float32)
    hit = np.isin(labels, big).astype(np.uint8)
    hit = cv2.morphologyEx(hit, cv2.MORPH_CLOSE, _disk(3 * r))
    # filled: the inside of a cup or a phone's screen may match the skin's colour
    outlines, _ = cv2.findContours(hit, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(hit, outlines, -1, 1, -1)
    grow = max(1, int(round(GROW * size)))
    hard = cv2.dilate(hit, _disk(grow)).astype(np.float32)
    soft = cv2.GaussianBlur(cv2.dilate(hit, _disk(2 * grow)).astype(np.float32), (0, 0),
                            grow / 2)
    return np.maximum(hard, soft)


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


class OccluderCheck:
    """check(faces, drawings): sets each face's `.occluder` (crop pixels, 0..1) from the
    model's drawing of the target, or None where the drawing is not this person."""

    def __init__(self, knows_person: bool | None = None):
        self.knows = knows_person
        self.off = knows_person is False
        self.faces = 0          # faces looked at
        self.trusted = 0        # ... whose person the model knows
        self.found = 0          # ... with something in front
        self.closeness: list[float] = []

    def __call__(self, faces: list, drawings: np.ndarray, landmarks: list[np.ndarray]) -> None:
        for face, own, lm in zip(faces, drawings, landmarks):
            self.faces += 1
            face.occluder = None
            if self.off:
                continue
            distance, hull = departure(face.crop, own, lm)
            self.closeness.append(closeness(distance, hull))
            if not np.percentile(self.closeness[-WINDOW:], SHARE) < TRUST:
                continue
            self.trusted += 1
            mask = in_front(distance, hull)
            face.occluder = mask if mask.any() else None
            self.found += face.occluder is not None

    def counts(self) -> dict:
        """Faces, those looked at (the drawing trusted), those with something in front, and
        how closely the drawing matched (the median 40th-percentile distance)."""
        return {"faces": self.faces, "looked": self.trusted, "found": self.found,
                "closeness": round(float(np.median(self.closeness)), 2)
                if self.closeness else None}

    def note(self) -> str | None:
        """One sentence for the result, when the check could not do its work."""
        if not self.faces or self.trusted >= self.faces / 2:
            return None
        why = {False: "the model was not trained on this person",
               True: "the model does not draw this person closely enough yet (more training "
                     "helps)"}.get(self.knows, "the model was not trained on this person, or "
                                               "not long enough to draw them closely")
        return (f"Objects in front of the face were looked for in {self.trusted} of "
                f"{self.faces} faces: {why}; hands are still kept in front")


def check_for(occlusion: str, swapper, knows_person: bool | None = None
              ) -> OccluderCheck | None:
    """The check a render with this `--occlusion` setting and model needs, or None.
    `knows_person`: whether the video shows the model's target person, when known."""
    if occlusion != "auto" or not getattr(swapper, "draws_target", False):
        return None
    return OccluderCheck(knows_person)
