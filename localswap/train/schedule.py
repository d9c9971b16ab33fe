"""The training recipe over time: learning rate (warm-up, peak, cosine decay) and the final
phase without random warp (DeepFaceLab's "sharpening" trick).

Both follow the run's progress `f` in [0, 1]: the larger of iterations done / target and
minutes spent / time budget, so a time-budgeted run (Basic mode) decays on time and an
iteration-targeted run on iterations.
"""
from __future__ import annotations

import math

from localswap.settings import TrainSettings

FLOOR = 0.1          # the cosine ends at this fraction of the peak learning rate
LOWEST_AUTO_LR = 5e-5    # DeepFaceLab's and faceswap's rate, safe at every resolution


def auto_lr(resolution: int) -> float:
    """The peak learning rate for a new model of this size. 1e-3 was chosen at 64 px on the
    time-to-quality benchmark; at 96 px it diverged (the decoder saturated) where 3e-4 trained,
    so it falls with the cube of the size, to DeepFaceLab's 5e-5 from about 170 px up."""
    return max(LOWEST_AUTO_LR, 1e-3 * (64 / resolution) ** 3)


def progress(settings: TrainSettings, iteration: int, run_seconds: float) -> float:
    f = iteration / settings.iterations if settings.iterations else 0.0
    if settings.max_minutes:
        f = max(f, run_seconds / (settings.max_minutes * 60))
    return min(1.0, max(0.0, f))


def learning_rate(settings: TrainSettings, iteration: int, f: float) -> float:
    """Linear warm-up over the model's first `warmup` iterations (at most a tenth of the
    target), then the peak `lr`, decaying
    along a cosine to FLOOR x lr at the end of the run (`schedule` cosine), or flat."""
    lr = settings.lr
    warmup = min(settings.warmup, settings.iterations // 10)    # short runs: a short warm-up
    if warmup and iteration < warmup:
        return lr * (iteration + 1) / warmup
    if settings.schedule == "constant":
        return lr
    return lr * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * f)))


def warp_on(settings: TrainSettings, f: float) -> bool:
    """Random warp teaches the swap; switching it off for the last `sharpen` share of the run
    lets the decoders settle on sharp detail."""
    return settings.warp and f < 1 - settings.sharpen
