"""Conversion speed on a 720p clip: frames/s with 64 and 128 px models beside the same clip's
decode+encode-only frames/s (the floor no converter can beat), and busy time per stage.

`section_conversion(ctx)` has the shape of a `localswap bench` section; run this module on its
own (`python -m localswap.bench.conversion [--frames N] [--repeats N]`) for a quick reading.
Speed does not depend on what a model learned, so freshly initialised models are timed.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from localswap import media
from localswap.bench import samples
from localswap.convert.render import convert
from localswap.convert.swapper import Swapper
from localswap.settings import ConvertSettings

MODELS = {"64px": ("localswap", 64), "128px": ("localswap", 128)}


def save_fresh_model(folder: Path, arch: str, resolution: int) -> Path:
    from safetensors.torch import save_file

    from localswap.train.models import build_model
    folder.mkdir(parents=True, exist_ok=True)
    guided = arch == "localswap"          # as the trainer makes it by default
    model = build_model(arch, resolution, guided=guided, hides=guided)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "manifest.json").write_text(json.dumps(
        {"arch": arch, "resolution": resolution, "face_type": "whole_face", "iteration": 0,
         "guided": guided, "guide_hides": guided, "guide_map": "filled"}))
    return folder


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def decode_encode(clip: Path, out: Path) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of decoding every frame and encoding it again, audio kept:
    the same reader and writer the converter uses, decoding in its own thread as there."""
    info = media.probe(clip)
    c, t = _cpu(), time.perf_counter()
    with media.VideoWriter(out, info.width, info.height, info.fps, audio_from=clip) as w:
        for _, _, frame in media.prefetch(media.read_frames(clip, info=info)):
            w.write(frame)
    return w.frames / (time.perf_counter() - t), 1000 * (_cpu() - c) / w.frames


def section_conversion(ctx: dict) -> dict:
    """ctx: clip (Path), tmp (Path), quick (bool), device, repeats (int, optional).

    Each repeat times decode+encode-only and then each model on the same clip, back to back,
    so a neighbour's load on a shared machine hits both sides of a ratio alike; medians are
    reported. CPU ms per frame (this process + ffmpeg) is the load-independent figure."""
    tmp, clip = Path(ctx["tmp"]), Path(ctx["clip"])
    repeats = 1 if ctx.get("quick") else int(ctx.get("repeats", 3))
    device = str(ctx.get("device", "auto"))
    swappers = {label: Swapper(save_fresh_model(tmp / f"model_{label}", arch, res), device)
                for label, (arch, res) in MODELS.items()}
    floor: list[tuple[float, float]] = []
    runs: dict[str, list] = {label: [] for label in MODELS}
    for _ in range(repeats):
        floor.append(decode_encode(clip, tmp / "floor.mp4"))
        for label, swapper in swappers.items():
            c = _cpu()
            r = convert(clip, swapper, tmp / f"conv_{label}.mp4", ConvertSettings())
            runs[label].append((r, 1000 * (_cpu() - c) / r.frames, r.fps / floor[-1][0]))
    med = statistics.median
    out: dict = {"decode_encode_fps": round(med(f for f, _ in floor), 2),
                 "decode_encode_cpu_ms": round(med(c for _, c in floor), 1),
                 "repeats": repeats, "device": str(next(iter(swappers.values())).device),
                 "precision": str(next(iter(swappers.values())).dtype or "float32")}
    for label, rs in runs.items():
        mid = sorted(rs, key=lambda x: x[0].fps)[len(rs) // 2][0]
        out[label] = {
            "fps": round(med(r.fps for r, _, _ in rs), 2),
            "ratio": round(med(k for _, _, k in rs), 3),
            "cpu_ms": round(med(c for _, c, _ in rs), 1),
            "faces": mid.faces, "frames": mid.frames,
            "busy_ms_per_frame": {k: round(1000 * v / mid.frames, 1)
                                  for k, v in mid.stages.items()}}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localswap-convbench-") as tmp:
        clip = samples.clip_720p(Path(tmp), args.frames)
        res = section_conversion({"tmp": tmp, "clip": clip, "repeats": args.repeats,
                                  "device": args.device})
    res["threads"] = torch.get_num_threads()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
