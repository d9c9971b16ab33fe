"""Temporal steadiness: follow each face from frame to frame, smooth its landmarks with a
one-euro filter, and fill short detection gaps from the track.

One-euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass whose cutoff rises with speed,
so a still face stops jittering while a moving one is not dragged behind. Speeds are measured
in face widths per second, so the same strength fits small and large faces.

Gaps: when a tracked face is not detected, its frames wait (up to `max_gap` frames) for it to
come back; if it does, the missing landmarks are interpolated between the two ends, so the
swap does not flash back to the original face for a frame or two. If it does not, the waiting
frames go out without that face.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localswap.faces.landmarks import face_width
from localswap.faces.tracking import match


class OneEuro:
    """One-euro filter over N x 2 points of one face (landmarks), time in seconds."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0

    @staticmethod
    def _alpha(cutoff: float | np.ndarray, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = self.dx + a_d * (dx - self.dx)
        speed = _face_speed(self.x, self.dx)
        a = self._alpha(self.min_cutoff + self.beta * speed, dt)
        self.x = self.x + a * (x - self.x)
        self.t = t
        return self.x.copy()


def _face_speed(x: np.ndarray, dx: np.ndarray) -> float:
    """One speed for the whole face: its shift, growth and turn rates. Each is a mean over
    all points, so independent per-point jitter averages out instead of reading as motion."""
    r = x - x.mean(0)
    dist = np.maximum(np.linalg.norm(r, axis=-1), 1e-6)
    v = dx - dx.mean(0)
    shift = float(np.linalg.norm(dx.mean(0)))
    grow = float(np.mean((r * v).sum(-1) / dist))
    turn = float(np.mean((r[:, 0] * v[:, 1] - r[:, 1] * v[:, 0]) / dist))
    return shift + abs(grow) + abs(turn)


def filter_for(strength: float) -> tuple[float, float] | None:
    """(min cutoff Hz, beta) for a strength in 0..1; None = no smoothing.
    0.5 -> 1.5 Hz still-face cutoff; 1 -> 0.3 Hz."""
    if strength <= 0:
        return None
    return 10 ** (math.log10(8.0) - strength * math.log10(8.0 / 0.3)), 4.0


@dataclass
class TrackedFace:
    track: int
    landmarks: np.ndarray        # 68 x 2 float32, frame pixels, smoothed
    filled: bool = False         # interpolated across a detection gap


@dataclass
class _Track:
    id: int
    last_index: int
    last_t: float
    raw: np.ndarray              # last detected (unsmoothed) landmarks, for matching
    smooth: np.ndarray           # last smoothed landmarks, for filling
    width: float
    filt: OneEuro | None


@dataclass
class _Pending:
    index: int
    t: float
    payload: Any
    faces: list[TrackedFace] = field(default_factory=list)


class FaceTracker:
    """push(index, t, payload, landmark list) -> frames ready, in order, as
    (index, payload, [TrackedFace]); finish() -> the rest. Holds at most max_gap + 1 frames."""

    def __init__(self, strength: float = 0.5, max_gap: int = 6):
        self.params = filter_for(strength)
        self.max_gap = max_gap
        self.tracks: dict[int, _Track] = {}
        self.pending: deque[_Pending] = deque()
        self.next_id = 1
        self.filled = 0          # faces filled in across gaps, for the result summary

    def _match(self, found: list[np.ndarray]) -> list[_Track | None]:
        ids = match(found, {tid: tr.raw for tid, tr in self.tracks.items()})
        return [None if tid is None else self.tracks[tid] for tid in ids]

    def push(self, index: int, t: float, payload: Any,
             found: list[np.ndarray]) -> list[tuple[int, Any, list[TrackedFace]]]:
        frame = _Pending(index, t, payload)
        self.pending.append(frame)
        for lm, tr in zip(found, self._match(found)):
            lm = np.asarray(lm, np.float64)
            width = face_width(lm) or 1.0
            if tr is None:
                p = self.params
                tr = _Track(self.next_id, index, t, lm, lm, width,
                            OneEuro(p[0], p[1]) if p else None)
                self.next_id += 1
                self.tracks[tr.id] = tr
            smooth = tr.filt(lm / tr.width, t) * tr.width if tr.filt else lm
            if index - tr.last_index > 1:
                self._fill(tr, smooth, index, t)
            tr.last_index, tr.last_t, tr.raw, tr.smooth = index, t, lm, smooth
            frame.faces.append(TrackedFace(tr.id, smooth.astype(np.float32)))
        for tid in [tid for tid, tr in self.tracks.items() if index - tr.last_index > self.max_gap]:
            del self.tracks[tid]           # gone for good: its waiting frames go out without it
        return self._release(index)

    def _fill(self, tr: _Track, smooth: np.ndarray, index: int, t: float) -> None:
        for p in self.pending:
            if tr.last_index < p.index < index:
                k = (p.t - tr.last_t) / (t - tr.last_t) if t > tr.last_t else 0.5
                lm = tr.smooth + k * (smooth - tr.smooth)
                p.faces.append(TrackedFace(tr.id, lm.astype(np.float32), filled=True))
                self.filled += 1

    def _release(self, index: int) -> list[tuple[int, Any, list[TrackedFace]]]:
        # A frame waits while some track missing from it may still come back and fill it.
        waiting = [tr.last_index for tr in self.tracks.values() if tr.last_index < index]
        until = min(waiting) if waiting else index
        out = []
        while self.pending and self.pending[0].index <= until:
            p = self.pending.popleft()
            out.append((p.index, p.payload, p.faces))
        return out

    def finish(self) -> list[tuple[int, Any, list[TrackedFace]]]:
        out = [(p.index, p.payload, p.faces) for p in self.pending]
        self.pending.clear()
        self.tracks.clear()
        return out
