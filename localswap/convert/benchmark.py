"""Conversion speed on a 720p clip: frames/s with 64 and 128 px models beside the same clip's
decode+encode-only frames/s (the floor no converter can beat), and busy time per stage.

`section_conversion(ctx)` has the shape of a `localswap bench` section; run this module on its
own (`python -m localswap.convert.benchmark [--frames N] [--repeats N]`) for a quick reading.
Speed does not depend on what a model learned, so freshly initialised models are timed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from localswap import media, samples
from localswap.convert.convert import convert
from localswap.convert.swapper import Swapper
from localswap.settings import ConvertSettings

MODELS = {"64px": ("localswap", 64), "128px": ("localswap", 128)}


def make_clip(folder: Path, frames: int) -> Path:
    path = folder / f"bench_720p_{frames}.mp4"
    if not path.exists():
        samples.encode(path, samples.moving_frames(
            samples.astronaut(), samples.FACE_CENTRES["astronaut"], frames, size=(1280, 720),
            zoom=1.8), fps=24)
    return path


def save_fresh_model(folder: Path, arch: str, resolution: int) -> Path:
    from safetensors.torch import save_file

    from localswap.train.models import build_model
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(arch, resolution)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "manifest.json").write_text(json.dumps(
        {"arch": arch, "resolution": resolution, "face_type": "whole_face", "iteration": 0}))
    return folder


def decode_encode_fps(clip: Path, out: Path) -> float:
    """Decode every frame and encode it again (audio kept): the same writer the converter
    uses, with decoding in its own thread as in the converter."""
    import queue
    import threading
    info = media.probe(clip)
    q: queue.Queue = queue.Queue(8)

    def pump():
        for item in media.read_frames(clip, info=info):
            q.put(item)
        q.put(None)
    t = time.perf_counter()
    threading.Thread(target=pump, daemon=True).start()
    with media.VideoWriter(out, info.width, info.height, info.fps, audio_from=clip) as w:
        while (item := q.get()) is not None:
            w.write(item[2])
    return w.frames / (time.perf_counter() - t)


def section_conversion(ctx: dict) -> dict:
    """ctx: clip (Path), tmp (Path), quick (bool), device (torch.device), results (dict with
    machine.decode_encode_fps if measured already)."""
    tmp, clip = Path(ctx["tmp"]), Path(ctx["clip"])
    repeats = 1 if ctx.get("quick") else int(ctx.get("repeats", 2))
    floor = (ctx.get("results", {}).get("machine", {}) or {}).get("decode_encode_fps")
    if not floor:
        floor = statistics.median(decode_encode_fps(clip, tmp / "floor.mp4")
                                  for _ in range(repeats))
    out: dict = {"decode_encode_fps": round(floor, 2)}
    device = str(ctx.get("device", "auto"))
    for label, (arch, res) in MODELS.items():
        swapper = Swapper(save_fresh_model(tmp / f"model_{label}", arch, res), device)
        runs = [convert(clip, swapper, tmp / f"conv_{label}.mp4", ConvertSettings())
                for _ in range(repeats)]
        best = sorted(runs, key=lambda r: r.fps)[len(runs) // 2]
        out[label] = {"fps": round(best.fps, 2), "ratio": round(best.fps / floor, 3),
                      "faces": best.faces, "frames": best.frames,
                      "stages_ms_per_frame": {k: round(1000 * v / best.frames, 1)
                                              for k, v in best.stages.items()}}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localswap-convbench-") as tmp:
        clip = make_clip(Path(tmp), args.frames)
        res = section_conversion({"tmp": tmp, "clip": clip, "repeats": args.repeats,
                                  "device": args.device})
    res["threads"] = torch.get_num_threads()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
