"""How long a training step takes on a device: its FLOPs, the device's FLOP/s, and the two
together (for the planner's Basic rule, localswap/train/planner.py).

`step_flops` counts the matmul and convolution FLOPs of one training step, forward and
backward of the model and the loss, with `torch.utils.flop_counter.FlopCounterMode` under
FakeTensorMode (shapes only: nothing is computed, a 512 px model counts in seconds). The
backward pass is counted op by op (convolution_backward, mm), not taken as 2x the forward.
Elementwise work (activations, Adam, augmentation) is not counted: it is in the efficiency
and the launch floor below. `matmul_flops_per_s` measures the device's dense matmul rate on
the spot, once per device and precision in a process.
"""
from __future__ import annotations

import functools
import time

import torch

from localswap.train.losses import face_loss
from localswap.train.models import build_model

# Share of the matmul peak a training step reaches. Measured on this project's CPU only
# (docs/benchmarks.md: 30-49% of the bf16 matmul peak, localswap 64 px 34%); a GPU run
# should replace it.
EFFICIENCY = 0.3
# A step dispatches about 800-1,000 kernels (forward, backward, loss, Adam; counted with a
# dispatch mode at 64 and 256 px); at ~5 us a launch that is ~5 ms a fast card cannot hide.
LAUNCH_FLOOR_S = 0.005
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def step_flops(arch: str, resolution: int, width: int, batch: int = 1) -> int:
    """FLOPs of one training step at `batch` samples (one face of A and one of B each):
    forward and backward of the model (guided, as Basic trains localswap) and the loss."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    guided = arch == "localswap"
    with FakeTensorMode():
        model = build_model(arch, resolution, width, channels_last=False, guided=guided)
        x = torch.rand(batch, 3, resolution, resolution)
        masks = torch.rand(batch, 3, resolution, resolution)
        guides = (torch.rand(batch, 1, resolution, resolution),) * 2 if guided else ()
        counter = FlopCounterMode(display=False)
        with counter:
            ra, ma, rb, mb = model(x, x, *guides)
            loss = face_loss(ra, ma, x, masks) + face_loss(rb, mb, x, masks)
            loss.backward()
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=None)
def matmul_flops_per_s(device: str = "cuda", precision: str = "bf16") -> float:
    """The device's dense matmul rate in FLOP/s, measured now: the best of three rounds of
    square matmuls (4096 on CUDA, 512 on the CPU, where 4096 would take seconds)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n, reps = (4096, 10) if cuda else (512, 3)
    dtype = DTYPES[precision]
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    a @ b                          # first call: cuBLAS/oneDNN set-up, clocks ramping up
    sync()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 * reps / best


def step_seconds(flops: float, flops_per_s: float) -> float:
    """Expected seconds of a step of `flops` on a device of `flops_per_s` (matmul peak)."""
    return flops / (flops_per_s * EFFICIENCY) + LAUNCH_FLOOR_S
