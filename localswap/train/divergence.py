"""Finite divergence: the loss jumps and stays up while staying a number.

Too high a learning rate does not always give NaN (the trainer's other guard). Measured at
96 px with lr 1e-3 on a CPU: right after the warm-up the summed loss went from 0.99 to 2.13
and stayed at ~2.27 for good; decoder A had saturated into stripes and B's learned mask was 0,
so the render was the untouched target. This guard keeps an in-memory copy of the last good
state (model and optimizer, on the CPU) and, when a loss-history point rises well above the
best one (either side's: one decoder can go alone), puts it back and halves the learning
rate.
"""
from __future__ import annotations

import copy
import math
import time

import torch

RISE = 1.4          # a side's history point this many times its best is divergence, not noise
SNAPSHOT_EVERY = 30.0   # seconds: copies of a large model to the CPU are not free
MAX_HALVINGS = 4


def _to_cpu(state):
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(v) for v in state)
    return copy.deepcopy(state)


class DivergenceGuard:
    def __init__(self):
        self.best = [math.inf, math.inf]        # per side: A, B
        self.snapshot: tuple[int, dict, dict] | None = None
        self.taken = -math.inf
        self.halvings = 0
        self.improved = False

    def diverged(self, losses: list[float]) -> bool:
        """`losses`: the newest history point's (A, B). True when a side is RISE x its best."""
        if not all(math.isfinite(x) for x in losses):
            return False                       # NaN/inf has its own guard
        if self.snapshot is not None and any(x > RISE * b for x, b in zip(losses, self.best)):
            return True
        self.improved = all(x <= b for x, b in zip(losses, self.best))
        self.best = [min(x, b) for x, b in zip(losses, self.best)]
        return False

    def keep(self, iteration: int, model: torch.nn.Module, optimizer) -> None:
        """Remember this state when it is as good as any so far (and the last copy is old)."""
        if self.improved and time.monotonic() - self.taken >= SNAPSHOT_EVERY:
            self.snapshot = (iteration, _to_cpu(model.state_dict()),
                             _to_cpu(optimizer.state_dict()))
            self.taken = time.monotonic()

    def forget_best(self) -> None:
        """After a rollback the best point is the snapshot's; the loss climbs back to it."""
        self.best, self.halvings = [math.inf, math.inf], self.halvings + 1
        self.taken = -math.inf
