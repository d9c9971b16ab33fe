"""Multi-GPU training through torch.distributed, started by torchrun:

    torchrun --nproc_per_node=K -m localswap train --source B --target A --model DIR

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; each process trains on its own device with
DistributedDataParallel (gradients averaged across ranks), draws its own batches, and rank 0
alone writes checkpoints, previews and progress. NCCL joins CUDA devices, gloo CPU processes.

Rank 0 plans for all (`from_rank0`): ranks that planned alone could pick different widths or
precisions on unequal cards, and DDP would fail or NCCL hang. Waiting for rank 0 to build the
faceset caches can take longer than NCCL's watchdog allows, so that wait (`barrier(slow=True)`)
goes through a separate gloo group with a long timeout; training keeps the short default.
"""
from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from localswap.errors import UserError

SLOW_TIMEOUT = datetime.timedelta(hours=3)   # rank 0 decoding a large faceset's PNGs
TIMEOUT: datetime.timedelta | None = None     # training collectives: torch's default
_slow_group = None


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
        count = torch.cuda.device_count()
        if local_rank >= count:     # local_rank % count would put two ranks on one GPU
            raise UserError(f"torchrun started more processes on this machine than there are "
                            f"GPUs ({count} visible, process {local_rank}): use "
                            f"--nproc_per_node {count} (or check CUDA_VISIBLE_DEVICES)")
        return torch.device("cuda", local_rank)
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
        kw = {"timeout": TIMEOUT} if TIMEOUT else {}
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **kw)
    global _slow_group
    _slow_group = dist.new_group(backend="gloo", timeout=SLOW_TIMEOUT)
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def any_rank(flag: bool, d: Dist) -> bool:
    """True if `flag` is true on any rank (all ranks get the same answer)."""
    if not d.on:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(d: Dist, slow: bool = False) -> None:
    """Wait for every rank; `slow`: through the long-timeout gloo group (for waits on work
    that takes minutes, like rank 0 building the faceset caches)."""
    if d.on:
        if slow and _slow_group is not None:
            dist.barrier(group=_slow_group)
        else:
            dist.barrier()


def gather_objects(obj, d: Dist) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not d.on:
        return [obj]
    out: list = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def from_rank0(obj, d: Dist):
    """Rank 0's `obj` on every rank (the others pass anything, e.g. None)."""
    if not d.on:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
    global _slow_group
    if d.on and dist.is_initialized():
        dist.destroy_process_group()
        _slow_group = None
