"""Training speed on this machine: `python -m localswap.train.benchmark FACESET_A FACESET_B`.

Per model and precision: the model-only step (forward + loss + backward + Adam on a fixed,
already augmented batch), the full step (sampling + on-device augmentation + the same), the
augmentation alone, examples per second (faces of A and B per second), FLOPs counted by
torch.utils.flop_counter for the model-only step, and that rate as a share of a matmul peak
measured in the same run. Model-only and full steps alternate, so load from other programs
falls on both alike. Prints one JSON line per row and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from localswap.train.augment import AugmentSettings, augment
from localswap.train.data import FaceData
from localswap.train.losses import face_loss
from localswap.train.models import build_model
from localswap.train.step import DTYPES, Step


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n ** 3 / _median(lambda: a @ b, 5)


def measure(arch: str, res: int, width: int, precision: str, fs_a, fs_b, batch: int,
            repeats: int, peaks: dict) -> dict:
    dev = torch.device("cpu")
    da, db = FaceData(fs_a, res, dev), FaceData(fs_b, res, dev)
    torch.manual_seed(0)
    model = build_model(arch, res, width)
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.5, 0.999))
    step = Step(model, opt, da, db, dev, precision, AugmentSettings())
    gen = torch.Generator().manual_seed(1)
    fa, fb = augment(da.sample(batch, gen), gen), augment(db.sample(batch, gen), gen)
    dtype = DTYPES[precision]

    def model_only():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            ra, ma, rb, mb = model(fa[0], fb[0])
        (face_loss(ra, ma, fa[1], fa[2]) + face_loss(rb, mb, fb[1], fb[2])).backward()
        opt.step()

    seeds = iter(range(1 << 30))
    model_only()
    step(batch, next(seeds))
    m_t, f_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        model_only()
        m_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        step(batch, next(seeds))
        f_t.append(time.perf_counter() - t)
    m, f = statistics.median(m_t), statistics.median(f_t)
    aug = _median(lambda: (augment(da.sample(batch, gen), gen),
                           augment(db.sample(batch, gen), gen)), repeats)
    with FlopCounterMode(display=False) as counter:
        model_only()
    flops = counter.get_total_flops()
    peak = peaks["bf16" if precision == "bf16" else "fp32"]
    return dict(arch=arch, res=res, width=width, batch=batch, precision=precision,
                params=sum(p.numel() for p in model.parameters()), model_s=m, full_s=f,
                augment_s=aug, augment_share=aug / f, eg_s=2 * batch / f, gflop=flops / 1e9,
                gflop_s=flops / m / 1e9, peak_share=flops / m / peak,
                load=os.getloadavg()[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("faceset_a")
    p.add_argument("faceset_b")
    p.add_argument("--configs", default="original:64:128,localswap:64:32,localswap:128:32",
                   help="arch:resolution:width,...")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--batch", type=int, default=8, help="faces of each identity per step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(json.dumps({"threads": torch.get_num_threads(), "load": os.getloadavg()[0],
                      "matmul_gflop_s": {k: v / 1e9 for k, v in peaks.items()}}), flush=True)
    rows = []
    for config in args.configs.split(","):
        arch, res, width = config.split(":")
        for prec in args.precisions.split(","):
            rows.append(measure(arch, int(res), int(width), prec, args.faceset_a,
                                args.faceset_b, args.batch, args.repeats, peaks))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | precision | model-only step | full step | augmentation | EG/s | "
          "GFLOP/step | GFLOP/s | share of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} {r['res']} px w{r['width']} | {r['precision']} | "
              f"{r['model_s']:.2f} s | {r['full_s']:.2f} s | {r['augment_s'] * 1000:.0f} ms "
              f"({100 * r['augment_share']:.1f}%) | {r['eg_s']:.1f} | {r['gflop']:.0f} | "
              f"{r['gflop_s']:.1f} | {100 * r['peak_share']:.0f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
