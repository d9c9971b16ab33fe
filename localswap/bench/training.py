"""Training sections of `localswap bench`: speed per model, the faceswap baseline, and
quality at a fixed budget. All run on facesets extracted from packaged photos."""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from localswap import gpu
from localswap.bench import samples
from localswap.bench.suite import median_time, sync
from localswap.bench.baseline import BaselineTrainer
from localswap.faces.extract import extract
from localswap.settings import ExtractSettings
from localswap.train import planner
from localswap.train.augment import AugmentSettings, augment
from localswap.train.data import FaceData
from localswap.train.losses import face_loss
from localswap.train.models import build_model
from localswap.train.step import DTYPES, Step, make_optimizer

CONFIGS = [("original", 64), ("localswap", 64), ("localswap", 128)]


def _faceset(ctx: dict, name: str, photo, centre, seed: int, frames: int) -> Path:
    key = f"faceset_{name}"
    if key not in ctx:
        clip = samples.encode(ctx["tmp"] / f"{name}.mp4", samples.moving_frames(
            photo, centre, frames, zoom=0.9, seed=seed), fps=24)
        ctx[key] = ctx["tmp"] / f"fs_{name}"
        extract([clip], ctx[key], ExtractSettings(size=128))
    return ctx[key]


def facesets(ctx: dict) -> tuple[Path, Path]:
    """A (astronaut) and B (Grace Hopper): real photos in motion, for step timing."""
    n = 8 if ctx["tiny"] else 24 if ctx["quick"] else 48
    a = _faceset(ctx, "a", samples.astronaut(), samples.FACE_CENTRES["astronaut"], 0, n)
    b = _faceset(ctx, "b", samples.grace_hopper(), samples.FACE_CENTRES["grace_hopper"], 1, n)
    return a, b


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _ModelOnly:
    """The step without data or augmentation: fixed, already augmented tensors."""

    def __init__(self, step: Step, batch: int):
        gen = torch.Generator(device=step.device).manual_seed(1)
        self.step = step
        self.a = augment(step.data_a.sample(batch, gen), gen, step.aug)
        self.b = augment(step.data_b.sample(batch, gen), gen, step.aug)

    def __call__(self) -> None:
        s = self.step
        s.optimizer.zero_grad(set_to_none=True)
        dtype = DTYPES[s.precision]
        with torch.autocast(s.device.type, dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            rgb_a, mask_a, rgb_b, mask_b = s.model(self.a[0], self.b[0])
        loss = face_loss(rgb_a, mask_a, self.a[1], self.a[2], s.eyes_mouth_weight) + \
            face_loss(rgb_b, mask_b, self.b[1], self.b[2], s.eyes_mouth_weight)
        loss.backward()
        s.optimizer.step()
        sync(s.device)


def make_step(arch: str, res: int, fs_a: Path, fs_b: Path, device: torch.device,
              batch: int = 0) -> tuple[Step, planner.Plan]:
    info = gpu.torch_device_info() if device.type == "cuda" else None
    plan = planner.plan(info, arch=arch, resolution=res, batch=batch)
    torch.manual_seed(0)
    model = build_model(arch, res, plan.width).to(device)
    opt = make_optimizer(model, 5e-5)          # the trainer's optimizer
    step = Step(model, opt, FaceData(fs_a, res, device), FaceData(fs_b, res, device), device,
                plan.precision, AugmentSettings())
    return step, plan


def step_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved(a, b, repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed turn about, so load from other programs hits both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def section_training(ctx: dict) -> dict:
    fs_a, fs_b = facesets(ctx)
    dev, reps = ctx["device"], 1 if ctx["tiny"] else 2 if ctx["quick"] else 5
    machine = ctx["results"]["machine"]
    out = {}
    for arch, res in CONFIGS:
        step, plan = make_step(arch, res, fs_a, fs_b, dev, batch=2 if ctx["tiny"] else 0)
        batch, seed = plan.batch, iter(range(10 ** 6))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        model_only = _ModelOnly(step, batch)
        alone, full = interleaved(model_only, lambda: (step(batch, next(seed)), sync(dev)), reps)
        gen = torch.Generator(device=dev).manual_seed(2)
        aug = median_time(lambda: (augment(step.data_a.sample(batch, gen), gen, step.aug),
                                   augment(step.data_b.sample(batch, gen), gen, step.aug),
                                   sync(dev)), reps)
        flops = step_flops(model_only)
        peak = machine["low_precision_peak_flops"] if plan.precision != "fp32" else \
            machine["fp32_flops"]
        out[f"{arch}_{res}"] = {
            "batch": batch, "precision": plan.precision, "width": plan.width,
            "params": sum(p.numel() for p in step.model.parameters()),
            "model_step_s": alone, "full_step_s": full, "full_over_model": full / alone,
            "augment_s": aug, "augment_share": aug / full,
            "augment_faces_per_s": 2 * batch / aug,
            "eg_per_s": 2 * batch / full, "step_gflop": flops / 1e9,
            "achieved_flops": flops / alone, "fraction_of_peak": flops / alone / peak,
            "peak_memory_mb": (torch.cuda.max_memory_allocated(dev) / 2 ** 20
                               if dev.type == "cuda" else _rss_mb())}
    return out


def _baseline_batches(data_a: FaceData, data_b: FaceData, batch: int, gen):
    """Warped input and clean target per side, as faceswap's own data pipeline feeds it."""
    in_a, tg_a, _ = augment(data_a.sample(batch, gen), gen)
    in_b, tg_b, _ = augment(data_b.sample(batch, gen), gen)
    return in_a, tg_a, in_b, tg_b


def section_baseline(ctx: dict) -> dict:
    """faceswap's Original as plain eager fp32 vs localswap's `original` step, batch 16."""
    fs_a, fs_b = facesets(ctx)
    dev, reps = ctx["device"], 1 if ctx["tiny"] else 3 if ctx["quick"] else 5
    n = 2 if ctx["tiny"] else 16
    base = BaselineTrainer(str(dev), batch=n)
    data_a, data_b = FaceData(fs_a, 64, dev), FaceData(fs_b, 64, dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    batch = _baseline_batches(data_a, data_b, n, gen)
    flops = step_flops(lambda: base.step(*batch))
    step, plan = make_step("original", 64, fs_a, fs_b, dev, batch=n)
    seed = iter(range(10 ** 6))
    # Turn about, so the load of other programs (and the host's steal) hits both alike, after
    # warm-up steps: localswap's step gets faster over its first few (bf16 kernels, Adam state).
    for _ in range(0 if ctx["tiny"] else 2):
        base.step(*batch), step(n, next(seed))
    base_s, ours_s = interleaved(lambda: (base.step(*batch), sync(dev)),
                                 lambda: (step(n, next(seed)), sync(dev)), reps)
    return {"batch": n, "baseline_step_s": base_s, "baseline_gflop": flops / 1e9,
            "localswap_original_step_s": ours_s, "localswap_precision": plan.precision,
            "ratio": ours_s / base_s}

