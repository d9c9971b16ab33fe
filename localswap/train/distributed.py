"""Multi-GPU training through torch.distributed, started by torchrun:

    torchrun --nproc_per_node=K -m localswap train --source B --target A --model DIR

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; each process trains on its own device with
DistributedDataParallel (gradients averaged across ranks), draws its own batches, and rank 0
alone writes checkpoints, previews and progress. NCCL joins CUDA devices, gloo CPU processes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from localswap.errors import UserError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch finds no CUDA GPU here (driver, or a CPU-only "
                        "torch build); use --device auto or cpu")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup(device_name: str) -> Dist:
    """Join the process group when torchrun started us; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if world <= 1:
        return Dist(0, 1, device)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def any_rank(flag: bool, d: Dist) -> bool:
    """True if `flag` is true on any rank (all ranks get the same answer)."""
    if not d.on:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(d: Dist) -> None:
    if d.on:
        dist.barrier()


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(getattr(model, "module", model).state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def gather_digests(model: torch.nn.Module, d: Dist) -> list[str]:
    """Every rank's weight digest (rank order); DDP keeps them equal."""
    digest = weights_digest(model)
    if not d.on:
        return [digest]
    out: list = [None] * d.world
    dist.all_gather_object(out, digest)
    return out


def teardown(d: Dist) -> None:
    if d.on and dist.is_initialized():
        dist.destroy_process_group()
