"""The benchmark's yardstick: faceswap's "Original" recipe as a plain eager fp32 PyTorch loop.

Written only for `localswap bench`, deliberately without localswap's optimisations
(no autocast, no channels_last, no fused ops, no compile), so "localswap step / baseline step"
measures what localswap's engineering buys. Recipe: 64 px faces, shared encoder
(four 5x5 stride-2 convs 128-1024, dense 1024, dense 4x4x1024, upscale to 512 channels), one
decoder per identity (upscales 256/128/64, 5x5 conv, sigmoid), Adam (lr 5e-5, betas 0.5/0.999),
loss SSIM + MSE, batch 16 per side.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from localswap.train.losses import dssim


class _Upscale(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(F.leaky_relu(self.conv(x), 0.1), 2)


class BaselineOriginal(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [3, 128, 256, 512, 1024]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 5, stride=2, padding=2)
                                   for a, b in zip(chans, chans[1:]))
        self.dense1 = nn.Linear(1024 * 4 * 4, 1024)
        self.dense2 = nn.Linear(1024, 4 * 4 * 1024)
        self.up = _Upscale(1024, 512)
        self.decoders = nn.ModuleList(self._decoder() for _ in range(2))

    @staticmethod
    def _decoder() -> nn.Module:
        return nn.Sequential(_Upscale(512, 256), _Upscale(256, 128), _Upscale(128, 64),
                             nn.Conv2d(64, 3, 5, padding=2), nn.Sigmoid())

    def encode(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
        x = self.dense2(self.dense1(x.flatten(1)))
        return self.up(x.view(-1, 1024, 4, 4))

    def forward(self, a, b):
        return self.decoders[0](self.encode(a)), self.decoders[1](self.encode(b))


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM, from the one SSIM in localswap (train/losses.py: 11 px Gaussian window,
    the usual constants for [0, 1] images): DSSIM is (1 - SSIM) / 2."""
    return 2 * dssim(x, y).mean()


class BaselineTrainer:
    """One optimisation step = both identities forward, SSIM + MSE, backward, Adam."""

    def __init__(self, device: str = "cpu", batch: int = 16, seed: int = 0):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = BaselineOriginal().to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=5e-5, betas=(0.5, 0.999))
        self.batch = batch

    def step(self, warped_a, target_a, warped_b, target_b) -> tuple[float, float]:
        out_a, out_b = self.model(warped_a, warped_b)
        loss_a = ssim_loss(out_a, target_a) + F.mse_loss(out_a, target_a)
        loss_b = ssim_loss(out_b, target_b) + F.mse_loss(out_b, target_b)
        self.opt.zero_grad(set_to_none=True)
        (loss_a + loss_b).backward()
        self.opt.step()
        return loss_a.item(), loss_b.item()
