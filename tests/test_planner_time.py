"""The planner's Basic rule: of the rungs that fit memory, the largest expected to train Basic's
iterations in BASIC_GPU_MINUTES on the card (issue 16: quality per minute)."""
from __future__ import annotations

import math
import time

from localswap import gpu
from localswap.settings import TrainSettings
from localswap.train import budget, planner
from localswap.train.flops import matmul_flops_per_s

FAST, SLOW = 400e12, 20e12      # FLOP/s: a datacenter card's bf16 matmul, a small consumer one
ITS = budget.basic_iterations("cuda")


def card(gb: float) -> gpu.DeviceInfo:
    total = int(gb * 1024)
    return gpu.DeviceInfo(0, f"test card {gb} GB", total, int(total * 0.95), "", 0, [8, 9])


def minutes(p: planner.Plan, flops_per_s: float) -> float:
    return planner.expected_minutes(p, flops_per_s, ITS)


def fitting(device: gpu.DeviceInfo, crop: int) -> list[planner.Plan]:
    """Every rung's memory-rule plan on `device`, largest first (the rungs Basic chooses from)."""
    plans = [planner.plan(device, resolution=r, width=w, max_resolution=crop)
             for _, r, w in planner.LADDER if r <= crop]
    return [p for p in plans if p.device == "cuda" and p.batch >= planner.MIN_BATCH]


def test_basic_picks_a_smaller_model_on_a_slower_card_within_the_time():
    big, small = card(141), card(12)
    for crop in (256, 512):
        fast = planner.plan(big, max_resolution=crop, basic=True, throughput=FAST)
        slow = planner.plan(small, max_resolution=crop, basic=True, throughput=SLOW)
        assert (slow.resolution, slow.width) < (fast.resolution, fast.width), (crop, slow, fast)
        for device, p, speed in ((big, fast, FAST), (small, slow, SLOW)):
            rungs = fitting(device, crop)
            # Some rung fits the time on both cards, so the choice must too ...
            assert min(minutes(r, speed) for r in rungs) <= planner.BASIC_GPU_MINUTES
            assert p.expected_minutes == round(minutes(p, speed), 1)
            assert 0 < p.expected_minutes <= planner.BASIC_GPU_MINUTES, (crop, p)
            # ... and it is the largest such rung: every larger one would take longer.
            larger = [r for r in rungs if (r.resolution, r.width) > (p.resolution, p.width)]
            assert all(minutes(r, speed) > planner.BASIC_GPU_MINUTES for r in larger), (crop, p)
            assert p.est_peak_mb <= 0.85 * device.free_mb and p.batch >= planner.MIN_BATCH
            assert f"about {p.expected_minutes:.0f} min" in p.note
    # The slow card could hold a far larger model: memory alone would take hours there.
    by_memory = planner.plan(small, max_resolution=256)
    assert minutes(by_memory, SLOW) > 3 * planner.BASIC_GPU_MINUTES
    basic = planner.plan(small, max_resolution=256, basic=True, throughput=SLOW)
    assert f"{by_memory.resolution} px width {by_memory.width} would take about" in basic.note


def test_without_basic_or_with_the_size_fixed_the_memory_rule_stands():
    small = card(12)
    by_memory = planner.plan(small, max_resolution=256)
    assert (by_memory.resolution, by_memory.width) == \
        (fitting(small, 256)[0].resolution, fitting(small, 256)[0].width)     # largest fit
    assert planner.plan(small, max_resolution=256, throughput=SLOW) == by_memory
    fixed = planner.plan(small, max_resolution=256, resolution=256, width=80, basic=True,
                         throughput=SLOW)
    assert (fixed.resolution, fixed.width, fixed.expected_minutes) == (256, 80, 0.0)
    original = planner.plan(small, arch="original", basic=True, throughput=SLOW)
    assert (original.arch, original.expected_minutes) == ("original", 0.0)


def test_too_slow_for_any_model_takes_the_smallest_that_fits_and_says_so():
    p = planner.plan(card(24), max_resolution=256, basic=True, throughput=1e12)
    smallest = fitting(card(24), 256)[-1]
    assert (p.resolution, p.width) == (smallest.resolution, smallest.width)
    assert p.expected_minutes > planner.BASIC_GPU_MINUTES and "smallest model" in p.note


def test_basic_is_what_the_user_left_to_the_bar():
    assert budget.is_basic(TrainSettings())
    assert not budget.is_basic(TrainSettings(iterations=500))
    assert not budget.is_basic(TrainSettings(max_minutes=30))


def test_matmul_throughput_is_measured_here_and_kept():
    precision = planner.cpu_training_precision()
    t = time.perf_counter()
    rate = matmul_flops_per_s("cpu", precision)
    took = time.perf_counter() - t
    assert math.isfinite(rate) and 1e8 < rate < 1e14, rate    # a CPU: 0.1 GFLOP/s - 100 TFLOP/s
    assert took < 10
    assert matmul_flops_per_s("cpu", precision) == rate        # cached for the process
