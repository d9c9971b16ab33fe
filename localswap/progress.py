"""The progress callback every stage takes: progress(done, total, message, **info).

`info` carries stage-specific figures (losses, it/s, preview path) for the job runner and UI.
"""
from __future__ import annotations

import math
from typing import Any, Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, message: str = "", **info: Any) -> None: ...


def no_progress(done: int, total: int, message: str = "", **info: Any) -> None:
    """The default when a caller does not watch."""


def plural(n: int, word: str) -> str:
    """'1 frame', '2 frames', '0 faces': a count with its noun."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def duration_text(seconds: float | None) -> str:
    """A duration in words, the one format of the CLI, the job log, the app and model cards:
    '4.2 s', '42 s', '3 min 05 s', '1 h 02 min'; '—' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TqdmProgress:
    """Drives a tqdm bar from progress calls (the CLI's view). Training reports where its run
    started (info run_from: a continued model's iteration): the bar counts this run from
    there, so its share, rate and ETA describe this run, and its text names the model's
    iteration ('iteration 285 of 578')."""

    def __init__(self, desc: str = "", unit: str = "it"):
        from tqdm import tqdm
        self._bar = tqdm(total=0, desc=desc, unit=unit, dynamic_ncols=True)
        self._from: int | None = None

    def __call__(self, done: int, total: int, message: str = "", **info: Any) -> None:
        start = info.get("run_from")
        if isinstance(start, int) and start != self._from:
            self._from = start          # the clock restarts too: the rate is this run's
            self._bar.reset(total=max(0, total - start) if total else self._bar.total)
        offset = self._from or 0
        if total and self._bar.total != total - offset:
            self._bar.total = max(0, total - offset)
        self._bar.n = max(0, done - offset)
        if offset:
            message = f"iteration {done:,}" + (f" of {total:,}" if total else "") + \
                (f", {message}" if message else "")
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
