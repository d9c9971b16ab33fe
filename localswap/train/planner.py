"""What to train on a device: the GPU planner.

`plan(device)` picks architecture size (width), resolution, batch and precision so that the
estimated peak memory stays under 85% of the free memory. For Basic (`basic=True`: the user
fixed neither iterations nor a time budget) it also weighs time, by the rule Basic follows
(issue 16: quality per minute): of the rungs that fit, the largest whose Basic iteration count
is expected to take at most BASIC_GPU_MINUTES on this card; else the smallest that fits.
Expected time = STEP_FLOPS (measured per rung, see localswap.train.flops) x batch over the
card's matmul FLOP/s measured on the spot, at the efficiency and launch floor flops.py gives.

Where the numbers come from. TABLE holds, per model, the parameter count and the bytes autograd
saves for the backward pass per training sample (one face of A plus one of B) and fixed, in
fp32 and under 16-bit autocast. They are measured, not guessed: `localswap.train.memory.measure`
runs the real model and loss under saved-tensor hooks (in FakeTensorMode, so nothing is
computed) and counts bytes; `python -m localswap.train.planner --measure` prints the rows below
again, and tests/test_gpu.py re-measures some and compares. The peak is then
    16 B/param (weights, gradients, Adam's two moments) + 2 B/param for autocast's 16-bit copies
    + 1.2 x (batch x per-sample + fixed saved activations)   (allocator slack and transients)
    + the faces kept on the GPU + 768 MiB for the CUDA context and cuDNN workspaces
    + under DDP (torchrun): 4 B/param for the gradient buckets + 512 MiB of NCCL buffers
      (an out-of-memory error there ends the run: the ranks cannot halve their batch alone).
Free memory comes from torch for the device training uses (CUDA order, after
CUDA_VISIBLE_DEVICES), counting memory this process's allocator holds but does not use as free;
NVML's list (PCI order) is only for the System panel and utilisation.
Check on this project's CPU (RSS high-water mark of one step, large allocations forced to mmap
so that freed memory leaves RSS): a step's peak above idle was 0.82-0.87 x (saved activations +
gradients) for four configurations, so the saved-tensor count bounds the real peak.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from localswap.gpu import MiB, DeviceInfo, Probe, cpu_has_native_bf16, probe

SAFETY = 0.85               # keep the estimated peak under this share of free memory
CONTEXT_MB = 768            # CUDA context + cuDNN/cuBLAS workspaces, not in our tensors
DDP_MB = 512                # NCCL communicator buffers per rank (a first figure: doctor checks it)
DDP_BYTES_PER_PARAM = 4     # DDP's fp32 gradient buckets, a second copy of the gradients
SLACK = 1.2                 # caching-allocator fragmentation and backward transients
MIN_BATCH, MAX_BATCH = 8, 16
BATCHES = (16, 12, 8, 6, 4)
DATA_SHARE = 0.25           # faces stay on the GPU if they take at most this share of budget
BYTES_PER_FACE = 7          # RGB + 3 mask channels + expression lines, uint8, per pixel
BLINK_SHARE = 0.25          # train.blink adds synthetic blinks: this share of the faces again

# (arch, resolution, width): (params, act_fp32, fixed_fp32, act_half, fixed_half), bytes.
# Output of `python -m localswap.train.planner --measure` (torch 2.14, localswap 0.1).
TABLE = {
    ("original", 64, 128): (82062470, 13612800, 88, 7595776, 164075096),
    ("localswap", 64, 32): (6773576, 7479040, 88, 4561664, 13531160),
    ("localswap", 96, 32): (9326280, 15840512, 88, 9867520, 18626584),
    ("localswap", 128, 32): (14370760, 29223680, 88, 18163456, 28719128),
    ("localswap", 128, 48): (32321960, 40087296, 88, 23595264, 64610296),
    ("localswap", 160, 48): (34315688, 60348672, 88, 35809536, 68591608),
    ("localswap", 192, 48): (37563944, 87067392, 88, 51731712, 75079672),
    ("localswap", 192, 64): (66766216, 110329600, 88, 63362816, 133468120),
    ("localswap", 224, 64): (73588616, 150332672, 88, 86406400, 147099608),
    ("localswap", 256, 64): (91667336, 198281984, 88, 113902336, 183275480),
    ("localswap", 256, 80): (143217768, 240078592, 88, 134800640, 286361528),
    ("localswap", 320, 80): (143222248, 367281920, 88, 206882560, 286361528),
    ("localswap", 384, 80): (152240488, 529225472, 88, 298251520, 304383928),
    ("localswap", 384, 96): (219211592, 620907264, 88, 344092416, 438306712),
    ("localswap", 448, 96): (234557000, 845455104, 88, 468680448, 468977560),
    ("localswap", 512, 96): (275241032, 1107247872, 88, 613807872, 550373272),
    ("localswap", 512, 128): (489286408, 1434110720, 88, 777239296, 978427736),
}
# Per-sample FLOPs of one training step (forward + backward of model and loss; one sample = a
# face of A and one of B), `localswap.train.flops.step_flops`. Output of
# `python -m localswap.train.planner --measure` (torch 2.14, localswap 0.1).
STEP_FLOPS = {
    ("original", 64, 128): 22769216640,
    ("localswap", 64, 32): 2568924288,
    ("localswap", 96, 32): 5271860352,
    ("localswap", 128, 32): 11000200320,
    ("localswap", 128, 48): 24394513536,
    ("localswap", 160, 48): 34932585600,
    ("localswap", 192, 48): 50304093312,
    ("localswap", 192, 64): 88750738560,
    ("localswap", 224, 64): 120800760960,
    ("localswap", 256, 64): 164288650368,
    ("localswap", 256, 80): 255596158080,
    ("localswap", 320, 80): 363982032000,
    ("localswap", 384, 80): 524136512640,
    ("localswap", 384, 96): 752411671680,
    ("localswap", 448, 96): 1024118213760,
    ("localswap", 512, 96): 1352256068736,
    ("localswap", 512, 128): 2394892672128,
}
BASIC_GPU_MINUTES = 20      # Basic's training time on a GPU: "about 20 minutes" (issue 16)
# The planner walks this ladder from the top and takes the first rung that fits with a batch
# of at least MIN_BATCH: resolution first (it is what viewers see), then width.
LADDER = [k for k in sorted(TABLE, key=lambda k: (-k[1], -k[2])) if k[0] == "localswap"]
CPU_PLAN = ("localswap", 64, 32, 8)     # arch, resolution, width, batch


def gpu_resolutions() -> list[int]:
    return sorted({k[1] for k in LADDER})


@dataclass
class Plan:
    device: str                 # "cuda" or "cpu"
    arch: str
    resolution: int
    width: int
    batch: int
    precision: str              # "bf16", "fp16" or "fp32"
    est_peak_mb: int = 0
    budget_mb: int = 0          # SAFETY x free memory (0 on the CPU)
    data_on_device: bool = True
    note: str = ""
    expected_minutes: float = 0.0   # Basic's training time on this card (0: not estimated)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        s = (f"{self.arch} {self.resolution} px, width {self.width}, batch {self.batch}, "
             f"{self.precision} on {self.device}")
        if self.budget_mb:
            s += f" (estimated peak {self.est_peak_mb} MiB of a {self.budget_mb} MiB budget)"
        return s + (f"; {self.note}" if self.note else "")


def row(arch: str, resolution: int, width: int) -> tuple:
    """The TABLE row, measured now (about a second) for a configuration not in it."""
    if (arch, resolution, width) not in TABLE:
        from localswap.train.memory import measure
        m = measure(arch, resolution, width)
        TABLE[(arch, resolution, width)] = (m["params"], m["act_fp32"], m["fixed_fp32"],
                                            m["act_half"], m["fixed_half"])
    return TABLE[(arch, resolution, width)]


def sample_flops(arch: str, resolution: int, width: int) -> int:
    """The STEP_FLOPS entry, counted now (a few seconds) for a configuration not in it."""
    if (arch, resolution, width) not in STEP_FLOPS:
        from localswap.train.flops import step_flops
        STEP_FLOPS[(arch, resolution, width)] = step_flops(arch, resolution, width)
    return STEP_FLOPS[(arch, resolution, width)]


def expected_minutes(p: Plan, flops_per_s: float, iterations: int) -> float:
    """Expected minutes of `iterations` steps of plan `p` on a card of `flops_per_s`."""
    from localswap.train.flops import step_seconds
    flops = p.batch * sample_flops(p.arch, p.resolution, p.width)
    return iterations * step_seconds(flops, flops_per_s) / 60


def estimate_mb(arch: str, resolution: int, width: int, batch: int, precision: str,
                data_mb: float = 0.0, world: int = 1) -> int:
    """Estimated peak GPU memory of training, MiB, per rank (see the module docstring)."""
    params, act32, fix32, act16, fix16 = row(arch, resolution, width)
    half = precision in ("bf16", "fp16")
    static = params * (18 if half else 16)
    ddp = params * DDP_BYTES_PER_PARAM / MiB + DDP_MB if world > 1 else 0
    acts = batch * (act16 if half else act32) + (fix16 if half else fix32)
    return int((static + SLACK * acts) / MiB + data_mb + CONTEXT_MB + ddp)


def cuda_precision(capability) -> str:
    """bf16 from Ampere (8.x) on, fp16 (with loss scaling) on Volta/Turing, else fp32."""
    if not capability:
        return "fp16"
    major = capability[0]
    return "bf16" if major >= 8 else "fp16" if major >= 7 else "fp32"


def cpu_training_precision() -> str:
    """What training on this CPU runs in: bf16 where the CPU has it in hardware (AMX or
    AVX512-BF16), else fp32. The one answer for the trainer, `localswap gpu` and the app."""
    return "bf16" if cpu_has_native_bf16() else "fp32"


def _first(device) -> DeviceInfo | None:
    if isinstance(device, Probe):
        return device.devices[0] if device.devices else None
    return device


def plan(device: DeviceInfo | Probe | None = None, *, arch: str = "auto", resolution: int = 0,
         width: int = 0, batch: int = 0, precision: str = "auto", faces: int = 4000,
         max_resolution: int = 512, cpu_precision: str = "auto", world: int = 1,
         basic: bool = False, throughput: float | None = None) -> Plan:
    """The training plan for one device (None or an empty probe: the CPU).

    Settings the user fixed (non-zero / not "auto") are kept and the rest planned around them;
    `faces` is the number of faces in both facesets, `max_resolution` their crop size (a model
    larger than its faces gains nothing); `world` the number of torchrun ranks;
    `cpu_precision` "auto" is what this CPU trains in (see cpu_training_precision()).
    `basic`: the run is Basic, so the model is also sized by time (module docstring), unless
    the user fixed the architecture, resolution or width; `throughput` the card's matmul
    FLOP/s, None = measure it on the card (torch's device `device.index`)."""
    if cpu_precision == "auto":
        cpu_precision = cpu_training_precision()
    info = _first(device)
    if info is None:
        note = device.note if isinstance(device, Probe) and device.note else "no GPU"
        return _cpu_plan(arch, resolution, width, batch, precision, cpu_precision, note)
    prec = cuda_precision(info.compute_capability) if precision == "auto" else precision
    budget = SAFETY * info.free_mb
    rungs = [k for k in LADDER if k[1] <= max(max_resolution, 64)] or LADDER[-1:]
    if arch == "original":
        rungs = [("original", 64, width or 128)]
    if resolution or width:
        fixed = [k for k in rungs if (not resolution or k[1] == resolution)
                 and (not width or k[2] == width)]
        rungs = fixed or [(k[0], resolution or k[1], width or k[2]) for k in rungs[-1:]]
    for min_batch in (MIN_BATCH, BATCHES[-1], 1):
        fits = [p for p in (_fit(k, batch, min_batch, prec, budget, faces, world)
                            for k in rungs) if p]
        if not fits:
            continue
        if basic and arch != "original" and not (resolution or width):
            return _for_basic(fits, info, throughput)
        return fits[0]
    return _cpu_plan(arch, resolution, width, batch, precision, cpu_precision,
                     f"{info.name} has only {info.free_mb} MiB free, too little for the "
                     "smallest model")


def _fit(rung: tuple, batch: int, min_batch: int, prec: str, budget: float, faces: int,
         world: int) -> Plan | None:
    """The plan for this rung with the largest batch that fits `budget`, or None."""
    a, res, w = rung
    data_mb = faces * (1 + BLINK_SHARE) * BYTES_PER_FACE * res * res / MiB
    on_device = data_mb <= DATA_SHARE * budget
    used_data = data_mb if on_device else 0.0
    for b in ([batch] if batch else BATCHES):
        peak = estimate_mb(a, res, w, b, prec, used_data, world)
        if b >= min_batch and peak <= budget:
            note = "" if on_device else ("the faces stay in host memory (too many for "
                                         "the GPU budget); batches are copied over")
            if batch == 0 and min_batch < MIN_BATCH:
                note = _join(note, "small batch: little memory free")
            return Plan("cuda", a, res, w, b, prec, peak, int(budget), on_device, note)
    return None


def _for_basic(fits: list[Plan], info: DeviceInfo, throughput: float | None) -> Plan:
    """Of `fits` (largest first), the largest expected to train Basic's iterations within
    BASIC_GPU_MINUTES, else the smallest; the note says why."""
    from localswap.train.budget import basic_iterations
    measured = throughput is None
    if measured:
        try:
            from localswap.train.flops import matmul_flops_per_s
            throughput = matmul_flops_per_s(f"cuda:{info.index}", fits[0].precision)
        except (RuntimeError, AssertionError) as exc:     # torch without CUDA, a lost card
            fits[0].note = _join(fits[0].note, f"sized by memory: the card's speed could not "
                                               f"be measured ({exc})")
            return fits[0]
    its = basic_iterations("cuda")
    minutes = [expected_minutes(p, throughput, its) for p in fits]
    i = next((i for i, m in enumerate(minutes) if m <= BASIC_GPU_MINUTES), len(fits) - 1)
    chosen, top = fits[i], fits[0]
    chosen.expected_minutes = round(minutes[i], 1)
    speed = f"{throughput / 1e12:.0f} TFLOP/s {chosen.precision} matmul" + \
        (" measured" if measured else "")
    if i == 0:
        why = f"Basic's {its:,} iterations: about {minutes[0]:.0f} min on this card ({speed})"
    else:
        why = (f"{top.resolution} px width {top.width} would take about {minutes[0]:.0f} min "
               f"for Basic's {its:,} iterations on this card ({speed}); {chosen.resolution} "
               f"px width {chosen.width}: about {minutes[i]:.0f} min")
        if minutes[i] > BASIC_GPU_MINUTES:
            why += f", the smallest model that fits (Basic aims at {BASIC_GPU_MINUTES} min)"
    chosen.note = _join(chosen.note, why)
    return chosen


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


def _cpu_plan(arch, resolution, width, batch, precision, cpu_precision, why) -> Plan:
    a, res, w, b = CPU_PLAN
    if arch == "original":
        a, res, w = "original", 64, width or 128
    prec = cpu_precision if precision == "auto" else precision
    return Plan("cpu", a, resolution or res, width or w, batch or b, prec,
                note=f"{why}. Training on the CPU is slow: the plan is a small model")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--measure" in argv:
        from localswap.train.memory import measure
        for arch, res, width in TABLE:
            m = measure(arch, res, width)
            print(f'    ("{arch}", {res}, {width}): ({m["params"]}, {m["act_fp32"]}, '
                  f'{m["fixed_fp32"]}, {m["act_half"]}, {m["fixed_half"]}),')
        from localswap.train.flops import step_flops
        print("STEP_FLOPS")
        for arch, res, width in TABLE:
            print(f'    ("{arch}", {res}, {width}): {step_flops(arch, res, width)},')
        return 0
    p = probe()
    print(json.dumps({"probe": p.to_dict(), "plan": plan(p).to_dict()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
