"""Train a face-swap model: faceset A (the target, whose face is replaced) and faceset B (the
source identity). Read this file top to bottom: set up, then one loop.

`--iterations N` is the model's target total: a new model trains to N; a model dir already at
k < N continues from k with its optimizer moments and loss history; k >= N does nothing.
Architecture, resolution and width are fixed when the model is created.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from localswap import __version__, gpu
from localswap.system import cuda_support
from localswap.errors import DiskFullError, UserError, is_disk_full
from localswap.faces.faceset import Faceset
from localswap.progress import Progress, no_progress
from localswap.system.threads import ThreadTuner
from localswap.settings import TrainSettings
from localswap.train import budget, checkpoint, distributed, planner, schedule
from localswap.train.augment import AugmentSettings
from localswap.train.data import FaceData
from localswap.train.models import build_model
from localswap.models import init_from
from localswap.models.any_target import people_of
from localswap.train.plateau import fit_decay
from localswap.train.preview import preview_rows, write_preview
from localswap.train.step import DTYPES, Step, make_optimizer, restore_optimizer, \
    run_with_oom_retry
from localswap.workspace import remove_temp_files

IMMUTABLE = ("arch", "resolution", "width")
PREVIEW_FACES = 6
NAN_RETRIES = 3         # consecutive non-finite steps before reloading the last checkpoint
NAN_RELOADS = 3         # reloads before giving up
OVERFLOWS = 40          # fp16 overflows in a row (scale 2^16 -> 2^-24) before that is "bad"


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


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def _step_seed(seed: int, rank: int, iteration: int, attempt: int) -> int:
    """Every random draw of a step follows from this, so a resumed run replays exactly."""
    return ((seed * 1_000_003 + iteration) * 64 + rank * 8 + attempt) % (1 << 62)


def _plan(settings: TrainSettings, d: distributed.Dist, fixed: dict, faces: int,
          crop: int) -> planner.Plan:
    """The plan for this device from torch's own figures (NVML lists GPUs in another order);
    under torchrun rank 0 plans for the weakest card and every rank takes that plan."""
    if d.device.type == "cuda":
        info = gpu.torch_device_info(d.device.index or 0)
        problem = cuda_support.kernel_problem(info.name, info.compute_capability,
                                              torch.cuda.get_arch_list(), torch.version.cuda)
        if problem and settings.device == "cuda":
            raise UserError(problem)
        if problem:
            info = gpu.Probe(note=problem)
    elif settings.device == "cpu":
        info = gpu.Probe(note="--device cpu")
    else:
        info = gpu.Probe(note=gpu.probe().note or "torch finds no CUDA GPU")
    if d.on:
        infos = distributed.gather_objects(info, d)
        cards = [i for i in infos if isinstance(i, gpu.DeviceInfo)]
        info = gpu.weakest(cards) if len(cards) == len(infos) else \
            next(i for i in infos if isinstance(i, gpu.Probe))
    cpu_prec = "bf16" if gpu.cpu_has_native_bf16() else "fp32"
    plan = None
    if d.main:
        plan = planner.plan(info, arch=fixed.get("arch", "auto"),
                        resolution=fixed.get("resolution", 0), width=fixed.get("width", 0),
                        batch=settings.batch, precision=settings.precision, faces=faces,
                        max_resolution=crop, cpu_precision=cpu_prec, world=d.world)
    return distributed.from_rank0(plan, d)


def asked_otherwise(settings: TrainSettings, fixed: dict) -> tuple[str, object] | None:
    """The first of arch/resolution/width the settings ask for that differs from `fixed`
    (a model's), as (name, asked value); None when all are left to the model."""
    for key in IMMUTABLE:
        asked = getattr(settings, key)
        if asked not in ("auto", 0) and asked != fixed[key]:
            return key, asked
    return None


def _check_immutable(settings: TrainSettings, manifest: dict, model_dir: Path) -> dict:
    manifest.setdefault("width", checkpoint.stored_width(model_dir))
    if any(manifest.get(k) is None for k in IMMUTABLE):
        raise UserError(f"{model_dir}: manifest.json does not say the model's architecture, "
                        "resolution and width; train a new model in another folder")
    fixed = {k: manifest[k] for k in IMMUTABLE}
    if (clash := asked_otherwise(settings, fixed)) is not None:
        key, asked = clash
        raise UserError(
            f"{model_dir} holds a {manifest['arch']} model at {manifest['resolution']} px, "
            f"width {manifest['width']}; --{key} {asked} cannot change once a model exists: "
            f"leave --{key} out to continue it, or train a new model in another folder")
    return fixed


def train(source: str | Path, target: str | Path, model_dir: str | Path,
          settings: TrainSettings | None = None, progress: Progress = no_progress,
          cancel: threading.Event | Callable[[], bool] | None = None) -> TrainResult:
    settings = (settings or TrainSettings()).validate()
    model_dir = Path(model_dir)
    d = distributed.setup(settings.device)
    settings = budget.resolve(settings, d.device.type)     # Basic: iterations 0 -> the bar's
    threads = torch.get_num_threads()
    try:
        return _train(Path(source), Path(target), model_dir, settings, progress, cancel, d)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        kept = (checkpoint.read_manifest(model_dir) or {}).get("iteration")
        raise DiskFullError(
            f"disk full while training {model_dir}: free some space and train again; "
            + (f"it continues from the last checkpoint (iteration {kept})"
               if kept is not None else "nothing was saved yet")) from exc
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(d)
        gpu.release_cached_memory()     # the next job's plan must see this memory free


def _train(source, target, model_dir, settings, progress, cancel, d) -> TrainResult:
    notes: list[str] = []
    it = 0

    def note(text: str) -> None:
        notes.append(text)
        if d.main:
            progress(it, settings.iterations, text, event="note")

    # -- 1. what to train: the existing model's settings, or a plan for this device ----------
    fs_a, fs_b = Faceset.load(target), Faceset.load(source)
    if d.main:      # a save cut off by a kill leaves hidden temp files; this run owns the dir
        for folder in (model_dir, model_dir / checkpoint.BACKUP):
            if folder.is_dir():
                remove_temp_files(folder)
    if fs_a.face_type != fs_b.face_type:
        raise UserError(f"the facesets hold different face types ({fs_a.face_type} in "
                        f"{target}, {fs_b.face_type} in {source}): extract both the same way")
    manifest = checkpoint.read_manifest(model_dir) if checkpoint.exists(model_dir) else None
    if manifest is None and checkpoint.exists(model_dir):
        raise UserError(f"{model_dir} holds model files but no readable manifest.json; train "
                        "into another folder (nothing there was changed)")
    fixed, init = {}, None
    targets = people_of(fs_a)          # several people: a model for any target
    if manifest:
        fixed = _check_immutable(settings, manifest, model_dir)
        if manifest.get("face_type") != fs_a.face_type:
            raise UserError(f"{model_dir} was trained on {manifest.get('face_type')} faces; "
                            f"these facesets hold {fs_a.face_type} faces")
        it = int(manifest.get("iteration", 0))
        if it >= settings.iterations:
            return TrainResult(str(model_dir), it, it, settings.iterations, "done",
                               notes=[f"the model is already at iteration {it}: raise "
                                      "--iterations to train it further"])
    else:
        fixed = {k: getattr(settings, k) for k in IMMUTABLE
                 if getattr(settings, k) not in ("auto", 0)}
        if settings.init_from:       # a new model starting from a trained one's weights
            init = init_from.resolve(settings, model_dir, fs_a.face_type)
            fixed = init.fixed
    plan = _plan(settings, d, fixed, len(fs_a) + len(fs_b), min(fs_a.size, fs_b.size))
    if manifest and not settings.batch:
        plan.batch = int(manifest.get("batch") or plan.batch)   # keep an OOM-halved batch
    arch, res, width = plan.arch, plan.resolution, plan.width
    if d.main:
        note(f"plan: {plan.describe()}")
    if res > min(fs_a.size, fs_b.size):
        note(f"the faces are {min(fs_a.size, fs_b.size)} px, smaller than the model's {res} "
             "px: extract at a larger --size for sharper results")

    # -- 2. data: both facesets as uint8 tensors (rank 0 builds the caches first) ------------
    device = d.device
    if plan.device == "cpu" and device.type == "cuda":
        if d.on:     # the ranks are joined by NCCL, which cannot carry CPU tensors
            raise UserError(f"{plan.note}; with torchrun every GPU needs room for the model: "
                            "start fewer processes, or train on the CPU with --device cpu")
        device = torch.device("cpu")
    if not d.main:
        distributed.barrier(d, slow=True)
    data_a = FaceData(target, res, device, plan.data_on_device)
    data_b = FaceData(source, res, device, plan.data_on_device)
    if d.main:
        distributed.barrier(d, slow=True)
        note(data_a.note)
        note(data_b.note)

    # -- 3. model and optimizer, fresh or restored --------------------------------------------
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build_model(arch, res, width).to(device)
    if init is not None:
        init.load_into(model)
        note(f"starting from {init.path.name} (iteration {init.record['iteration']}); "
             "it is left as it was")
    optimizer = make_optimizer(model, settings.lr)
    state = dict(history=[], window=[0.0, 0.0, 0], since_save=[0.0, 0], best_loss=math.inf,
                 elapsed_s=0.0, created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                 init_from=init.record if init else (manifest or {}).get("init_from"))

    def restore(loaded: checkpoint.Loaded) -> int:
        try:
            model.load_state_dict(loaded.model)
        except RuntimeError as exc:
            raise UserError(f"{model_dir}: the stored weights do not fit a {arch} {res} px "
                            f"width {width} model ({str(exc).splitlines()[0][:160]})") from exc
        if loaded.optimizer is not None:
            restore_optimizer(optimizer, loaded.optimizer)
        else:
            note("the model dir has no optimizer state: Adam starts afresh")
        for group in optimizer.param_groups:
            group["lr"] = settings.lr                          # the learning rate may change
        m = loaded.manifest
        state.update(history=[list(h) for h in m.get("loss_history", [])],
                     window=list(m.get("window", [0.0, 0.0, 0])),
                     since_save=list(m.get("since_save", [0.0, 0])),
                     best_loss=float(m.get("best_loss", math.inf)),
                     elapsed_s=float(m.get("elapsed_s", 0.0)), created=m.get("created", ""))
        if m.get("scaler") and step.scaler.is_enabled():
            step.scaler.load_state_dict(m["scaler"])
        if loaded.from_backup:
            note("the main checkpoint is damaged (" + "; ".join(loaded.problems) +
                 f"): continuing from the backup at iteration {m['iteration']}")
        return int(m["iteration"])

    train_model = model
    if d.on:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    aug = AugmentSettings(warp=AugmentSettings.warp if settings.warp else 0.0,
                          flip=settings.flip)
    sharp = dataclasses.replace(aug, warp=0.0)
    step = Step(train_model, optimizer, data_a, data_b, device, plan.precision, aug,
                settings.eyes_mouth_weight, settings.clip_grad)
    batch = plan.batch

    def manifest_now(iteration: int) -> dict:
        return {
            "version": __version__, "arch": arch, "resolution": res, "width": width,
            "face_type": fs_a.face_type, "learns_mask": model.decoder_a.mask is not None,
            "iteration": iteration, "elapsed_s": state["elapsed_s"] + (time.monotonic() - t0),
            "loss_history": state["history"], "window": state["window"],
            "since_save": state["since_save"], "best_loss": state["best_loss"],
            "source": data_b.name, "target": data_a.name,
            "facesets": {"source": {"path": str(source), "faces": len(data_b)},
                         "target": {"path": str(target), "faces": len(data_a)}},
            "batch": batch, "precision": plan.precision, "lr": settings.lr,
            "seed": settings.seed, "plan": plan.to_dict(), "device": str(device),
            "world_size": d.world,
            "scaler": step.scaler.state_dict() if step.scaler.is_enabled() else None,
            "created": state["created"], "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "ddp": state.get("ddp"), "init_from": state["init_from"],
            "targets": targets, "any_target": len(targets) > 1}

    def save(iteration: int) -> None:
        total, n = state["since_save"]
        avg = total / n if n else math.inf
        improved = avg < state["best_loss"]
        if improved:
            state["best_loss"] = avg
        state["since_save"] = [0.0, 0]
        checkpoint.save(model_dir, model, optimizer, manifest_now(iteration), backup=improved)
        progress(iteration, settings.iterations, f"saved the model at iteration {iteration}"
                 + (" (new best: backup kept)" if improved else ""), event="save",
                 iteration=iteration, backup=improved)

    t0 = time.monotonic()
    if manifest:
        it = restore(checkpoint.load(model_dir))
    elif d.main:
        save(0)                  # a model dir exists from the start, and a state to fall back to
    start_it = it
    if d.main:
        progress(it, settings.iterations, f"training from iteration {it}", iteration=it,
                 batch=batch)

    # -- 4. the loop ---------------------------------------------------------------------------
    preview_a, preview_b = data_a.first(PREVIEW_FACES), data_b.first(PREVIEW_FACES)
    # (time, iteration) over the last minute (at least 50 steps): the it/s and the live ETA
    # follow the machine's speed without swinging with every slow step.
    times = collections.deque(maxlen=20_000)
    times.append((time.monotonic(), it))
    last_save = last_preview = time.monotonic()
    preview_path, fit, stopped = None, None, "target"
    bad, attempt, reloads, overflows = 0, 0, 0, 0
    la = lb = None
    # On a CPU: as many threads as cores are free, re-checked as neighbours come and go
    # (train() puts the process's thread count back afterwards).
    tuner = ThreadTuner() if device.type == "cpu" else None
    if tuner is not None and d.main:
        note(f"CPU threads: {tuner.threads} of {tuner.most} (the cores free now; adjusted "
             "while training by measured step time)")

    def on_oom(old: int, new: int) -> None:
        if d.on:
            raise UserError(f"out of GPU memory at batch {old} with {d.world} processes: "
                            f"restart with --batch {new}")
        note(f"out of GPU memory at batch {old}: continuing with batch {new}")

    def write_a_preview(iteration: int) -> str:
        rows = preview_rows(model, preview_a, preview_b, DTYPES[plan.precision])
        return str(write_preview(model_dir, iteration, rows))

    while True:
        # Stop? Every rank must agree, or DDP would wait forever for the one that left.
        reason = None
        if it >= settings.iterations:
            reason = "target"
        elif _cancelled(cancel):
            reason = "cancel"
        elif settings.max_minutes and time.monotonic() - t0 >= settings.max_minutes * 60:
            reason = "time"
        elif fit is not None and settings.plateau and fit.remaining < settings.plateau:
            reason = "plateau"
        if distributed.any_rank(reason is not None, d):
            stopped = reason or "cancel"
            break

        # The recipe at this point of the run: learning rate, and warp unless sharpening.
        f = schedule.progress(settings, it, time.monotonic() - t0)
        for group in optimizer.param_groups:
            group["lr"] = schedule.learning_rate(settings, it, f)
        step.aug = aug if schedule.warp_on(settings, f) else sharp
        # One step (halving the batch on CUDA out-of-memory).
        started = time.perf_counter()
        result, new_batch = run_with_oom_retry(
            step, batch, _step_seed(settings.seed, d.rank, it, attempt), on_oom, optimizer)
        if tuner is not None:
            tuner.step_done(time.perf_counter() - started)
        batch = new_batch
        if result.overflow and overflows < OVERFLOWS:
            # fp16: GradScaler lowered its scale and skipped the update: not an iteration.
            overflows, attempt = overflows + 1, attempt + 1
            continue
        if not result.applied:
            # Non-finite loss or gradient: skip; after a few in a row reload the last checkpoint.
            bad, attempt = bad + 1, attempt + 1
            note(f"iteration {it + 1}: loss not finite (A {result.loss_a}, B {result.loss_b}); "
                 "step skipped")
            if bad >= NAN_RETRIES:
                reloads += 1
                if reloads > NAN_RELOADS:
                    raise UserError("training diverged: the loss keeps becoming NaN/inf; lower "
                                    "--lr, set --clip-grad 1 or use --precision fp32")
                it = restore(checkpoint.load(model_dir))
                note(f"reloaded the last checkpoint (iteration {it}) after {bad} bad steps")
                bad, overflows = 0, 0
                times.clear()
                times.append((time.monotonic(), it))
            continue
        bad, attempt, overflows = 0, 0, 0
        it += 1
        la, lb = result.loss_a, result.loss_b
        state["window"] = [state["window"][0] + la, state["window"][1] + lb,
                           state["window"][2] + 1]
        state["since_save"] = [state["since_save"][0] + la + lb, state["since_save"][1] + 1]
        times.append((time.monotonic(), it))
        while len(times) > 50 and times[-1][0] - times[0][0] > 60:
            times.popleft()
        if not d.main:
            continue

        # History point and plateau fit every K iterations; a preview then too, and at least
        # every `preview_seconds`, so a slow model shows its first one within half a minute.
        if it % settings.preview_every == 0:
            wa, wb, wn = state["window"]
            state["history"].append([it, wa / wn, wb / wn])
            state["window"] = [0.0, 0.0, 0]
            h = state["history"]
            fit = fit_decay([p[0] for p in h], [p[1] + p[2] for p in h])
        if it % settings.preview_every == 0 or (
                settings.preview_seconds
                and time.monotonic() - last_preview >= settings.preview_seconds):
            preview_path = write_a_preview(it)
            last_preview = time.monotonic()
        # Autosave every N iterations and every M minutes.
        minutes = (time.monotonic() - last_save) / 60
        if it % settings.save_every == 0 or (settings.save_minutes
                                             and minutes >= settings.save_minutes):
            save(it)
            last_save = time.monotonic()
        (t_old, i_old), (t_new, i_new) = times[0], times[-1]
        it_s = (i_new - i_old) / (t_new - t_old) if t_new > t_old else 0.0
        eta = (settings.iterations - it) / it_s if it_s else None
        if settings.max_minutes:        # a time budget ends the run first when it is shorter
            left = max(0.0, settings.max_minutes * 60 - (time.monotonic() - t0))
            eta = left if eta is None else min(eta, left)
        progress(it, settings.iterations, f"loss A {la:.4f} B {lb:.4f}", event="step",
                 iteration=it, loss_a=la, loss_b=lb, it_s=round(it_s, 3),
                 eg_s=round(it_s * 2 * batch * d.world, 2),
                 eta=round(eta, 2) if eta is not None else None,
                 batch=batch, preview=preview_path,
                 plateau=fit.describe() if fit else None,
                 plateau_remaining=fit.remaining if fit else None)

    # -- 5. wrap up: a last checkpoint and preview, and (DDP) proof that the ranks agree -------
    seconds = time.monotonic() - t0
    if d.on:
        digests = distributed.gather_digests(model, d)
        state["ddp"] = {"world_size": d.world, "weight_digests": digests,
                        "ranks_agree": len(set(digests)) == 1}
    if d.main and it > start_it:
        if not preview_path or not preview_path.endswith(f"{it:08d}.png"):
            preview_path = write_a_preview(it)
        save(it)
    its = (it - start_it) / seconds if seconds > 0 else 0.0
    if stopped == "plateau" and fit:
        note(f"stopped on the plateau rule: {fit.describe()}")
    if tuner is not None and tuner.changes and d.main:
        note(f"CPU threads: ended with {tuner.threads} after {tuner.changes} change(s) as "
             "the machine's load moved")
    return TrainResult(str(model_dir), it, start_it, settings.iterations, stopped, la, lb,
                       round(seconds, 2), round(its, 3), round(its * 2 * batch * d.world, 2),
                       batch, preview_path, fit.to_dict() if fit else None, plan.to_dict(),
                       notes, disturbed=tuner is not None and tuner.disturbed)
