"""Train a face-swap model: faceset A (the target, whose face is replaced) and faceset B (the
source identity). Read this file top to bottom: `train()` makes a `Trainer`, whose `run()`
sets up (what to train, the data, the model), runs one loop, and wraps up.

`--iterations N` is the model's target total: a new model trains to N; a model dir already at
k < N continues from k with its optimizer moments and loss history; k >= N does nothing.
Architecture, resolution and width are fixed when the model is created (localswap.train.spec).
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from localswap import __version__, gpu
from localswap.train import detail_bank
from localswap.errors import DiskFullError, UserError, is_disk_full
from localswap.faces.faceset import Faceset
from localswap.train import init_from
from localswap.train.any_target import people_of
from localswap.train.manifest import BACKUP_DIR, find_manifest
from localswap.progress import Progress, no_progress
from localswap.settings import TrainSettings
from localswap.system.threads import ThreadTuner
from localswap.train import budget, checkpoint, distributed, schedule, spec
from localswap.train.augment import AugmentSettings
from localswap.train.data import FaceData
from localswap.train.divergence import DivergenceGuard
from localswap.train.models import build_model
from localswap.train.recovery import Recovery
from localswap.train.reporting import Reporting
from localswap.train.state import TrainResult, TrainState, now
from localswap.train.step import Step, make_optimizer, restore_optimizer, \
    run_with_oom_retry
from localswap.workspace import remove_temp_files

PREVIEW_FACES = 6


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def _step_seed(seed: int, rank: int, iteration: int, attempt: int) -> int:
    """Every random draw of a step follows from this, so a resumed run replays exactly."""
    return ((seed * 1_000_003 + iteration) * 64 + rank * 8 + attempt) % (1 << 62)


def train(source: str | Path, target: str | Path, model_dir: str | Path,
          settings: TrainSettings | None = None, progress: Progress = no_progress,
          cancel: threading.Event | Callable[[], bool] | None = None,
          basic: bool | None = None) -> TrainResult:
    """`basic`: the run is Basic (the planner sizes the model by time too); None = when the
    settings fix neither iterations nor a time budget (a swap job resolves them earlier and
    says so)."""
    settings = (settings or TrainSettings()).validate()
    model_dir = Path(model_dir)
    d = distributed.setup(settings.device)
    basic = budget.is_basic(settings) if basic is None else basic
    settings = budget.resolve(settings, d.device.type)     # Basic: iterations 0 -> the bar's
    threads = torch.get_num_threads()
    try:
        return Trainer(Path(source), Path(target), model_dir, settings, progress, cancel,
                       d, basic=basic).run()
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        kept = (find_manifest(model_dir) or {}).get("iteration")
        raise DiskFullError(
            f"disk full while training {model_dir}: free some space and train again; "
            + (f"it continues from the last checkpoint (iteration {kept})"
               if kept is not None else "nothing was saved yet")) from exc
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(d)
        gpu.release_cached_memory()     # the next job's plan must see this memory free




class Trainer(Recovery, Reporting):
    """One training run. `run()` reads top to bottom: what to train, the data, the model,
    the loop, the wrap-up. Every rank of a torchrun runs one; only rank 0 (`d.main`) writes.
    What goes wrong in a step is handled in train.recovery, what is shown after one in
    train.reporting."""

    def __init__(self, source: Path, target: Path, model_dir: Path, settings: TrainSettings,
                 progress: Progress, cancel, d: distributed.Dist, basic: bool = False):
        self.source, self.target, self.model_dir = source, target, model_dir
        self.basic = basic
        self.settings, self.progress, self.cancel, self.d = settings, progress, cancel, d
        self.notes: list[str] = []
        self.it = 0                 # the model's iteration

    @property
    def total(self) -> int:
        """The iterations to show as the end; 0 when a time budget alone ends the run (the
        bar read "388/100000000" and an ETA of 6,236 hours)."""
        return self.settings.iterations if self.settings.iterations < budget.UNLIMITED else 0

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self.d.main:
            self.progress(self.it, self.total, text, event="note")

    def run(self) -> TrainResult:
        done = self.choose_model()
        if done is not None:
            return done
        self.load_data()
        self.build_model()
        self.start()
        self.loop()
        return self.finish()

    # -- 1. what to train: the existing model's settings, or a plan for this device ----------
    def choose_model(self) -> TrainResult | None:
        settings, d, model_dir = self.settings, self.d, self.model_dir
        fs_a, fs_b = Faceset.load(self.target), Faceset.load(self.source)
        if d.main:      # a save cut off by a kill leaves hidden temp files; this run owns the dir
            for folder in (model_dir, model_dir / BACKUP_DIR):
                if folder.is_dir():
                    remove_temp_files(folder)
        if fs_a.face_type != fs_b.face_type:
            raise UserError(f"the facesets hold different face types ({fs_a.face_type} in "
                            f"{self.target}, {fs_b.face_type} in {self.source}): extract both "
                            "the same way")
        manifest = find_manifest(model_dir) if checkpoint.exists(model_dir) else None
        if manifest is None and checkpoint.exists(model_dir):
            raise UserError(f"{model_dir} holds model files but no readable manifest.json; "
                            "train into another folder (nothing there was changed)")
        self.manifest, self.face_type, self.init = manifest, fs_a.face_type, None
        self.targets = people_of(fs_a)          # several people: a model for any target
        if manifest:
            fixed = spec.check_immutable(settings, manifest, model_dir)
            if manifest.get("face_type") != fs_a.face_type:
                raise UserError(f"{model_dir} was trained on {manifest.get('face_type')} "
                                f"faces; these facesets hold {fs_a.face_type} faces")
            self.it = int(manifest.get("iteration", 0))
            if self.it >= settings.iterations:
                return TrainResult(str(model_dir), self.it, self.it, settings.iterations,
                                   "done", notes=[f"the model is already at iteration "
                                                  f"{self.it}: raise --iterations to train "
                                                  "it further"])
        else:
            fixed = spec.asked_for(settings)
            if settings.init_from:       # a new model starting from a trained one's weights
                self.init = init_from.resolve(settings, model_dir, fs_a.face_type)
                fixed = self.init.fixed
        crop = min(fs_a.size, fs_b.size)
        plan = spec.plan_for(settings, d, fixed, len(fs_a) + len(fs_b), crop, self.basic)
        if manifest and not settings.batch:
            plan.batch = int(manifest.get("batch") or plan.batch)   # keep an OOM-halved batch
        self.plan, self.batch = plan, plan.batch
        self.kind = spec.kind_of(manifest or (self.init.manifest if self.init else None),
                                 settings, plan.arch)
        if not settings.lr:      # auto: what the model was created with, else by its size
            lr = float((manifest or {}).get("lr") or 0) or schedule.auto_lr(plan.resolution)
            self.settings = dataclasses.replace(settings, lr=lr)
        if d.main:
            self.note(f"plan: {plan.describe()}")
        if plan.resolution > crop:
            self.note(f"the faces are {crop} px, smaller than the model's {plan.resolution} "
                      "px: extract at a larger --size for sharper results")
        return None

    # -- 2. data: both facesets as uint8 tensors (rank 0 builds the caches first) ------------
    def load_data(self) -> None:
        d, plan = self.d, self.plan
        self.device = d.device
        if plan.device == "cpu" and self.device.type == "cuda":
            if d.on:     # the ranks are joined by NCCL, which cannot carry CPU tensors
                raise UserError(f"{plan.note}; with torchrun every GPU needs room for the "
                                "model: start fewer processes, or train on the CPU with "
                                "--device cpu")
            self.device = torch.device("cpu")
        if not d.main:
            distributed.barrier(d, slow=True)
        filled = self.kind.filled
        self.data_a = FaceData(self.target, plan.resolution, self.device, plan.data_on_device,
                               filled)
        self.data_b = FaceData(self.source, plan.resolution, self.device, plan.data_on_device,
                               filled)
        if d.main:
            distributed.barrier(d, slow=True)
            self.note(self.data_a.note)
            self.note(self.data_b.note)

    # -- 3. model and optimizer, fresh or restored --------------------------------------------
    def build_model(self) -> None:
        settings, plan, device, init = self.settings, self.plan, self.device, self.init
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.model = build_model(plan.arch, plan.resolution, plan.width,
                                     guided=self.kind.guided, hides=self.kind.hides).to(device)
        if init is not None:
            init.load_into(self.model)
            self.note(f"starting from {init.path.name} (iteration {init.record['iteration']}); "
                      "it is left as it was")
        self.optimizer = make_optimizer(self.model, settings.lr)
        self.state = TrainState(
            init_from=init.record if init else (self.manifest or {}).get("init_from"))
        train_model = self.model
        if self.d.on:
            train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.aug = AugmentSettings(warp=AugmentSettings.warp if settings.warp else 0.0,
                                   flip=settings.flip)
        self.sharp = dataclasses.replace(self.aug, warp=0.0)
        self.step = Step(train_model, self.optimizer, self.data_a, self.data_b, device,
                         plan.precision, self.aug, settings.eyes_mouth_weight,
                         settings.clip_grad, settings.color_match == "rct")

    def restore(self, loaded: checkpoint.Loaded) -> int:
        """Weights, optimizer and TrainState from a checkpoint; returns its iteration."""
        plan = self.plan
        try:
            self.model.load_state_dict(loaded.model)
        except RuntimeError as exc:
            raise UserError(f"{self.model_dir}: the stored weights do not fit a {plan.arch} "
                            f"{plan.resolution} px width {plan.width} model "
                            f"({str(exc).splitlines()[0][:160]})") from exc
        if loaded.optimizer is not None:
            restore_optimizer(self.optimizer, loaded.optimizer)
        else:
            # as DeepFaceLab does when its optimizer files are gone
            self.note("the model has no saved training state (it was exported for rendering "
                      "or imported without it): training goes on from its weights with that "
                      "state started afresh, so the loss rises for a while before it falls")
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr                     # the learning rate may change
        m = loaded.manifest
        self.state = TrainState.from_manifest(m, self.state.init_from)
        if m.get("scaler") and self.step.scaler.is_enabled():
            self.step.scaler.load_state_dict(m["scaler"])
        if loaded.from_backup:
            self.note("the main checkpoint is damaged (" + "; ".join(loaded.problems) +
                      f"): continuing from the backup at iteration {m['iteration']}")
        return int(m["iteration"])

    def manifest_now(self, iteration: int) -> dict:
        plan, state, d, step = self.plan, self.state, self.d, self.step
        settings, data_a, data_b = self.settings, self.data_a, self.data_b
        return {
            "version": __version__, "arch": plan.arch, "resolution": plan.resolution,
            "width": plan.width, "face_type": self.face_type,
            "learns_mask": self.model.learns_mask, "guided": self.model.guided,
            "guide_hides": self.model.hides,
            "guide_map": "filled" if self.kind.filled else "lines",
            "expression": {"a": data_a.expression, "b": data_b.expression},
            "iteration": iteration, "elapsed_s": state.elapsed_s + (time.monotonic() - self.t0),
            "loss_history": state.history, "window": state.window,
            "since_save": state.since_save, "best_loss": state.best_loss,
            "source": data_b.name, "target": data_a.name,
            "facesets": {"source": {"path": str(self.source), "faces": data_b.real},
                         "target": {"path": str(self.target), "faces": data_a.real}},
            "batch": self.batch, "precision": plan.precision, "lr": settings.lr,
            "seed": settings.seed, "plan": plan.to_dict(), "device": str(self.device),
            "world_size": d.world,
            "scaler": step.scaler.state_dict() if step.scaler.is_enabled() else None,
            "created": state.created, "saved": now(),
            "ddp": state.ddp, "init_from": state.init_from,
            "targets": self.targets, "any_target": len(self.targets) > 1}

    def save(self, iteration: int) -> None:
        improved = self.state.saved()
        checkpoint.save(self.model_dir, self.model, self.optimizer, self.manifest_now(iteration),
                        backup=improved)
        self.progress(iteration, self.total,
                      f"saved the model at iteration {iteration}"
                      + (" (new best: backup kept)" if improved else ""), event="save",
                      iteration=iteration, backup=improved)

    def start(self) -> None:
        """Resume from the checkpoint, or write iteration 0 so the model dir exists from the
        start and a state to fall back to."""
        self.t0 = time.monotonic()
        if self.manifest:
            self.it = self.restore(checkpoint.load(self.model_dir))
        elif self.d.main:
            self.save(0)
        if self.d.main and not (self.model_dir / detail_bank.BANK_DIR).is_dir():
            # the source's sharp crops go with the model (read back by convert.detail)
            try:
                detail_bank.write_bank(self.source, self.model_dir)
            except (OSError, ValueError) as exc:    # the render then goes without the detail
                self.note(f"the source's detail crops were not kept ({exc})")
        self.start_it = self.it
        if self.d.main:
            self.progress(self.it, self.total, f"training from iteration {self.it}",
                          iteration=self.it, batch=self.batch, run_from=self.it)
        self.preview_a = self.data_a.first(PREVIEW_FACES)
        self.preview_b = self.data_b.first(PREVIEW_FACES)
        # (time, iteration) over the last minute (at least 50 steps): the it/s and the live ETA
        # follow the machine's speed without swinging with every slow step.
        self.times = collections.deque(maxlen=20_000)
        self.times.append((time.monotonic(), self.it))
        self.last_save = self.last_preview = time.monotonic()
        self.preview_path, self.fit, self.stopped = None, None, "target"
        self.bad, self.attempt, self.reloads, self.overflows = 0, 0, 0, 0
        self.guard = DivergenceGuard()
        self.la = self.lb = None
        # On a CPU: as many threads as cores are free, re-checked as neighbours come and go
        # (train() puts the process's thread count back afterwards).
        self.tuner = ThreadTuner() if self.device.type == "cpu" else None
        if self.tuner is not None and self.d.main:
            self.note(f"CPU threads: {self.tuner.threads} of {self.tuner.most} (the cores free "
                      "now; adjusted while training by measured step time)")

    # -- 4. the loop ---------------------------------------------------------------------------
    def loop(self) -> None:
        while True:
            # Stop? Every rank must agree, or DDP would wait forever for the one that left.
            reason = self.stop_reason()
            if distributed.any_rank(reason is not None, self.d):
                self.stopped = reason or "cancel"
                return
            result = self.one_step()
            if not self.counted(result):
                continue
            if self.d.main:
                self.report_and_save()

    def stop_reason(self) -> str | None:
        settings, fit = self.settings, self.fit
        if self.it >= settings.iterations:
            return "target"
        if _cancelled(self.cancel):
            return "cancel"
        if settings.max_minutes and time.monotonic() - self.t0 >= settings.max_minutes * 60:
            return "time"
        if fit is not None and settings.plateau and fit.remaining < settings.plateau:
            return "plateau"
        return None

    def one_step(self):
        """The recipe at this point of the run (learning rate; warp unless sharpening), then
        one step, halving the batch on CUDA out-of-memory."""
        settings = self.settings
        f = schedule.progress(settings, self.it, time.monotonic() - self.t0)
        for group in self.optimizer.param_groups:
            group["lr"] = schedule.learning_rate(settings, self.it, f)
        self.step.aug = self.aug if schedule.warp_on(settings, f) else self.sharp
        started = time.perf_counter()
        result, self.batch = run_with_oom_retry(
            self.step, self.batch, _step_seed(settings.seed, self.d.rank, self.it, self.attempt),
            self.on_oom, self.optimizer)
        if self.tuner is not None:
            self.tuner.step_done(time.perf_counter() - started)
        return result

    # -- 5. wrap up: a last checkpoint and preview, and (DDP) proof that the ranks agree -------
    def finish(self) -> TrainResult:
        d, it, fit, tuner = self.d, self.it, self.fit, self.tuner
        seconds = time.monotonic() - self.t0
        if d.on:
            digests = distributed.gather_digests(self.model, d)
            self.state.ddp = {"world_size": d.world, "weight_digests": digests,
                              "ranks_agree": len(set(digests)) == 1}
        if d.main and it > self.start_it:
            if not self.preview_path or not self.preview_path.endswith(f"{it:08d}.png"):
                self.preview_path = self.write_a_preview(it)
            self.save(it)
        its = (it - self.start_it) / seconds if seconds > 0 else 0.0
        if self.stopped == "plateau" and fit:
            self.note(f"stopped on the plateau rule: {fit.describe()}")
        if self.stopped == "time" and self.total:     # Basic's limit on a slow machine
            self.note(f"the {self.settings.max_minutes:g}-minute limit ended training at "
                      f"iteration {it:,} of {self.total:,}")
        if tuner is not None and tuner.changes and d.main:
            self.note(f"CPU threads: ended with {tuner.threads} after {tuner.changes} "
                      "change(s) as the machine's load moved")
        return TrainResult(str(self.model_dir), it, self.start_it, self.settings.iterations,
                           self.stopped, self.la, self.lb, round(seconds, 2), round(its, 3),
                           round(its * 2 * self.batch * d.world, 2), self.batch,
                           self.preview_path, fit.to_dict() if fit else None,
                           self.plan.to_dict(), self.notes,
                           disturbed=tuner is not None and tuner.disturbed)
