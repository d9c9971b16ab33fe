"""What model a training run trains: the architecture, resolution and width (fixed once a
model exists) and the plan for this device (batch, precision, where the faces live).

An existing model's manifest fixes the three; a new one takes what the settings ask for and
the planner fills in the rest. `--init-from` (localswap.train.init_from) checks its starting
model against the settings with `asked_otherwise`, as continuing a model does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from localswap import gpu
from localswap.errors import UserError
from localswap.settings import TrainSettings
from localswap.system import cuda_support
from localswap.train import checkpoint, distributed, planner

IMMUTABLE = ("arch", "resolution", "width")


@dataclass(frozen=True)
class Kind:
    """How a model sees expressions, fixed once it exists, like its architecture."""
    guided: bool        # it is given the expression map
    hides: bool         # its encoder's input has the eyes and mouth hidden
    filled: bool        # its map fills the eye and mouth openings (else lines only)


def kind_of(manifest: dict | None, settings: TrainSettings, arch: str) -> Kind:
    """`manifest`: the model's own, else the starting model's (--init-from), else None for a
    new model, which takes the settings. A guided model made before hiding (no "guide_hides"
    key) or before filled maps (no "guide_map") stays as it was."""
    if manifest:
        return Kind(bool(manifest.get("guided", False)), bool(manifest.get("guide_hides", False)),
                    manifest.get("guide_map") == "filled")
    return Kind(bool(settings.guide) and arch == "localswap", True, True)


def asked_otherwise(settings: TrainSettings, fixed: dict) -> tuple[str, object] | None:
    """The first of arch/resolution/width the settings ask for that differs from `fixed`
    (a model's), as (name, asked value); None when all are left to the model."""
    for key in IMMUTABLE:
        asked = getattr(settings, key)
        if asked not in ("auto", 0) and asked != fixed[key]:
            return key, asked
    return None


def refuse_otherwise(settings: TrainSettings, fixed: dict, what: str, advice: str) -> None:
    """UserError when the settings ask for another arch/resolution/width than `fixed` has:
    "<what> a <arch> model at <px> px, width <w>; --<key> <asked> <advice>" ({key} in
    `advice` is the setting's name)."""
    if (clash := asked_otherwise(settings, fixed)) is not None:
        key, asked = clash
        raise UserError(f"{what} a {fixed['arch']} model at {fixed['resolution']} px, width "
                        f"{fixed['width']}; --{key} {asked} {advice.format(key=key)}")


def asked_for(settings: TrainSettings) -> dict:
    """The immutable settings a new model's run fixed (not left to the planner)."""
    return {k: getattr(settings, k) for k in IMMUTABLE if getattr(settings, k) not in ("auto", 0)}


def check_immutable(settings: TrainSettings, manifest: dict, model_dir: Path) -> dict:
    """An existing model's arch/resolution/width; UserError if the settings ask otherwise."""
    manifest.setdefault("width", checkpoint.stored_width(model_dir))
    if any(manifest.get(k) is None for k in IMMUTABLE):
        raise UserError(f"{model_dir}: manifest.json does not say the model's architecture, "
                        "resolution and width; train a new model in another folder")
    fixed = {k: manifest[k] for k in IMMUTABLE}
    refuse_otherwise(settings, fixed, f"{model_dir} holds",
                     "cannot change once a model exists: leave --{key} out to continue it, "
                     "or train a new model in another folder")
    return fixed


def _device_info(settings: TrainSettings, d: distributed.Dist):
    """This rank's device as the planner sees it: a card, or a Probe saying why not."""
    if d.device.type == "cuda":
        info = gpu.torch_device_info(d.device.index or 0)
        problem = cuda_support.kernel_problem(info.name, info.compute_capability,
                                              torch.cuda.get_arch_list(), torch.version.cuda)
        if problem and settings.device == "cuda":
            raise UserError(problem)
        return gpu.Probe(note=problem) if problem else info
    if settings.device == "cpu":
        return gpu.Probe(note="--device cpu")
    return gpu.Probe(note=gpu.probe().note or "torch finds no CUDA GPU")


def plan_for(settings: TrainSettings, d: distributed.Dist, fixed: dict, faces: int,
             crop: int, basic: bool = False) -> planner.Plan:
    """The plan for this device from torch's own figures (NVML lists GPUs in another order);
    under torchrun rank 0 plans for the weakest card and every rank takes that plan.
    `basic`: a Basic run, sized by expected time too (rank 0 measures its own card's speed)."""
    info = _device_info(settings, d)
    if d.on:
        infos = distributed.gather_objects(info, d)
        cards = [i for i in infos if isinstance(i, gpu.DeviceInfo)]
        info = gpu.weakest(cards) if len(cards) == len(infos) else \
            next(i for i in infos if isinstance(i, gpu.Probe))
    plan = None
    if d.main:
        plan = planner.plan(info, arch=fixed.get("arch", "auto"),
                            resolution=fixed.get("resolution", 0), width=fixed.get("width", 0),
                            batch=settings.batch, precision=settings.precision, faces=faces,
                            max_resolution=crop, world=d.world, basic=basic)
    return distributed.from_rank0(plan, d)
