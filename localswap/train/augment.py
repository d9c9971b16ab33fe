"""Batched augmentation on the training device (no CPU data loader to starve the GPU).

From a uint8 batch (N, 7, R, R) = RGB + face/eyes/mouth masks + expression lines it makes:
  input  : the face under a random affine (rotation, scale, shift, flip) AND a smooth random warp
  target : the same face under the same affine only ("the unwarped face")
  masks  : the masks under the affine, matching the target
Colour and lighting jitter is applied identically to input and target, so the decoder learns to
carry the input's lighting into its output (what a swap needs) rather than to undo it.
Every random number comes from `gen`, so a step is reproducible from its seed.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from localswap.train.hide import hide_features


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
    """A smooth displacement field (n, size, size, 2): random coarse grid, bicubic upsampled.
    Bicubic upsampling is separable, so it is two small matrix products (20x faster on a CPU
    than F.interpolate, with the same numbers)."""
    k = s.warp_cells
    coarse = (torch.rand(n, 2, k, k, generator=gen, device=device) * 2 - 1) * (2 * s.warp)
    coarse[:, :, [0, -1], :] = 0
    coarse[:, :, :, [0, -1]] = 0
    up = _bicubic_matrix(k, size, coarse.device)
    field = up @ coarse @ up.T                                    # (n, 2, size, size)
    return field.permute(0, 2, 3, 1)


@functools.lru_cache(maxsize=16)
def _bicubic_matrix(k: int, size: int, device: torch.device) -> torch.Tensor:
    """(size, k): column j is F.interpolate's bicubic (align_corners) response to a unit
    impulse at coarse point j."""
    impulses = torch.eye(k, device=device).view(k, 1, k, 1)
    return F.interpolate(impulses, size=(size, 1), mode="bicubic",
                         align_corners=True).view(k, size).T.contiguous()


def colour_jitter(x: torch.Tensor, s: AugmentSettings, gen: torch.Generator) -> torch.Tensor:
    """Random gain / white balance / contrast / saturation and a directional light ramp on an
    RGB batch (n, 3, h, w). Saturation and contrast are linear in the pixels, so all but the
    ramp is one 3x3 matrix and an offset per face: a single pass over the pixels."""
    n, _, h, w = x.shape
    dev, a = x.device, s.colour
    gain = 1 + _uniform(gen, n * 3, a, dev).view(n, 3)
    bright = _uniform(gen, n, 0.8 * a, dev).view(n, 1)
    contrast = 1 + _uniform(gen, n, 2 * a, dev).view(n, 1, 1)
    sat = 1 + _uniform(gen, n, 2 * a, dev).view(n, 1, 1)
    # A directional light: a linear ramp across the face at a random angle.
    phi = torch.rand(n, generator=gen, device=dev) * 2 * math.pi
    amp = _uniform(gen, n, a, dev)
    ys = torch.linspace(-1, 1, h, device=dev).view(1, h, 1)
    xs = torch.linspace(-1, 1, w, device=dev).view(1, 1, w)
    ramp = ((torch.cos(phi).view(n, 1, 1) * xs + torch.sin(phi).view(n, 1, 1) * ys)
            * amp.view(n, 1, 1)).unsqueeze(1)
    # saturation: grey + (x - grey) * sat;  contrast about the face's mean (which saturation
    # keeps): (x - m) * c + m;  then gain per channel, brightness and the ramp.
    saturate = sat * torch.eye(3, device=dev) + (1 - sat) / 3
    matrix = gain.unsqueeze(2) * contrast * saturate                       # (n, 3, 3)
    mean = x.mean((1, 2, 3)).view(n, 1)
    offset = gain * (1 - contrast.view(n, 1)) * mean + bright                # (n, 3)
    out = torch.baddbmm(offset.unsqueeze(2), matrix, x.reshape(n, 3, h * w))
    return out.view(n, 3, h, w).add_(ramp).clamp_(0, 1)


def augment(batch: torch.Tensor, gen: torch.Generator, s: AugmentSettings | None = None,
            hide: bool = False):
    """uint8 (N, C, R, R) on the training device -> (input, target, masks), float32 in [0, 1].
    `hide`: the input's eyes and mouth are filled with skin (train.hide; guided models)."""
    s = s or AugmentSettings()
    x = batch.float().div_(255)
    if not s.enabled:
        inp = hide_features(x[:, :3], x[:, 4:6]) if hide else x[:, :3]
        return inp.contiguous(), x[:, :3].contiguous(), x[:, 3:].contiguous()
    n, _, size, _ = x.shape
    grid = affine_grid(n, size, s, gen, x.device)
    warped = grid + warp_offsets(n, size, s, gen, x.device) if s.warp else grid
    if s.colour:    # once on the source, so input and target get the very same jitter
        x[:, :3] = colour_jitter(x[:, :3], s, gen)
    target_all = F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
    seen = hide_features(x[:, :3], x[:, 4:6]) if hide else x[:, :3]
    inp = F.grid_sample(seen, warped, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return inp, target_all[:, :3], target_all[:, 3:]


# sRGB <-> CIE Lab (D65), for the colour match below: a face's colours are matched in Lab, as
# the render's rct does, so lightness and the two colour axes move independently.
_RGB2XYZ = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def _to_lab(rgb: torch.Tensor) -> torch.Tensor:
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", _RGB2XYZ.to(rgb), lin) / _WHITE.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-6) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]),
                        200 * (f[:, 1] - f[:, 2])], 1)


def _from_lab(lab: torch.Tensor) -> torch.Tensor:
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > 0.206893, f ** 3, (f - 16 / 116) / 7.787) \
        * _WHITE.to(lab).view(1, 3, 1, 1)
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2XYZ).to(lab), xyz).clamp(0, 1)
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-8) ** (1 / 2.4) - 0.055,
                       12.92 * lin).clamp(0, 1)


def match_colours(faces: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, R, R) batches (RGB + the face mask in channel 3): `faces` with each face's
    colours moved to those of the face at the same place in `like` (Lab mean and deviation
    inside the face masks, DeepFaceLab's "rct" colour transfer mode), so the source's decoder
    learns the source's face under the target's colours and light instead of its own."""
    x = faces[:, :3].float() / 255
    lab, ref = _to_lab(x), _to_lab(like[:, :3].float() / 255)
    m = (faces[:, 3:4].float() > 127).float()
    r = (like[:, 3:4].float() > 127).float()

    def stats(v, w):
        count = w.sum((2, 3), keepdim=True).clamp_min(1)
        mean = (v * w).sum((2, 3), keepdim=True) / count
        sd = (((v - mean) ** 2 * w).sum((2, 3), keepdim=True) / count).sqrt()
        return mean, sd
    mu, sd = stats(lab, m)
    mu_r, sd_r = stats(ref, r)
    gain = (sd_r / sd.clamp_min(1e-3)).clamp(0.5, 2.0)
    out = faces.clone()
    out[:, :3] = (_from_lab((lab - mu) * gain + mu_r) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return out
