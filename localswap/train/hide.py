"""Hide the eyes and the mouth from the encoder of an expression-guided model.

A guided decoder is also given where the lids and lips are (faces.landmarks.expression_map),
but as long as the encoder sees the eyes and the mouth it takes them from the picture and
learns to ignore the lines; a decoder then draws the source's commonest expression whatever
the target does. With the eye and mouth regions filled with the surrounding skin the lines are
the only place to learn them from, so the swapped face opens and closes its eyes and mouth
where the target's lines say. Training (on the encoder's input) and conversion (on the
target's crop) use this same function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hide_features(rgb: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """rgb (N, 3, R, R) float in [0, 1]; regions (N, k, R, R) in [0, 1] (the eyes-with-brows
    and mouth masks). Returns rgb with the grown regions replaced by the nearby skin: a
    normalised blur of what lies outside them, so nothing of their content leaks in."""
    n, _, size, _ = rgb.shape
    grow = max(3, size // 16) | 1                       # a margin of ~3% of the crop
    m = (regions.amax(1, keepdim=True) > 0).to(rgb.dtype)    # anti-aliased edges count whole
    m = F.max_pool2d(m, grow, 1, grow // 2)
    m = F.avg_pool2d(m, 3, 1, 1).clamp(0, 1)            # feathered, no hard edge to copy
    # The fill: a wide blur of the pixels outside the regions, divided by the blurred weights
    # (normalised convolution), at a quarter of the size where it is cheap.
    keep = 1 - m
    small = F.avg_pool2d(torch.cat([rgb * keep, keep], 1), 4)
    k = max(3, size // 16) | 1
    small = F.avg_pool2d(small, k, 1, k // 2, count_include_pad=False)
    small = F.avg_pool2d(small, k, 1, k // 2, count_include_pad=False)
    fill = small[:, :3] / small[:, 3:].clamp_min(1e-3)
    fill = F.interpolate(fill, size=(size, size), mode="bilinear", align_corners=False)
    return rgb * keep + fill.clamp(0, 1) * m
