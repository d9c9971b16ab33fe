"""What NVIDIA GPU is here, asked through NVML (nvidia-ml-py) and torch.

`probe()` asks NVML for each NVIDIA GPU's name, total/free memory, driver and utilisation. No
package, no driver or no GPU gives an empty probe with a note: never a crash. What to train on
a device (architecture, resolution, batch, precision) is the planner's: localswap.train.planner.
Free memory for training comes from torch for the device training uses (CUDA order, after
CUDA_VISIBLE_DEVICES), counting memory this process's allocator holds but does not use as free;
NVML's list (PCI order) is only for the System panel and utilisation.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import asdict, dataclass, field

MiB = 1 << 20


@dataclass
class DeviceInfo:
    index: int = 0
    name: str = ""
    total_mb: int = 0
    free_mb: int = 0
    driver: str = ""
    utilisation: int | None = None        # percent, GPU busy over NVML's last sample
    compute_capability: list[int] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Probe:
    devices: list[DeviceInfo] = field(default_factory=list)
    driver: str = ""
    note: str = ""
    cuda_driver: str = ""       # the newest CUDA version the driver runs, e.g. "12.4"
    error: str = ""             # NVML's own words when it could not be asked, else ""

    def to_dict(self) -> dict:
        return asdict(self)


def probe() -> Probe:
    """Every NVIDIA GPU NVML can see; an empty probe with a note when there is none."""
    try:
        import pynvml
    except ImportError:
        return Probe(note="nvidia-ml-py is not installed: no GPU information; training uses "
                          "the CPU unless torch finds CUDA")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return Probe(note=f"no NVIDIA driver or GPU found (NVML: {exc}); training uses the CPU",
                     error=str(exc))
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            info = DeviceInfo(i, _text(pynvml.nvmlDeviceGetName(h)), mem.total // MiB,
                              mem.free // MiB, driver)
            try:
                info.utilisation = int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            except pynvml.NVMLError:
                pass  # not supported on some boards
            try:
                info.compute_capability = list(pynvml.nvmlDeviceGetCudaComputeCapability(h))
            except pynvml.NVMLError:
                pass
            devices.append(info)
        note = "" if devices else "the NVIDIA driver reports no GPU; training uses the CPU"
        cuda_driver = ""
        try:
            v = int(pynvml.nvmlSystemGetCudaDriverVersion())     # e.g. 12040
            cuda_driver = f"{v // 1000}.{v % 1000 // 10}"
        except (pynvml.NVMLError, AttributeError, TypeError, ValueError):
            pass
        return Probe(devices, driver, note, cuda_driver)
    except pynvml.NVMLError as exc:
        return Probe(note=f"NVML failed ({exc}); training uses the CPU", error=str(exc))
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 arithmetic in hardware (AMX or AVX512-BF16); elsewhere oneDNN
    emulates bf16 and it is slower than fp32."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def nvidia_present() -> bool:
    """Whether training here would be on an NVIDIA GPU, asked without initialising CUDA (NVML
    only): the web server uses it to label speeds and pick first guesses. Asked once."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return bool(probe().devices)


def torch_device_info(index: int = 0) -> DeviceInfo:
    """The device the trainer will use, as torch (CUDA order) sees it: the planner's source.
    Memory this process's caching allocator holds but does not use (an earlier job's cache)
    counts as free: the next allocation reuses it."""
    import torch
    free, total = torch.cuda.mem_get_info(index)
    cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return DeviceInfo(index, torch.cuda.get_device_name(index), total // MiB,
                      (free + max(0, cached)) // MiB,
                      compute_capability=list(torch.cuda.get_device_capability(index)))


def release_cached_memory() -> bool:
    """Give the memory torch's caching allocator keeps but no tensor uses back to the driver,
    after a stage or a training: the worker runs job after job, and the next plan (here or in
    another process) must see it free. Nothing to do where CUDA was never initialised."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return False
    import gc
    gc.collect()            # tensors kept alive only by reference cycles (tracebacks, closures)
    torch.cuda.empty_cache()
    return True


def weakest(infos: list[DeviceInfo]) -> DeviceInfo:
    """One card standing for all ranks of a torchrun: the least free memory and the oldest
    capability, so one plan (same width, same precision) fits every rank."""
    caps = [tuple(i.compute_capability) for i in infos if i.compute_capability]
    low = min(infos, key=lambda i: i.free_mb)
    return DeviceInfo(low.index, " + ".join(sorted({i.name for i in infos})), low.total_mb,
                      low.free_mb, low.driver, None,
                      list(min(caps)) if len(caps) == len(infos) else None)
