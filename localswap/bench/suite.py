"""`python -m localswap bench`: speed as ratios to this machine's own limits, in one process.

Sections (each a function returning a flat-ish dict with stable keys):
  machine     matmul FLOP/s (fp32, bf16; fp16 on CUDA), decode-only and decode+encode-only
              frames/s of a 720p clip built from packaged photos
  extraction  end-to-end frames/s and its ratio to decode-only
  training    per model: model-only step, full step (data + augmentation), EG/s, FLOP/s and
              its fraction of the bf16 matmul peak, peak memory
  baseline    the same step for a plain eager fp32 faceswap-Original loop, and the ratio
  conversion  frames/s with 64 and 128 px models, ratio to decode+encode-only, time per stage
  quality     time to quality: the default recipe trained on a real pair of talking-head
              videos for fixed wall-clock budgets, each render scored by `evaluate`, with a
              contact sheet per budget (quality.py)
  sharing     CPU training's iterations a minute while a busy neighbour process comes and
              goes, as a share of its speed alone (sharing.py)
  corpus      every kind of clip a user brings, extracted as target and source with the
              defaults, and pairs swapped with a short budget and judged (corpus.py)
  occlusion   clips with a hand in front of the face, and with a cup carried over it,
              rendered with hands, auto (hands and objects) and off: pixels kept,
              steadiness, the judge's numbers (occlusion.py; only when named: it trains a
              model per clip)
  adapt       a trained model on new target people: as is, adapted for a few budgets, and
              a fresh model, each judged (adapt.py; only when named: about an hour on a CPU)
Every timing is a median of repeats after a warm-up.
"""
from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from localswap import __version__, media
from localswap.bench import samples
from localswap.errors import UserError
SCHEMA_VERSION = 1


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rates(device: torch.device, dtype: torch.dtype, n: int, repeats: int
                 ) -> list[float]:
    """FLOP/s of each of `repeats` n x n matmuls (after two warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    rates = []
    for k in range(repeats + 2):
        t = time.perf_counter()
        a @ b
        sync(device)
        if k >= 2:
            rates.append(2 * n ** 3 / (time.perf_counter() - t))
    return rates



def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def decode_fps(clip: Path) -> float:
    t = time.perf_counter()
    n = sum(1 for _ in media.read_frames(clip))
    return n / (time.perf_counter() - t)


def section_machine(ctx: dict) -> dict:
    device, quick = ctx["device"], ctx["quick"]
    n = 256 if ctx["tiny"] else 1024 if quick else 2048
    reps = 1 if ctx["tiny"] else 3 if quick else 7
    out = {"matmul_n": n}
    kinds = [("fp32", torch.float32), ("bf16", torch.bfloat16)] + (
        [("fp16", torch.float16)] if device.type == "cuda" else [])
    for name, dtype in kinds:
        rates = matmul_rates(device, dtype, n, reps)
        # The peak is the best repeat: a busy neighbour only ever slows a repeat down (the
        # median read 413 and 790-838 GFLOP/s an hour apart on this shared host), so the
        # training's share of it means something; the spread says how far repeats fell.
        out[f"{name}_flops"] = max(rates)
        out[f"{name}_spread"] = round(1 - min(rates) / max(rates), 3)
    out["low_precision_peak_flops"] = max(out["bf16_flops"], out.get("fp16_flops", 0.0))
    clip = ctx["clip"]
    out["clip"] = {"width": 1280, "height": 720, "frames": media.probe(clip).frames}
    out["decode_fps"] = statistics.median(decode_fps(clip) for _ in range(reps))
    from localswap.bench.conversion import decode_encode
    out["decode_encode_fps"] = statistics.median(
        decode_encode(clip, ctx["tmp"] / "floor.mp4")[0] for _ in range(2 if quick else 3))
    return out


def section_extraction(ctx: dict) -> dict:
    import shutil

    from localswap.faces.extract import extract
    from localswap.settings import ExtractSettings
    runs = []
    for k in range(1 if ctx["tiny"] else 2 if ctx["quick"] else 3):
        out = ctx["tmp"] / f"faces{k}"
        summary = extract([ctx["clip"]], out, ExtractSettings())
        runs.append(summary)
        if k:
            shutil.rmtree(out)
    fps = statistics.median(s.fps for s in runs)
    ctx["faceset_720p"] = ctx["tmp"] / "faces0"
    return {"fps": fps, "ratio_to_decode": fps / ctx["results"]["machine"]["decode_fps"],
            "faces_kept": runs[0].faces_kept, "frames": runs[0].frames_read}


def _lazy(module: str, name: str) -> Callable[[dict], dict]:
    def section(ctx: dict) -> dict:
        import importlib
        return getattr(importlib.import_module(module), name)(ctx)
    return section


SECTIONS: dict[str, Callable[[dict], dict]] = {
    "machine": section_machine,
    "extraction": section_extraction,
    "training": _lazy("localswap.bench.training", "section_training"),
    "baseline": _lazy("localswap.bench.training", "section_baseline"),
    "conversion": _lazy("localswap.bench.conversion", "section_conversion"),
    "quality": _lazy("localswap.bench.quality", "section_quality"),
    "sharing": _lazy("localswap.bench.sharing", "section_sharing"),
    "corpus": _lazy("localswap.bench.corpus", "section_corpus"),
    "occlusion": _lazy("localswap.bench.occlusion", "section_occlusion"),
    "adapt": _lazy("localswap.bench.adapt", "section_adapt"),
}
OWN_CLIPS = {"corpus", "occlusion", "adapt"}     # sections that bring their own real clips
BY_NAME_ONLY = {"occlusion", "adapt"}            # minutes of training each: asked for by name
# Minutes each even when short (a training budget, fixed-length phases, 27 clips): --quick
# leaves them out unless named, so it stays a quick look at this machine's speeds (7 min 06 s
# with them on the 2-core CPU, 2026-12-07; the target is under 3 minutes).
SLOW = {"quality", "sharing", "corpus"}


def run(quick: bool = False, device: str = "auto", only: list[str] | None = None,
        progress: Callable[[str], None] = print, tiny: bool = False,
        out_dir: Path | None = None, pair: str = "tune", recipe: str = "default",
        corpus: dict | None = None) -> dict:
    """All sections; `tiny` shrinks every workload to check the output, not the speed.
    Pictures (the quality section's contact sheets and renders) go to `out_dir`; `pair` and
    `recipe` choose the quality section's videos and training recipe; `corpus` the corpus
    section's clips, pairs and minutes of training."""
    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:          # a typo must not run the machine section and report success
        raise UserError(f"unknown bench section {', '.join(unknown)}: the sections are "
                        f"{', '.join(SECTIONS)}")
    quick = quick or tiny
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    results: dict = {"schema": SCHEMA_VERSION, "localswap": __version__, "torch": torch.__version__,
                     "device": describe_device(dev), "device_type": dev.type, "quick": quick}
    with tempfile.TemporaryDirectory(prefix="localswap-bench-") as tmp:
        ctx = {"device": dev, "quick": quick, "tiny": tiny, "tmp": Path(tmp), "results": results,
               "out_dir": out_dir, "pair": pair, "recipe": recipe, **(corpus or {})}
        own = bool(only) and set(only) <= OWN_CLIPS
        if not own:
            ctx["clip"] = samples.clip_720p(Path(tmp), 12 if tiny else 48 if quick else 120)
        for name, fn in SECTIONS.items():
            if only and name not in only and (name != "machine" or own):
                continue
            if not only and (name in BY_NAME_ONLY or (quick and name in SLOW)):
                continue
            progress(f"bench: {name} ...")
            t = time.perf_counter()
            results[name] = fn(ctx)
            results[name]["seconds"] = round(time.perf_counter() - t, 2)
    return results


def _fmt(v) -> str:
    if isinstance(v, float):
        if v >= 1e9:
            return f"{v / 1e9:.1f} G"
        return f"{v:.3g}"
    return str(v)


def table(results: dict) -> str:
    lines = [f"localswap {results['localswap']} bench on {results['device']} "
             f"(torch {results['torch']}{', quick' if results['quick'] else ''})"]

    def add(prefix: str, sec: dict) -> None:
        for key, value in sec.items():
            if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
                add(f"{prefix}{key}.", value)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                lines.append(f"  {prefix}{key}")      # rows, e.g. the sharing section's phases
                lines.extend("    " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items())
                             for row in value)
            elif isinstance(value, dict):
                lines.append(f"  {prefix}{key}")
                lines.extend(f"    {k:<28} {_fmt(v)}" for k, v in value.items())
            else:
                lines.append(f"  {prefix + key:<30} {_fmt(value)}")
    for name in SECTIONS:
        if results.get(name):
            lines.append(f"\n[{name}]")
            add("", results[name])
    return "\n".join(lines)


def write_json(results: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(results, indent=1))
