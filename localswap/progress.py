"""The progress callback every stage takes: progress(done, total, message, **info).

`info` carries stage-specific figures (losses, it/s, preview path) for the job runner and UI.
"""
from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, message: str = "", **info: Any) -> None: ...


def no_progress(done: int, total: int, message: str = "", **info: Any) -> None:
    """The default when a caller does not watch."""


class TqdmProgress:
    """Drives a tqdm bar from progress calls (the CLI's view)."""

    def __init__(self, desc: str = "", unit: str = "it"):
        from tqdm import tqdm
        self._bar = tqdm(total=0, desc=desc, unit=unit, dynamic_ncols=True)

    def __call__(self, done: int, total: int, message: str = "", **info: Any) -> None:
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
