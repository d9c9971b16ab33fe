"""One training step, and the two guards around it: non-finite losses and CUDA out-of-memory.

`Step.__call__(batch, seed)` draws `batch` faces of each identity, augments them on the device,
runs the model under autocast, and applies one optimizer update unless the loss or the gradient
is not finite. Everything random comes from `seed`, so a step can be replayed exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from localswap.errors import UserError, is_oom
from localswap.train.augment import AugmentSettings, augment, match_colours
from localswap.train.data import FaceData
from localswap.train.losses import face_loss

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with beta1 0.5, as DeepFaceLab and faceswap train these autoencoders; the fused
    kernel where this torch has one for the device (one pass per tensor instead of a dozen:
    20% of the `original` step on a 2-core CPU)."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999), fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """load_state_dict, keeping the kernel chosen for this device (load_state_dict brings back
    the saved groups' settings, fused or not). The fused kernel walks a parameter and its
    moments as flat memory, so moments read back from a file (plain contiguous) get their
    parameter's layout again (channels_last for convolutions): without this a resumed run
    silently mixes up the moments of different weights."""
    chosen = [(g.get("fused"), g.get("foreach")) for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, (fused, foreach) in zip(optimizer.param_groups, chosen):
        group["fused"], group["foreach"] = fused, foreach
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


@dataclass
class StepResult:
    loss_a: float
    loss_b: float
    applied: bool           # False: loss or gradient not finite, the update was skipped
    grad_norm: float = 0.0
    overflow: bool = False  # fp16: the scaled gradient overflowed; GradScaler skipped the
    #                         update and lowered its scale (normal while it settles)


class Step:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 data_a: FaceData, data_b: FaceData, device: torch.device, precision: str,
                 aug: AugmentSettings, eyes_mouth_weight: float = 3.0, clip_grad: float = 0.0,
                 colour_match: bool = False):
        self.model, self.optimizer = model, optimizer
        self.colour_match = colour_match
        self.data_a, self.data_b = data_a, data_b
        self.device, self.precision, self.aug = device, precision, aug
        self.eyes_mouth_weight, self.clip_grad = eyes_mouth_weight, clip_grad
        # fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.gen = torch.Generator(device=device)
        self.distributed = dist.is_available() and dist.is_initialized()
        # The expression lines (channel 6) are warped only for a model that reads them.
        core = getattr(model, "module", model)
        self.channels = 7 if core.guided else 6
        self.hide = bool(getattr(core, "hides", False))

    def _all_finite(self, value: torch.Tensor) -> bool:
        ok = torch.isfinite(value).all().to(torch.float32).reshape(1)
        if self.distributed:                       # every rank must take the same branch
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def losses(self, batch: int, seed: int):
        """Forward pass on a fresh augmented batch: (loss_a, loss_b) as float32 tensors."""
        self.gen.manual_seed(seed)
        c = self.channels
        faces_a = self.data_a.sample(batch, self.gen)[:, :c]
        faces_b = self.data_b.sample(batch, self.gen)[:, :c]
        if self.colour_match:
            faces_b = match_colours(faces_b, faces_a)
        in_a, tg_a, m_a = augment(faces_a, self.gen, self.aug, self.hide)
        in_b, tg_b, m_b = augment(faces_b, self.gen, self.aug, self.hide)
        guides = (m_a[:, 3:4], m_b[:, 3:4]) if c == 7 else ()
        dtype = DTYPES[self.precision]
        with torch.autocast(self.device.type, dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            rgb_a, mask_a, rgb_b, mask_b = self.model(in_a, in_b, *guides)
        loss_a = face_loss(rgb_a, mask_a, tg_a, m_a, self.eyes_mouth_weight)
        loss_b = face_loss(rgb_b, mask_b, tg_b, m_b, self.eyes_mouth_weight)
        return loss_a, loss_b

    def __call__(self, batch: int, seed: int) -> StepResult:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_a, loss_b = self.losses(batch, seed)
        loss = loss_a + loss_b
        la, lb = float(loss_a.detach()), float(loss_b.detach())
        if not self._all_finite(loss.detach()):
            return StepResult(la, lb, applied=False)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              self.clip_grad or math.inf)
        if self.precision != "fp16" and not self._all_finite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return StepResult(la, lb, applied=False, grad_norm=float(norm))
        # With fp16 the scaler skips the update itself when the gradient overflowed, and says
        # so only by lowering its scale: such a step must not count as an iteration.
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 0.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.is_enabled() and self.scaler.get_scale() < scale:
            return StepResult(la, lb, applied=False, grad_norm=float(norm), overflow=True)
        return StepResult(la, lb, applied=True, grad_norm=float(norm))


def forget_partial_step(step, optimizer: torch.optim.Optimizer | None) -> None:
    """Undo what a step cut short by an OOM left behind, so the retry starts clean: the
    gradients; GradScaler's per-optimizer record (after `unscale_` the retry would fail with
    "unscale_() has already been called"; GradScaler has no public reset); Adam state that
    was half created (its first step allocates the moments parameter by parameter)."""
    optimizer = optimizer or getattr(step, "optimizer", None)
    if optimizer is None:
        return
    optimizer.zero_grad(set_to_none=True)
    scaler = getattr(step, "scaler", None)
    states = getattr(scaler, "_per_optimizer_states", None)
    if states is not None:
        states.pop(id(optimizer), None)
    for p, state in list(optimizer.state.items()):
        if state and not {"exp_avg", "exp_avg_sq"} <= set(state):
            del optimizer.state[p]


def run_with_oom_retry(step: Callable[[int, int], StepResult], batch: int, seed: int,
                       on_oom: Callable[[int, int], None] | None = None,
                       optimizer: torch.optim.Optimizer | None = None
                       ) -> tuple[StepResult, int]:
    """Run step(batch, seed); on CUDA out-of-memory halve the batch and try again.

    Returns the result and the batch that worked; on_oom(old, new) is told about each halving.
    """
    while True:
        try:
            return step(batch, seed), batch
        except RuntimeError as exc:     # OutOfMemoryError is a RuntimeError too
            if not is_oom(exc):
                raise
            # leave the except block first so the traceback's tensors can be freed
        forget_partial_step(step, optimizer)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if batch <= 1:
            raise UserError("out of GPU memory even at batch 1: use a smaller --resolution or "
                            "--width, or free GPU memory used by other programs")
        if on_oom is not None:
            on_oom(batch, batch // 2)
        batch //= 2
