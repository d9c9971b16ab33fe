"""What the trainer shows and keeps after each iteration: the loss history and plateau fit,
preview images, autosaves, and the progress event (it/s, ETA, share done).

A mixin of `Trainer` (train.trainer), which holds the state these methods read and change.
"""
from __future__ import annotations

import time

from localswap.progress import duration_text
from localswap.train.plateau import fit_decay
from localswap.train.preview import preview_rows, write_preview
from localswap.train.step import DTYPES


class Reporting:
    """Trainer's per-iteration reporting (rank 0 only)."""

    def write_a_preview(self, iteration: int) -> str:
        rows = preview_rows(self.model, self.preview_a, self.preview_b,
                            DTYPES[self.plan.precision])
        return str(write_preview(self.model_dir, iteration, rows))

    def report_and_save(self) -> None:
        """Rank 0 after an iteration: history point and plateau fit every K iterations; a
        preview then too, and at least every `preview_seconds` (a slow model shows its first
        one within half a minute); autosave every N iterations and every M minutes; progress."""
        settings, it = self.settings, self.it
        if it % settings.preview_every == 0:
            self.state.history_point(it)
            if self.rolled_back(self.state.history[-1]):
                return
            h = self.state.history
            self.fit = fit_decay([p[0] for p in h], [p[1] + p[2] for p in h])
        if it % settings.preview_every == 0 or (
                settings.preview_seconds
                and time.monotonic() - self.last_preview >= settings.preview_seconds):
            self.preview_path = self.write_a_preview(it)
            self.last_preview = time.monotonic()
        minutes = (time.monotonic() - self.last_save) / 60
        if it % settings.save_every == 0 or (settings.save_minutes
                                             and minutes >= settings.save_minutes):
            self.save(it)
            self.last_save = time.monotonic()
        (t_old, i_old), (t_new, i_new) = self.times[0], self.times[-1]
        it_s = (i_new - i_old) / (t_new - t_old) if t_new > t_old else 0.0
        eta = (settings.iterations - it) / it_s if it_s else None
        if settings.max_minutes:        # a time budget ends the run first when it is shorter
            left = max(0.0, settings.max_minutes * 60 - (time.monotonic() - self.t0))
            eta = left if eta is None else min(eta, left)
        fit = self.fit
        message = f"loss A {self.la:.4f} B {self.lb:.4f}"
        if not self.total and eta is not None:     # the bar shows no ETA without a total
            message += f", {duration_text(eta)} left"
        self.progress(it, self.total, message,
                      event="step", iteration=it, loss_a=self.la, loss_b=self.lb,
                      it_s=round(it_s, 3), eg_s=round(it_s * 2 * self.batch * self.d.world, 2),
                      eta=round(eta, 2) if eta is not None else None,
                      fraction=self.done_share(it), run_from=self.start_it,
                      batch=self.batch, preview=self.preview_path,
                      cpu_threads=self.tuner.current if self.tuner is not None else None,
                      plateau=fit.describe() if fit else None,
                      plateau_remaining=fit.remaining if fit else None)

    def done_share(self, it: int) -> float | None:
        """The run's share done when a time budget may end it (the bar of a time-only run
        stayed at 0%; Basic's 20-minute limit can end it before its iterations): the
        schedule's progress, iterations or minutes, whichever is further."""
        if not self.settings.max_minutes:
            return None
        # This run's share: a continued model counts from where it resumed, not from 0.
        left = self.settings.iterations - self.start_it
        f = (it - self.start_it) / left if left > 0 else 0.0
        f = max(f, (time.monotonic() - self.t0) / (self.settings.max_minutes * 60))
        return round(min(1.0, max(0.0, f)), 4)
