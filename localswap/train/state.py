"""What a training run carries from checkpoint to checkpoint (`TrainState`, saved in every
manifest and restored on resume) and what it returns (`TrainResult`)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field


@dataclass
class TrainResult:
    model_dir: str
    iteration: int
    start_iteration: int
    target: int
    stopped: str                 # target | time | cancel | plateau | done (already there)
    loss_a: float | None = None
    loss_b: float | None = None
    seconds: float = 0.0
    it_s: float = 0.0
    eg_s: float = 0.0
    batch: int = 0
    preview: str | None = None
    plateau: dict | None = None
    plan: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    disturbed: bool = False      # other work shared the CPU: it_s is not this machine's speed

    def to_dict(self) -> dict:
        return asdict(self)

    def report(self) -> str:
        lines = [f"model {self.model_dir}: iteration {self.iteration} of {self.target} "
                 f"(stopped: {self.stopped})"]
        if self.loss_a is not None:
            lines.append(f"loss A {self.loss_a:.4f}  loss B {self.loss_b:.4f}  "
                         f"{self.it_s:.2f} it/s  {self.eg_s:.1f} faces/s  batch {self.batch}")
        if self.preview:
            lines.append(f"preview {self.preview}")
        return "\n".join(lines + self.notes)



def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class TrainState:
    """What a checkpoint's manifest carries besides the model's identity: it is saved with
    every checkpoint and restored on resume (the manifest keys are these field names, with
    `history` stored as "loss_history")."""
    history: list = field(default_factory=list)     # [iteration, loss A, loss B] per K its
    window: list = field(default_factory=lambda: [0.0, 0.0, 0])   # sums since the last point
    since_save: list = field(default_factory=lambda: [0.0, 0])    # loss sum, steps since save
    best_loss: float = math.inf
    elapsed_s: float = 0.0      # training time before this run
    created: str = field(default_factory=now)
    init_from: dict | None = None
    ddp: dict | None = None

    @classmethod
    def from_manifest(cls, m: dict, init_from: dict | None) -> TrainState:
        return cls(history=[list(h) for h in m.get("loss_history", [])],
                   window=list(m.get("window", [0.0, 0.0, 0])),
                   since_save=list(m.get("since_save", [0.0, 0])),
                   best_loss=float(m.get("best_loss", math.inf)),
                   elapsed_s=float(m.get("elapsed_s", 0.0)), created=m.get("created", ""),
                   init_from=init_from)

    def add(self, la: float, lb: float) -> None:
        """Count one applied step's losses."""
        self.window = [self.window[0] + la, self.window[1] + lb, self.window[2] + 1]
        self.since_save = [self.since_save[0] + la + lb, self.since_save[1] + 1]

    def history_point(self, it: int) -> None:
        wa, wb, wn = self.window
        self.history.append([it, wa / wn, wb / wn])
        self.window = [0.0, 0.0, 0]

    def saved(self) -> bool:
        """A save happens now: True (and a new best) when the loss since the last save
        improved on the best so far."""
        total, n = self.since_save
        avg = total / n if n else math.inf
        improved = avg < self.best_loss
        if improved:
            self.best_loss = avg
        self.since_save = [0.0, 0]
        return improved
