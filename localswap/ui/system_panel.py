"""System: the GPU probe and the training plan, the workspace's disk space, versions."""
from __future__ import annotations

import dataclasses
import platform
import shutil
from importlib import metadata

import gradio as gr

from localswap import __version__
from localswap.ui.context import Context

PACKAGES = ("torch", "torchvision", "gradio", "mediapipe", "numpy", "opencv-python",
            "safetensors", "facexlib")


def render(ctx: Context) -> None:
    info = gr.Markdown(elem_id="system-info")
    refresh = gr.Button("Refresh", size="sm")
    refresh.click(lambda: report(ctx), None, info, api_visibility="private")
    return info


def report(ctx: Context) -> str:
    from localswap.ui.share import describe
    return "\n\n".join([gpu_section(), disk_section(ctx), describe(ctx), versions_section()])


def gpu_section() -> str:
    """The NVML probe and the plan training would use here (the trainer's own planner)."""
    try:
        from localswap import gpu
        from localswap.train import planner
        probe = gpu.probe()
        cpu_precision = "bf16" if gpu.cpu_has_native_bf16() else "fp32"
        # The GPU section says why there is no GPU; the plan need not say it again.
        plan = planner.plan(dataclasses.replace(probe, note=""), cpu_precision=cpu_precision)
    except Exception as exc:  # the probe must never break the page
        return f"### GPU\nThe GPU probe failed: {exc}"
    if probe.devices:
        rows = ["| GPU | memory free / total | utilisation | compute capability |",
                "|---|---|---|---|"]
        for d in probe.devices:
            cc = ".".join(map(str, d.compute_capability or [])) or "?"
            util = f"{d.utilisation} %" if d.utilisation is not None else "?"
            rows.append(f"| {d.index}: {d.name} | {d.free_mb:,} / {d.total_mb:,} MiB | {util} "
                        f"| {cc} |")
        found = "\n".join(rows) + f"\n\nDriver {probe.driver}."
    else:
        found = _torch_devices() + " " + why_no_gpu(probe)
    return (f"### GPU\n{found}\n\n### Training plan for this machine\n{plan.describe()}. "
            "Advanced mode can change it.")


def why_no_gpu(probe) -> str:
    """One plain sentence on why NVML lists no GPU, its own words quoted once."""
    if probe.error:
        return f"The NVIDIA driver could not be asked: \"{probe.error}\"."
    if probe.note:
        return probe.note[:1].upper() + probe.note[1:] + "."
    return ""


def _torch_devices() -> str:
    import torch
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return "CUDA: " + ", ".join(names) + "."
    return "No NVIDIA GPU found: everything runs on the CPU (slowly)."


def disk_section(ctx: Context) -> str:
    root = ctx.workspace.root
    usage = shutil.disk_usage(root)
    sizes = {kind: _size(root / kind) for kind in ("facesets", "models", "uploads", "outputs")}
    parts = ", ".join(f"{k} {_gb(v)}" for k, v in sizes.items())
    return (f"### Workspace\n`{root}`\n\nDisk: {_gb(usage.free)} free of {_gb(usage.total)}. "
            f"Used by localswap: {parts}.")


def _size(path) -> int:
    total = 0
    for p in path.rglob("*") if path.exists() else ():
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _gb(n: int) -> str:
    return f"{n / 1024 ** 3:.2f} GB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MB"


def versions_section() -> str:
    rows = [f"localswap {__version__}", f"Python {platform.python_version()}",
            f"{platform.system()} {platform.machine()}"]
    for pkg in PACKAGES:
        try:
            rows.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return "### Versions\n" + " · ".join(rows)
