"""System: the GPU probe and the training plan, the workspace's disk space, versions."""
from __future__ import annotations

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
    return "\n\n".join([gpu_section(), disk_section(ctx), versions_section()])


def gpu_section() -> str:
    try:
        from localswap import gpu
    except ImportError:
        return "### GPU\n" + _torch_devices() + "\n\n(The GPU planner is not in this build.)"
    try:
        probe = gpu.probe()
        plan = gpu.plan(probe)
    except Exception as exc:  # the probe must never break the page
        return f"### GPU\nThe GPU probe failed: {exc}"
    return "### GPU\n" + _as_table(probe) + "\n\n### Training plan\n" + _as_table(plan)


def _torch_devices() -> str:
    import torch
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return "CUDA: " + ", ".join(names)
    return "No CUDA GPU found: everything runs on the CPU (slowly)."


def _as_table(obj) -> str:
    """A dataclass, dict or list of them as Markdown (one `key | value` row per field)."""
    import dataclasses
    if isinstance(obj, (list, tuple)):
        return "\n\n".join(_as_table(o) for o in obj) or "none"
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if not isinstance(obj, dict):
        note = getattr(obj, "note", None)
        return str(obj) + (f"\n\n{note}" if note else "")
    rows = ["| | |", "|---|---|"] + [f"| {k.replace('_', ' ')} | {_cell(v)} |"
                                     for k, v in obj.items()]
    return "\n".join(rows)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).replace("|", "/").replace("\n", " ")


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
