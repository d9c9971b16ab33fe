"""The plateau rule: fit loss(t) ~ floor + amp * exp(-t / tau) to the loss history and predict
how much further the loss can fall. Loss curves only loosely follow an exponential decay, so
the estimate is a guide for "more training will change little", not a promise."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_POINTS = 8


@dataclass
class DecayFit:
    floor: float            # the loss the fit approaches
    amp: float
    tau: float              # iterations for the remaining gap to shrink by e
    current: float          # the fitted loss at the last point
    remaining: float        # (current - floor) / current: share of the loss still to go

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"fit: loss {self.current:.4f} -> {self.floor:.4f} (about "
                f"{100 * self.remaining:.1f}% further improvement, time constant "
                f"{self.tau:.0f} iterations)")


def fit_decay(iterations, losses) -> DecayFit | None:
    """Least-squares fit over a log-spaced grid of tau (for each tau, floor and amp are linear).

    None with fewer than MIN_POINTS points or when the curve is not decaying."""
    t = np.asarray(iterations, np.float64)
    y = np.asarray(losses, np.float64)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < MIN_POINTS or t[-1] <= t[0]:
        return None
    span = t[-1] - t[0]
    best = None
    for tau in np.geomspace(span / 50, span * 20, 120):
        basis = np.stack([np.ones_like(t), np.exp(-(t - t[0]) / tau)], 1)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        if coef[1] <= 0:            # a rising curve: not a decay
            continue
        sse = float(np.sum((basis @ coef - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, tau, coef)
    if best is None:
        return None
    _, tau, (floor, amp) = best
    current = float(floor + amp * np.exp(-(t[-1] - t[0]) / tau))
    remaining = max(0.0, (current - floor) / current) if current > 0 else 0.0
    return DecayFit(float(floor), float(amp), float(tau), current, remaining)
