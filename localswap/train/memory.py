"""Measure what a training step keeps in memory, for the planner's table (localswap/train/planner.py).

Two numbers decide whether a configuration fits a GPU:
  parameters : weights + gradients + Adam's two moments = 16 bytes per parameter (fp32 master
               weights under autocast, plus 2 bytes per parameter for autocast's half copies)
  activations: the tensors autograd saves for the backward pass, which grow with the batch.
We count the second exactly: run the forward pass and the loss under
`torch.autograd.graph.saved_tensors_hooks` and add up the bytes of every distinct saved storage
that is not a parameter, at batch 1 and batch 2; the difference is the per-sample cost and the
rest is fixed. FakeTensorMode runs this without allocating or computing anything, so even the
512 px models measure in about a second on a laptop CPU; CPU autocast to bf16 stands in for
CUDA's fp16/bf16 autocast (both cast convolutions and matmuls to 16 bits, keep the rest).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from localswap.train.losses import face_loss
from localswap.train.models import build_model, count_params


def saved_bytes(arch: str, resolution: int, width: int, batch: int, half: bool,
                fake: bool = True) -> int:
    """Bytes autograd saves for backward in one training forward pass (model + loss)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    seen: dict[int, int] = {}
    with FakeTensorMode() if fake else nullcontext():
        # channels_last is left out: the byte counts are the same, and FakeTensorMode cannot
        # swap parameters in place.
        model = build_model(arch, resolution, width, channels_last=not fake)
        # Storages are told apart by their C++ object (works for real and fake tensors alike);
        # weights saved for backward (often as transposed views) are parameters, not activations.
        params = {p.untyped_storage()._cdata for p in model.parameters()}

        def pack(t: torch.Tensor):
            st = t.untyped_storage()
            if st._cdata not in params:
                seen[st._cdata] = st.nbytes()
            return t

        x = torch.rand(batch, 3, resolution, resolution)
        masks = torch.rand(batch, 3, resolution, resolution)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
                ra, ma, rb, mb = model(x, x)
            loss = face_loss(ra, ma, x, masks) + face_loss(rb, mb, x, masks)
        del loss
    return sum(seen.values())


def measure(arch: str, resolution: int, width: int) -> dict:
    """One row of the planner's table: parameter count and activation bytes (fixed + per
    sample, where one sample = one face of A and one of B), in fp32 and 16-bit autocast."""
    with torch.device("meta"):
        params = count_params(build_model(arch, resolution, width, channels_last=False))
    row = {"params": params}
    for name, half in (("fp32", False), ("half", True)):
        one = saved_bytes(arch, resolution, width, 1, half)
        two = saved_bytes(arch, resolution, width, 2, half)
        row[f"act_{name}"] = two - one
        row[f"fixed_{name}"] = max(0, one - (two - one))
    return row
