"""What the trainer does when a step goes wrong: CUDA out of memory (a smaller batch), an fp16
overflow or a non-finite loss (the step does not count; after a few in a row, the last
checkpoint), a finite divergence (back to the last good state at half the learning rate).

A mixin of `Trainer` (train.trainer), which holds the state these methods read and change.
"""
from __future__ import annotations

import dataclasses
import time

from localswap.errors import UserError
from localswap.train import checkpoint
from localswap.train.divergence import MAX_HALVINGS
from localswap.train.step import restore_optimizer

NAN_RETRIES = 3         # consecutive non-finite steps before reloading the last checkpoint
NAN_RELOADS = 3         # reloads before giving up
OVERFLOWS = 40          # fp16 overflows in a row (scale 2^16 -> 2^-24) before that is "bad"


class Recovery:
    """Trainer's handling of bad steps."""

    def on_oom(self, old: int, new: int) -> None:
        if self.d.on:
            raise UserError(f"out of GPU memory at batch {old} with {self.d.world} processes: "
                            f"restart with --batch {new}")
        self.note(f"out of GPU memory at batch {old}: continuing with batch {new}")

    def counted(self, result) -> bool:
        """Whether the step made an iteration. An fp16 overflow (GradScaler lowered its scale
        and skipped the update) is not one; nor is a non-finite loss or gradient, and after a
        few in a row the last checkpoint is reloaded."""
        if result.overflow and self.overflows < OVERFLOWS:
            self.overflows, self.attempt = self.overflows + 1, self.attempt + 1
            return False
        if not result.applied:
            self.bad, self.attempt = self.bad + 1, self.attempt + 1
            self.note(f"iteration {self.it + 1}: loss not finite (A {result.loss_a}, B "
                      f"{result.loss_b}); step skipped")
            if self.bad >= NAN_RETRIES:
                self.reloads += 1
                if self.reloads > NAN_RELOADS:
                    raise UserError("training diverged: the loss keeps becoming NaN/inf; lower "
                                    "--lr, set --clip-grad 1 or use --precision fp32")
                self.it = self.restore(checkpoint.load(self.model_dir))
                self.note(f"reloaded the last checkpoint (iteration {self.it}) after "
                          f"{self.bad} bad steps")
                self.bad, self.overflows = 0, 0
                self.restart_clock()
            return False
        self.bad, self.attempt, self.overflows = 0, 0, 0
        self.it += 1
        self.la, self.lb = result.loss_a, result.loss_b
        self.state.add(self.la, self.lb)
        self.times.append((time.monotonic(), self.it))
        while len(self.times) > 50 and self.times[-1][0] - self.times[0][0] > 60:
            self.times.popleft()
        return True

    def rolled_back(self, point: list) -> bool:
        """Finite divergence (train.divergence): back to the last good state in memory, at half
        the learning rate. Not under DDP, where only rank 0 keeps the history."""
        guard, losses = self.guard, point[1:3]
        if self.d.on:
            return False
        if not guard.diverged(losses):
            guard.keep(self.it, self.model, self.optimizer)
            return False
        if guard.halvings >= MAX_HALVINGS:
            raise UserError(f"training diverged again at learning rate {self.settings.lr:.2g} "
                            f"(loss A {losses[0]:.3f} B {losses[1]:.3f}, best "
                            f"{guard.best[0]:.3f} / {guard.best[1]:.3f}): lower --lr further "
                            "or set --clip-grad 1")
        it, model_state, optimizer_state = guard.snapshot
        self.model.load_state_dict(model_state)
        restore_optimizer(self.optimizer, optimizer_state)
        lr = self.settings.lr / 2
        self.note(f"training diverged at iteration {self.it} (loss A {losses[0]:.3f} B "
                  f"{losses[1]:.3f} against bests of {guard.best[0]:.3f} / {guard.best[1]:.3f}):"
                  f" back to iteration {it}, learning rate halved to {lr:.2g}")
        self.settings = dataclasses.replace(self.settings, lr=lr)
        self.state.history = [h for h in self.state.history if h[0] <= it]
        self.state.window, self.it = [0.0, 0.0, 0], it
        guard.forget_best()
        self.restart_clock()
        return True

    def restart_clock(self) -> None:
        """After going back to an earlier iteration the it/s window starts again there."""
        self.times.clear()
        self.times.append((time.monotonic(), self.it))
