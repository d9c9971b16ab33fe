"""The training loss: DSSIM + L1 on the masked face, extra weight on eyes and mouth, and a mask
loss for models that learn one (the DeepFaceLab SAEHD recipe, with L1 in place of MSE).

All arithmetic is float32 whatever autocast does to the model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, per channel, 'valid' padding."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def dssim(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Per-sample structural dissimilarity (1 - SSIM) / 2 of images in [0, 1], shape (N,)."""
    window = min(window, x.shape[-1] // 4 * 2 - 1)          # small crops: smaller window
    g = _gaussian(window, 1.5 * window / 11, x.device)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return ((1 - ssim) / 2).flatten(1).mean(1)


def face_loss(pred: torch.Tensor, pred_mask: torch.Tensor | None, target: torch.Tensor,
              masks: torch.Tensor, eyes_mouth_weight: float = 3.0,
              mask_weight: float = 1.0) -> torch.Tensor:
    """Mean loss over the batch.

    pred, target: (N, 3, H, W) in [0, 1]; pred_mask: (N, 1, H, W) or None;
    masks: (N, 3, H, W) in [0, 1] = face hull, eyes (with brows), mouth.
    """
    pred, target, masks = pred.float(), target.float(), masks.float()
    face, eyes_mouth = masks[:, :1], torch.maximum(masks[:, 1:2], masks[:, 2:3])
    # Outside the face hull nothing is learned: background and hair are the target's at convert.
    p, t = pred * face, target * face
    loss = dssim(p, t) + (p - t).abs().mean((1, 2, 3))
    if eyes_mouth_weight:
        loss = loss + eyes_mouth_weight * ((pred - target).abs() * eyes_mouth).mean((1, 2, 3))
    if pred_mask is not None and mask_weight:
        loss = loss + mask_weight * (pred_mask.float() - face).square().mean((1, 2, 3))
    return loss.mean()
