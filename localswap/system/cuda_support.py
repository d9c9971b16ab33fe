"""Can this torch build drive the GPUs the driver reports? One sentence per problem, instead of
CUDA's "no kernel image is available for execution on the device" in the middle of a run.

The CUDA build of torch that `pip install -r requirements.txt` installs needs a recent driver
and carries kernels only for recent cards (`torch.cuda.get_arch_list()`); older cards need a
torch built for an older CUDA.
"""
from __future__ import annotations

from localswap import gpu
def kernel_problem(name: str, capability, arch_list: list[str], torch_cuda: str | None) -> str:
    """One sentence when this torch build has no kernels for the card, else "".

    A cubin sm_XY runs on cards of the same major version and minor >= Y; PTX compute_XY is
    compiled by the driver for any card >= XY."""
    if not capability or not arch_list:
        return ""
    cc = tuple(capability)
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        if not num.isdigit():
            continue
        major, minor = int(num[:-1]), int(num[-1])
        if kind == "sm" and major == cc[0] and minor <= cc[1]:
            return ""
        if kind == "compute" and (major, minor) <= cc:
            return ""
    built = sorted(a for a in arch_list if a.startswith("sm_"))
    return (f"{name} (compute capability {cc[0]}.{cc[1]}) is not supported by this torch build "
            f"(CUDA {torch_cuda}, kernels for {', '.join(built) or 'other GPUs'}): install a "
            "torch build for an older CUDA that still lists your card (pytorch.org, 'previous "
            "versions'), or train on the CPU")


def driver_problem(cuda_driver: str, torch_cuda: str | None) -> str:
    """One sentence when the NVIDIA driver is older than this torch build's CUDA needs."""
    def version(v):
        try:
            return tuple(int(x) for x in str(v).split(".")[:2])
        except ValueError:
            return None
    have, need = version(cuda_driver), version(torch_cuda)
    if not have or not need or have[0] >= need[0]:
        return ""       # minor versions are compatible within a major release
    return (f"the NVIDIA driver runs CUDA up to {cuda_driver} but this torch build needs CUDA "
            f"{torch_cuda}: update the driver, or install a torch build for CUDA {have[0]}.x")


def torch_problems(p: gpu.Probe | None = None) -> list[str]:
    """What stops torch from using the GPUs the probe found, in one sentence each (imports
    torch: not for the web server)."""
    p = p or gpu.probe()
    if not p.devices:
        return []
    import torch
    if torch.version.cuda is None:
        return ["this torch is a CPU-only build: install the CUDA build (pytorch.org) to train "
                "on the GPU"]
    out = [m for m in [driver_problem(p.cuda_driver, torch.version.cuda)] if m]
    if not torch.cuda.is_available():
        return out or ["torch finds no usable CUDA GPU although the driver lists one (check "
                       "CUDA_VISIBLE_DEVICES and the driver install)"]
    arch = torch.cuda.get_arch_list()
    for i in range(torch.cuda.device_count()):
        m = kernel_problem(torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i),
                           arch, torch.version.cuda)
        if m:
            out.append(m)
    return out
