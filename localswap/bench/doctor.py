"""`python -m localswap doctor`: will this machine's GPU work with localswap?

A check for users (and for the first run on a new kind of card), under 5 minutes on one GPU,
that runs every CUDA path the product uses and says what it found, one line per check:

  build       torch, its CUDA version and the GPU architectures it has kernels for
  probe       NVML's GPUs against torch's (name, capability, memory) and what stops torch
              from using them (a CPU-only build, a driver too old, no kernels for the card)
  plan        the planner's choice for GPU 0, from torch's figures
  train fp16, train bf16
              10 iterations at 128 px, then resumed to 20: step time, and the peak memory the
              process held against the planner's estimate (the goal: within 15%)
  oom         a real out-of-memory (the allocator capped below the batch's need): the batch
              must halve and training go on
  oom in step an out-of-memory inside the fp16 optimizer step (after GradScaler.unscale_, as
              when Adam allocates its moments): the retry must work
  two jobs    two trainings in one process, as the worker runs jobs: the second plan must see
              the first's memory free again
  convert     a short clip through the trained model: frames per second, arithmetic used
  torchrun    with 2 GPUs or more: 2 processes with fixed and with planned settings

Without a usable GPU it still runs to the end and reports the CUDA checks as skipped.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from localswap import gpu
from localswap.errors import error_summary
from localswap.progress import plural
from localswap.system import cuda_support
from localswap.train import planner

OK, WARN, FAILED, SKIPPED = "ok", "warn", "failed", "skipped"
NO_GPU = "no GPU: skipped"
TOLERANCE = 0.15            # the planner's estimate against the measured peak
FRAMES = 24                 # frames of each sample clip (faces for the facesets)
MiB = gpu.MiB


@dataclass
class Check:
    name: str
    status: str
    summary: str
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return f"  [{self.status:<7}] {self.name:<12} {self.summary}"


@dataclass
class Ctx:
    """What the checks share: the device, a scratch folder, the sample media, the sizes."""
    device: object                          # torch.device
    work: Path
    resolution: int = 128
    width: int = 0
    iterations: int = 10
    sources: tuple | None = None            # (faceset B, faceset A, clip of A)
    others_mb: int | None = None            # GPU memory in use before we started (NVML)
    models: list = field(default_factory=list)


def make_sources(work: Path) -> tuple[Path, Path, Path]:
    """Facesets of two people (128 px) and a clip, from the photos packaged with the libs."""
    from localswap.bench import samples
    from localswap.faces.extract import extract
    from localswap.settings import ExtractSettings
    out = []
    for name, photo, seed in (("b", samples.grace_hopper(), 1), ("a", samples.astronaut(), 0)):
        key = "grace_hopper" if name == "b" else "astronaut"
        clip = samples.encode(work / f"{name}.mp4", samples.moving_frames(
            photo, samples.FACE_CENTRES[key], FRAMES, zoom=0.9, seed=seed), fps=24)
        extract([clip], work / f"faces_{name}", ExtractSettings(size=128))
        out.append((work / f"faces_{name}", clip))
    return out[0][0], out[1][0], out[1][1]


def _train(ctx: Ctx, model: Path, iterations: int, precision: str = "auto", **kw):
    from localswap.settings import TrainSettings
    from localswap.train.trainer import train
    fs_b, fs_a, _ = ctx.sources
    s = dict(iterations=iterations, resolution=ctx.resolution, width=ctx.width,
             precision=precision, device=ctx.device.type, preview_every=iterations,
             save_every=iterations, save_minutes=0.0)
    result = train(fs_b, fs_a, model, TrainSettings(**{**s, **kw}))
    ctx.models.append(model)
    return result


def _step_ms(result) -> float | None:
    return round(1000 / result.it_s, 1) if result.it_s else None


def _reset_peak(ctx: Ctx) -> None:
    import torch
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)


def memory_figures(ctx: Ctx, plan: dict) -> dict:
    """The process's peak GPU memory since the last reset against the planner's estimate."""
    import torch
    if ctx.device.type != "cuda":
        return {}
    dev = ctx.device
    context = None
    found = gpu.probe().devices if ctx.others_mb is not None else []
    if len(found) == 1:     # NVML before and now, so that both sides count alike
        used = found[0].total_mb - found[0].free_mb
        context = used - ctx.others_mb - torch.cuda.memory_reserved(dev) // MiB
    reserved = torch.cuda.max_memory_reserved(dev) // MiB
    measured = reserved + (context if context is not None else planner.CONTEXT_MB)
    est = int(plan.get("est_peak_mb") or 0)
    return {"est_peak_mb": est, "peak_allocated_mb": torch.cuda.max_memory_allocated(dev) // MiB,
            "peak_reserved_mb": reserved, "context_mb": context, "measured_peak_mb": measured,
            "estimate_error": round(est / measured - 1, 3) if measured and est else None}


def _memory_verdict(fig: dict) -> tuple[str, str]:
    err = fig.get("estimate_error")
    if err is None:
        return OK, ""
    text = (f"; memory: estimate {fig['est_peak_mb']} MiB, measured {fig['measured_peak_mb']} "
            f"MiB ({err:+.0%})")
    return (OK if abs(err) <= TOLERANCE else WARN), text


# -- checks without CUDA ---------------------------------------------------------------------
def check_build() -> Check:
    import torch
    fig = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "arch_list": torch.cuda.get_arch_list() if torch.version.cuda else [],
           "cuda_available": torch.cuda.is_available(), "devices": torch.cuda.device_count()}
    try:
        fig["cudnn"] = torch.backends.cudnn.version() if fig["cuda_available"] else None
    except RuntimeError:
        fig["cudnn"] = None
    arch = " ".join(fig["arch_list"]) or "none (CPU-only build)"
    return Check("build", OK, f"torch {fig['torch']}, CUDA {fig['cuda']}, kernels: {arch}", fig)


def check_probe(probe: gpu.Probe) -> Check:
    import torch
    fig = {"nvml": [d.to_dict() for d in probe.devices], "cuda_driver": probe.cuda_driver,
           "torch": []}
    problems = cuda_support.torch_problems(probe)
    fig["problems"] = problems
    if not probe.devices and not torch.cuda.is_available():
        return Check("probe", SKIPPED, f"{NO_GPU} ({probe.note or 'none found'})", fig)
    if torch.cuda.is_available():
        fig["torch"] = [gpu.torch_device_info(i).to_dict()
                        for i in range(torch.cuda.device_count())]
    names = [f"GPU {d['index']}: {d['name']} (cc {'.'.join(map(str, d['compute_capability']))}"
             f", {d['free_mb']} of {d['total_mb']} MiB free)" for d in fig["torch"]]
    order = [d["name"] for d in fig["nvml"]] != [d["name"] for d in fig["torch"]]
    summary = "; ".join(names) or "torch sees no GPU"
    if order and fig["torch"]:
        summary += " (NVML lists them in another order or number: the planner uses torch's)"
    if problems:
        return Check("probe", FAILED, summary + ". " + " ".join(problems), fig)
    return Check("probe", OK, f"{summary}; driver {probe.driver} (CUDA {probe.cuda_driver})",
                 fig)


def check_plan(probe: gpu.Probe, cuda: bool) -> Check:
    info = gpu.torch_device_info(0) if cuda else probe
    p = planner.plan(info, basic=cuda)      # as a new Basic run plans: the card's speed measured
    what = "a Basic run on " if cuda else ""
    return Check("plan", OK, f"for {what}4000 faces of 512 px: " + p.describe(), p.to_dict())


# -- CUDA checks (also run on the CPU by the tests, through the same code) --------------------
def check_train(ctx: Ctx, precision: str) -> Check:
    import torch
    name = f"train {precision}"
    if ctx.device.type == "cuda" and precision == "bf16" and \
            torch.cuda.get_device_capability(ctx.device)[0] < 8:
        return Check(name, SKIPPED, "the card has no bf16 (compute capability below 8.0)")
    model = ctx.work / f"model_{precision}"
    _reset_peak(ctx)
    first = _train(ctx, model, ctx.iterations, precision)
    again = _train(ctx, model, 2 * ctx.iterations, precision)
    fig = {"plan": first.plan, "step_ms_first": _step_ms(first),
           "step_ms_resumed": _step_ms(again), "batch": again.batch,
           **memory_figures(ctx, first.plan)}
    if (first.iteration, again.start_iteration, again.iteration) != \
            (ctx.iterations, ctx.iterations, 2 * ctx.iterations):
        return Check(name, FAILED, f"stopped at {first.iteration} then {again.iteration} "
                     f"(expected {ctx.iterations} then {2 * ctx.iterations})", fig)
    status, mem = _memory_verdict(fig)
    return Check(name, status, f"{ctx.iterations} + {ctx.iterations} iterations (resumed) at "
                 f"{first.plan.get('resolution')} px, width {first.plan.get('width')}, batch "
                 f"{again.batch}; {fig['step_ms_resumed']} ms/step{mem}", fig)


def check_oom(ctx: Ctx) -> Check:
    """Cap the caching allocator below what batch 32 needs: a real OOM the trainer must survive
    by halving the batch."""
    import torch
    res, width, batch = ctx.resolution, 32, 32
    prec = planner.cuda_precision(list(torch.cuda.get_device_capability(ctx.device)))
    need = {b: planner.estimate_mb("localswap", res, width, b, prec) - planner.CONTEXT_MB
            for b in (8, 16, batch)}
    cap = (need[8] + need[16]) // 2
    total = torch.cuda.get_device_properties(ctx.device).total_memory // MiB
    gpu.release_cached_memory()
    torch.cuda.set_per_process_memory_fraction(cap / total, ctx.device)
    try:
        r = _train(ctx, ctx.work / "model_oom", ctx.iterations, prec, width=width, batch=batch)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
    halvings = [n for n in r.notes if "out of GPU memory at batch" in n]
    fig = {"cap_mb": cap, "estimates_mb": need, "final_batch": r.batch, "notes": halvings}
    if not halvings:
        return Check("oom", FAILED, f"no out-of-memory at batch {batch} under a {cap} MiB cap: "
                     "the planner's estimate is too high for this card", fig)
    if r.iteration != ctx.iterations:
        return Check("oom", FAILED, f"training stopped at iteration {r.iteration}", fig)
    return Check("oom", OK, f"allocator capped at {cap} MiB: batch {batch} -> {r.batch}, "
                 f"{r.iteration} iterations done", fig)


def check_scaler_oom(ctx: Ctx, resolution: int = 0, width: int = 16, batch: int = 8) -> Check:
    """An OOM raised inside the fp16 optimizer step, after GradScaler.unscale_: the retry at
    half the batch must run (it used to fail with "unscale_() has already been called")."""
    import torch

    from localswap.train.augment import AugmentSettings
    from localswap.train.data import FaceData
    from localswap.train.models import build_model
    from localswap.train.step import Step, make_optimizer, run_with_oom_retry
    res = resolution or ctx.resolution
    fs_b, fs_a, _ = ctx.sources
    torch.manual_seed(0)
    model = build_model("localswap", res, width).to(ctx.device)
    opt = make_optimizer(model, 5e-5)
    step = Step(model, opt, FaceData(fs_a, res, ctx.device), FaceData(fs_b, res, ctx.device),
                ctx.device, "fp16", AugmentSettings())
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    real_step, fired = opt.step, []

    def step_that_runs_out(*args, **kwargs):
        if not fired:
            fired.append(batch)
            raise oom("CUDA out of memory (doctor: raised inside the optimizer step)")
        return real_step(*args, **kwargs)
    opt.step = step_that_runs_out
    halvings, results = [], []
    for i in range(50):         # until the scaler's scale lets an update through, then one more
        result, batch = run_with_oom_retry(step, batch, i, lambda o, n: halvings.append((o, n)),
                                           opt)
        results.append(result)
        if fired and result.applied:
            break
    del opt.step
    fig = {"halvings": halvings, "steps": len(results), "final_batch": batch,
           "skipped_overflow": sum(r.overflow for r in results)}
    if not fired or not results[-1].applied:
        return Check("oom in step", FAILED, "the optimizer step never ran", fig)
    return Check("oom in step", OK, f"OOM after unscale_: batch {halvings[0][0]} -> "
                 f"{halvings[0][1]}, then an update applied", fig)


def check_two_jobs(ctx: Ctx) -> Check:
    """Two trainings in one process, as the worker runs jobs; the second plan must be the
    first's, with the first's memory free again."""
    free, plans = [], []
    for k in (1, 2):
        if ctx.device.type == "cuda":
            free.append(gpu.torch_device_info(ctx.device.index or 0).free_mb)
        r = _train(ctx, ctx.work / f"job{k}", ctx.iterations)
        gpu.release_cached_memory()             # what the worker does after every stage
        plans.append(r.plan)
    keys = ("device", "arch", "resolution", "width", "batch", "precision")
    same = all(plans[0].get(k) == plans[1].get(k) for k in keys)
    fig = {"free_mb_before": free, "plans": plans}
    lines = " | ".join(f"job {k}: {p.get('resolution')} px, width {p.get('width')}, batch "
                       f"{p.get('batch')}, {p.get('precision')}" + (f" ({f} MiB free)" if free
                                                                     else "")
                       for k, p, f in zip((1, 2), plans, free or [None, None]))
    if not same or (free and free[1] < free[0] - 256):
        return Check("two jobs", FAILED, "the second plan differs: " + lines, fig)
    return Check("two jobs", OK, lines, fig)


def check_convert(ctx: Ctx) -> Check:
    from localswap.convert.render import convert
    from localswap.convert.swapper import Swapper
    from localswap.settings import ConvertSettings
    if not ctx.models:
        return Check("convert", SKIPPED, "no model was trained")
    swapper = Swapper(ctx.models[0], ctx.device.type)
    r = convert(ctx.sources[2], swapper, ctx.work / "swap.mp4",
                ConvertSettings(device=ctx.device.type))
    dtype = str(swapper.dtype).replace("torch.", "") if swapper.dtype else "fp32"
    fig = {"frames": r.frames, "faces": r.faces, "fps": round(r.fps, 1), "dtype": dtype}
    status = OK if r.frames and r.faces else FAILED
    return Check("convert", status, f"{plural(r.frames, 'frame')}, {plural(r.faces, 'face')}, {fig['fps']} frames/s"
                 f" in {dtype}", fig)


def check_torchrun(ctx: Ctx, gpus: int) -> Check:
    if gpus < 2:
        return Check("torchrun", SKIPPED, f"needs 2 GPUs ({gpus} here)")
    import localswap
    fs_b, fs_a, _ = ctx.sources
    root = str(Path(localswap.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    fig, lines = {}, []
    for label, extra in (("fixed", ["--resolution", "128", "--width", "32", "--batch", "8"]),
                         ("planned", [])):
        model = ctx.work / f"ddp_{label}"
        n = str(ctx.iterations)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "localswap", "train", "--source", str(fs_b),
               "--target", str(fs_a), "--model", str(model), "--iterations", n,
               "--device", "cuda", "--save-every", n, "--preview-every", n,
               "--save-minutes", "0", "--json", *extra]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            return Check("torchrun", FAILED, f"{label}: exit {run.returncode}: "
                         + run.stderr.strip().splitlines()[-1][:300], fig)
        manifest = json.loads((model / "manifest.json").read_text())
        fig[label] = {"result": json.loads(run.stdout), "ddp": manifest.get("ddp")}
        agree = (manifest.get("ddp") or {}).get("ranks_agree")
        lines.append(f"{label}: {'ranks agree' if agree else 'RANKS DIFFER'}, "
                     f"{fig[label]['result'].get('it_s')} it/s")
        if not agree:
            return Check("torchrun", FAILED, "; ".join(lines), fig)
    return Check("torchrun", OK, "; ".join(lines), fig)


CUDA_CHECKS = ("train fp16", "train bf16", "oom", "oom in step", "two jobs", "convert",
               "torchrun")


def _timed(fn: Callable[[], Check], name: str) -> Check:
    t = time.perf_counter()
    try:
        c = fn()
    except Exception as exc:    # a check that crashes is a finding, not the end of the report
        c = Check(name, FAILED, error_summary(exc, 300))
    c.seconds = round(time.perf_counter() - t, 1)
    return c


def run(out: Callable[[str], None] = print, keep: Path | None = None) -> list[Check]:
    """Every check, printed as it finishes; the list is also the JSON report."""
    probe = gpu.probe()             # NVML's view, before this process touches CUDA
    import torch
    out("localswap doctor: will this machine's GPU work?")
    checks: list[Check] = []

    def add(c: Check) -> None:
        checks.append(c)
        out(c.line())
    add(_timed(check_build, "build"))
    add(_timed(lambda: check_probe(probe), "probe"))
    cuda = torch.cuda.is_available() and not cuda_support.torch_problems(probe)
    add(_timed(lambda: check_plan(probe, cuda), "plan"))
    if not cuda:
        why = NO_GPU if not torch.cuda.is_available() else \
            "torch cannot use the GPU (see probe): skipped"
        for name in CUDA_CHECKS:
            add(Check(name, SKIPPED, why))
        return checks
    with tempfile.TemporaryDirectory(prefix="localswap-doctor-") as tmp:
        work = Path(keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        dev = torch.device("cuda", 0)
        others = None
        if len(probe.devices) == 1 and torch.cuda.device_count() == 1:
            d = probe.devices[0]
            others = d.total_mb - d.free_mb
        ctx = Ctx(dev, work, others_mb=others)
        t = time.perf_counter()
        ctx.sources = make_sources(work)
        out(f"  (sample facesets built in {time.perf_counter() - t:.0f} s)")
        add(_timed(lambda: check_train(ctx, "fp16"), "train fp16"))
        add(_timed(lambda: check_train(ctx, "bf16"), "train bf16"))
        add(_timed(lambda: check_oom(ctx), "oom"))
        add(_timed(lambda: check_scaler_oom(ctx), "oom in step"))
        add(_timed(lambda: check_two_jobs(ctx), "two jobs"))
        add(_timed(lambda: check_convert(ctx), "convert"))
        add(_timed(lambda: check_torchrun(ctx, torch.cuda.device_count()), "torchrun"))
    return checks


def summary(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAILED, SKIPPED)}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if all(c.status == SKIPPED for c in checks if c.name in CUDA_CHECKS):
        return f"{text}: no GPU checks ran ({checks[-1].summary})"
    return text + (": this GPU works with localswap" if not counts[FAILED] else
                   ": see the failed checks above")


def write_json(checks: list[Check], path: str | Path) -> None:
    data = {"when": time.strftime("%Y-%m-%d %H:%M"), "summary": summary(checks),
            "ok": not any(c.status == FAILED for c in checks),
            "checks": [asdict(c) for c in checks]}
    Path(path).write_text(json.dumps(data, indent=1, default=str))
