"""What stands in front of the face: hands, cut out of the swap mask so they stay in front.

MediaPipe's palm detector and hand landmarker ship inside the mediapipe wheel. They look at
a square around each face (2.8 face widths: a fist at the chin reaches well below the face;
at 2.2 the palm detector missed it in a photo, and glasses_selfie's hand at her cheek was
found in 132 frames against 155), scaled to 256 px, in tracking mode: once a palm is found
the landmarker follows the hand from frame to frame, and it keeps it while the fingers cover
the nose and mouth, where the palm detector alone finds it in a quarter of the frames (the
"woman" corpus clip: 71 of 90 frames tracked, 20 detected frame by frame; docs/benchmarks.md,
"Hands in front of the face"). The full landmark model (complexity 1), not the lite one: the
lite one took a woman's nose and mouth for a hand in 61 of 260 frames of a clip with no hand
in it (side_light), which would have kept the target's nose in the swap; the full one in none,
and it follows real hands in more frames.

A hand's mask is the hull of its 21 landmarks and of the forearm's start, grown by a finger's
half-width (the landmarks lie on the fingers' centre lines) and feathered outwards only, so
every hand pixel stays the target's. A hand the landmarker drops for a frame or two is held,
so the mask's edge does not flicker; in a render (FillBack) also the frames just before the
landmarker locks on take the hand it then finds.
"""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from localswap.faces.landmarks import face_width

REGION = 2.8          # the square looked at, in face widths
SIDE = 256            # ... scaled to this many pixels
GROW = 0.2            # the hull grows by this share of the palm's length (wrist to middle knuckle)
FEATHER = 0.25        # and fades out over this share more, outside it
HOLD = 2              # frames a lost hand is kept
IDLE = 8              # after this many frames without a hand near a face, look every other
#                       frame (the palm detector is most of the cost; FillBack covers the
#                       frame skipped just before a hand is found)
MIN_SCORE = 0.5


def palm_length(hand: np.ndarray) -> float:
    """Wrist (0) to the middle finger's knuckle (9): the hand's size, whatever its pose."""
    return float(np.hypot(*(hand[9] - hand[0])))


def outline(hand: np.ndarray) -> np.ndarray:
    """The hand's 21 points and two at the forearm's start (below the wrist, either side)."""
    size = palm_length(hand)
    down = hand[0] - hand[9]
    down = down / (np.hypot(*down) or 1.0)
    side = np.float32([-down[1], down[0]])
    wrist = hand[0] + down * 0.5 * size
    arm = np.stack([wrist + side * 0.35 * size, wrist - side * 0.35 * size])
    return np.concatenate([hand, arm]).astype(np.float32)


def hand_mask(hands: list[np.ndarray], origin: tuple[float, float], shape: tuple[int, int],
              scale: float = 1.0) -> np.ndarray:
    """(h, w) float32: 1 on the hands (grown), fading to 0 just outside them. `hands` in frame
    pixels; the mask covers the region whose top-left frame pixel is `origin`, at `scale`
    region pixels per frame pixel (a crop)."""
    out = np.zeros(shape[:2], np.float32)
    for hand in hands:
        hull = np.round(cv2.convexHull((outline(hand) - np.float32(origin)) * scale)
                        ).astype(np.int32)
        size = palm_length(hand) * scale
        grow = max(1, int(round(GROW * size)))
        feather = max(1, int(round(FEATHER * size)))
        # a convex hull grown by a disk: the hull filled and its outline drawn that thick
        # (round joins), a tenth of a dilation's time on a 300 px region
        hard, soft = np.zeros(shape[:2], np.uint8), np.zeros(shape[:2], np.uint8)
        for m, reach in ((hard, grow), (soft, grow + feather // 2)):
            cv2.fillConvexPoly(m, hull, 255)
            cv2.polylines(m, [hull], True, 255, thickness=2 * reach + 1)
        blurred = cv2.GaussianBlur(soft, (0, 0), feather / 4).astype(np.float32) / 255
        out = np.maximum(out, np.maximum(blurred, hard.astype(np.float32) / 255))
    return out


def region(face: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The square around a face (68 points) the hand landmarker looks at, clipped."""
    centre = face.mean(0)
    half = REGION * face_width(face) / 2
    h, w = shape[:2]
    x0, y0 = np.maximum(np.floor(centre - half).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(centre + half).astype(int), (w, h))
    return int(x0), int(y0), int(x1), int(y1)


class HandTracker:
    """tracker(frame, faces) -> the hands (21 points each, frame pixels) near those faces.
    Frames of one video in order (`still=True`: unrelated photos, no tracking)."""

    def __init__(self, still: bool = False):
        self.still = still
        self._graphs: dict[int, object] = {}
        # per face slot: the hands last found, and the frames since they were found
        self._seen: dict[int, tuple[list[np.ndarray], int]] = {}
        self._frames = 0
        self._starting: set[int] = set()      # graphs made, not yet run once

    def _process(self, slot: int, crop: np.ndarray) -> list:
        """The slot's graph's hands in `crop`; stderr stays silenced from the graph's making to
        its first result, when MediaPipe's C++ side writes its start-up lines (see
        faces.mediapipe_backend._Silence)."""
        from localswap.faces.mediapipe_backend import _SILENCE
        if slot not in self._graphs:
            import mediapipe as mp
            _SILENCE.enter()
            try:
                self._graphs[slot] = mp.solutions.hands.Hands(
                    static_image_mode=self.still, max_num_hands=2, model_complexity=1,
                    min_detection_confidence=MIN_SCORE, min_tracking_confidence=MIN_SCORE)
            except BaseException:
                _SILENCE.leave()
                raise
            self._starting.add(slot)
        try:
            return self._graphs[slot].process(crop).multi_hand_landmarks or []
        finally:
            if slot in self._starting:
                self._starting.discard(slot)
                _SILENCE.leave()

    def __call__(self, image: np.ndarray, faces: list[np.ndarray],
                 look: bool = False) -> list[np.ndarray]:
        """`look`: look at this frame even while idle (the one frame a preview shows)."""
        hands: list[np.ndarray] = []
        self._frames += 1
        for slot, face in enumerate(faces):
            x0, y0, x1, y1 = region(np.asarray(face, np.float32), image.shape)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            last, since = self._seen.get(slot, ([], 0))
            if not (self.still or look) and since >= IDLE and self._frames % 2:
                self._seen[slot] = (last, since + 1)
                continue
            crop = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (SIDE, SIDE),
                              interpolation=cv2.INTER_AREA)
            found = self._process(slot, crop)
            now = [np.array([(p.x * (x1 - x0) + x0, p.y * (y1 - y0) + y0)
                             for p in hand.landmark], np.float32) for hand in found]
            if now or self.still:
                self._seen[slot] = (now, 0)
            else:
                self._seen[slot] = (last, since + 1)
                now = last if since < HOLD else []
            hands += [h for h in now if not any(_same(h, k) for k in hands)]
        return hands

    def close(self) -> None:
        from localswap.faces.mediapipe_backend import _SILENCE
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()
        for _ in self._starting:
            _SILENCE.leave()
        self._starting.clear()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """One hand seen from two faces' regions (two people side by side)."""
    return float(np.abs(a - b).mean()) < 0.2 * max(palm_length(a), 1.0)


def tracker_for(occlusion: str, still: bool = False) -> HandTracker | None:
    """The hand tracker a render with this `--occlusion` setting needs, or None (off)."""
    return HandTracker(still) if occlusion in ("hands", "auto") else None


def find_hands(tracker: HandTracker | None, image: np.ndarray, faces: list) -> list[np.ndarray]:
    """The hands in front of `faces` (aligned Face objects), [] without a tracker or faces."""
    if tracker is None or not faces:
        return []
    return tracker(image, [f.landmarks for f in faces])


class FillBack:
    """A render's frames, out in order HOLD frames late, so a frame where the landmarker had
    not found the hand yet (it needs a frame or two to lock on: the hand entering, the clip's
    first frames) takes the hands found within HOLD frames after it."""

    def __init__(self):
        self.waiting: deque = deque()

    def push(self, frame) -> list:
        """`frame` (with .index and .hands) in; the frames ready to go out."""
        if frame.hands:
            for earlier in self.waiting:
                if not earlier.hands and earlier.faces and frame.index - earlier.index <= HOLD:
                    earlier.hands = frame.hands
        self.waiting.append(frame)
        out = []
        while len(self.waiting) > HOLD:
            out.append(self.waiting.popleft())
        return out

    def finish(self) -> list:
        out = list(self.waiting)
        self.waiting.clear()
        return out
