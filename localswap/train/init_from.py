"""Start a new model from a trained one (`train`/`swap --init-from MODEL`).

The new model gets its own folder and iteration 0; it copies the encoder and both decoders of
MODEL, whose architecture, resolution and width it must keep. The original is never written.
One face, many targets: a model of the same source person learns a new target far sooner
than a fresh one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from localswap.errors import UserError


@dataclass
class InitFrom:
    path: Path
    manifest: dict
    fixed: dict          # arch, resolution, width of the model to start from

    @property
    def record(self) -> dict:
        """What the new model's manifest keeps about where it started."""
        return {"name": self.path.name, "iteration": int(self.manifest.get("iteration", 0)),
                "source": self.manifest.get("source", ""),
                "target": self.manifest.get("target", "")}

    def load_into(self, model: torch.nn.Module) -> None:
        from localswap.train.manifest import MODEL_FILE
        from localswap.train.checkpoint import model_tensors, weights_folder
        folder = weights_folder(self.path)
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(folder / MODEL_FILE), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"--init-from {self.path.name}: damaged weights ({exc})") from exc
        mine = model_tensors(model)
        if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
            raise UserError(f"--init-from {self.path.name}: its weights do not fit a "
                            f"{self.fixed['arch']} {self.fixed['resolution']} px width "
                            f"{self.fixed['width']} model (a learned-mask 'original' model "
                            "cannot be a starting point)")
        model.load_state_dict(state)


def find(value: str | Path, model_dir: Path) -> Path:
    """MODEL as a folder, or the name of a model beside `model_dir` (the library the new
    model goes into) or in ./workspace/models."""
    path = Path(value).expanduser()
    for candidate in (Path(model_dir).parent / str(value), Path("workspace/models") / str(value)):
        if not path.is_dir() and len(Path(str(value)).parts) == 1:
            path = candidate
    if not path.is_dir():
        known = sorted(p.name for p in Path(model_dir).parent.iterdir() if p.is_dir()
                       and not p.name.startswith(".")) if Path(model_dir).parent.is_dir() else []
        raise UserError(f"--init-from {value}: no such model (models beside "
                        f"{Path(model_dir).name}: {', '.join(known) or 'none'})")
    if path.resolve() == Path(model_dir).resolve():
        raise UserError(f"--init-from {value} is the model being trained: to continue a "
                        "model leave --init-from out")
    return path


def resolve(settings, model_dir: Path, face_type: str) -> InitFrom:
    """The model to start from, checked against the settings and the facesets."""
    from localswap.train.manifest import read_manifest
    from localswap.train.checkpoint import stored_width
    from localswap.train.spec import IMMUTABLE, refuse_otherwise
    path = find(settings.init_from, model_dir)
    manifest = read_manifest(path)
    if manifest["arch"] == "dfm":
        raise UserError(f"--init-from {path.name}: a DeepFaceLive .dfm model cannot be trained "
                        "further here; start from a localswap model")
    manifest.setdefault("width", stored_width(path))
    fixed = {k: manifest[k] for k in IMMUTABLE}
    refuse_otherwise(settings, fixed, f"--init-from {path.name} is",
                     "does not fit it: leave --{key} out (it comes from the model) or train a "
                     "fresh model")
    kind = manifest.get("face_type", "whole_face")
    if kind != face_type:
        raise UserError(f"--init-from {path.name} was trained on {kind} faces; these facesets "
                        f"hold {face_type} faces: extract them with --face-type {kind}")
    return InitFrom(path, manifest, fixed)
