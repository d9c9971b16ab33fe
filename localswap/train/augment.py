"""Batched augmentation on the training device (no CPU data loader to starve the GPU).

From a uint8 batch (N, 6, R, R) = RGB + face/eyes/mouth masks it makes:
  input  : the face under a random affine (rotation, scale, shift, flip) AND a smooth random warp
  target : the same face under the same affine only ("the unwarped face")
  masks  : the masks under the affine, matching the target
Colour and lighting jitter is applied identically to input and target, so the decoder learns to
carry the input's lighting into its output (what a swap needs) rather than to undo it.
Every random number comes from `gen`, so a step is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentSettings:
    rotation: float = 10.0       # degrees, +/-
    scale: float = 0.05          # relative, +/-
    shift: float = 0.05          # fraction of the crop, +/-
    flip: bool = True
    warp: float = 0.05           # displacement of the coarse warp grid, fraction of the crop
    warp_cells: int = 5          # coarse grid points per side (edges stay put)
    colour: float = 0.1          # strength of the colour / lighting jitter
    enabled: bool = True


def _uniform(gen: torch.Generator, n: int, span: float, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen, device=device) * 2 - 1) * span


def affine_grid(n: int, size: int, s: AugmentSettings, gen: torch.Generator, device):
    angle = _uniform(gen, n, math.radians(s.rotation), device)
    scale = 1 + _uniform(gen, n, s.scale, device)
    tx, ty = (_uniform(gen, n, 2 * s.shift, device) for _ in range(2))  # grid spans -1..1
    flip = torch.where(torch.rand(n, generator=gen, device=device) < (0.5 if s.flip else 0.0),
                       -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1)
    return F.affine_grid(theta, (n, 1, size, size), align_corners=False)


def warp_offsets(n: int, size: int, s: AugmentSettings, gen: torch.Generator, device):
    """A smooth displacement field (n, size, size, 2): random coarse grid, bicubic upsampled."""
    k = s.warp_cells
    coarse = (torch.rand(n, 2, k, k, generator=gen, device=device) * 2 - 1) * (2 * s.warp)
    coarse[:, :, [0, -1], :] = 0
    coarse[:, :, :, [0, -1]] = 0
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)


def colour_jitter(rgb: list[torch.Tensor], s: AugmentSettings, gen: torch.Generator):
    """Same random gain / white balance / contrast / saturation / light ramp on each tensor."""
    x0 = rgb[0]
    n, _, h, w = x0.shape
    dev, a = x0.device, s.colour
    gain = 1 + _uniform(gen, n * 3, a, dev).view(n, 3, 1, 1)
    bright = _uniform(gen, n, 0.8 * a, dev).view(n, 1, 1, 1)
    contrast = 1 + _uniform(gen, n, 2 * a, dev).view(n, 1, 1, 1)
    sat = 1 + _uniform(gen, n, 2 * a, dev).view(n, 1, 1, 1)
    # A directional light: a linear ramp across the face at a random angle.
    phi = torch.rand(n, generator=gen, device=dev) * 2 * math.pi
    amp = _uniform(gen, n, a, dev)
    ys = torch.linspace(-1, 1, h, device=dev).view(1, h, 1)
    xs = torch.linspace(-1, 1, w, device=dev).view(1, 1, w)
    ramp = ((torch.cos(phi).view(n, 1, 1) * xs + torch.sin(phi).view(n, 1, 1) * ys)
            * amp.view(n, 1, 1)).unsqueeze(1)
    out = []
    for x in rgb:
        grey = x.mean(1, keepdim=True)
        x = grey + (x - grey) * sat
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        out.append((x * gain + bright + ramp).clamp(0, 1))
    return out


def augment(batch: torch.Tensor, gen: torch.Generator, s: AugmentSettings | None = None):
    """uint8 (N, 6, R, R) on the training device -> (input, target, masks), float32 in [0, 1]."""
    s = s or AugmentSettings()
    x = batch.float().div_(255)
    if not s.enabled:
        return x[:, :3].contiguous(), x[:, :3].contiguous(), x[:, 3:].contiguous()
    n, _, size, _ = x.shape
    grid = affine_grid(n, size, s, gen, x.device)
    target_all = F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
    warped = grid + warp_offsets(n, size, s, gen, x.device) if s.warp else grid
    inp = F.grid_sample(x[:, :3], warped, mode="bilinear", padding_mode="border",
                        align_corners=False)
    target, masks = target_all[:, :3], target_all[:, 3:]
    if s.colour:
        inp, target = colour_jitter([inp, target], s, gen)
    return inp, target, masks
