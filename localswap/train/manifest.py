"""A model folder's manifest.json: the one reader, and the one typed view of it.

    model.safetensors      weights (model.dfm for an imported DeepFaceLive model)
    optimizer.safetensors  Adam state, so training can continue
    manifest.json          architecture, resolution, width, face type, iteration, loss
                           history, source/target names, ... (written by the trainer,
                           localswap.train.checkpoint, or by an import)
    backup/                the same files from the save with the best loss

`read_manifest` is what the trainer (resuming), the converter (localswap.convert.swapper)
and the library read; `Manifest` is the typed view of the fields they all use, and
`ModelInfo` the library's row for a model.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localswap.errors import UserError

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
MANIFEST_FILE = "manifest.json"
BACKUP_DIR = "backup"
DFM_FILE = "model.dfm"


def _load(folder: Path) -> dict:
    """One folder's manifest, checked for the fields every reader needs."""
    path = folder / MANIFEST_FILE
    weights = folder / (DFM_FILE if (folder / DFM_FILE).is_file() else MODEL_FILE)
    if not weights.is_file() or not path.is_file():
        raise UserError(f"{folder}: not a localswap model (needs {MODEL_FILE} and "
                        f"{MANIFEST_FILE}); train one first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: damaged manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: damaged manifest (not a JSON object)")
    from localswap.choices import ARCHS
    arch, res = manifest.get("arch"), manifest.get("resolution")
    if weights.name == DFM_FILE and arch != "dfm" or weights.name == MODEL_FILE and arch == "dfm":
        raise UserError(f"{path}: the manifest's architecture {arch!r} does not match "
                        f"{weights.name}")
    if arch not in (*ARCHS, "dfm") or not isinstance(res, int) or not 16 <= res <= 1024:
        raise UserError(f"{path}: not a localswap model manifest (arch {arch!r}, "
                        f"resolution {res!r})")
    from localswap.choices import FACE_TYPE_BOX
    if manifest.get("face_type", "whole_face") not in FACE_TYPE_BOX:
        raise UserError(f"{path}: unknown face type {manifest.get('face_type')!r}")
    return manifest


def read_manifest(model_dir: str | Path) -> dict:
    """The manifest of a model folder as a dict, checked (architecture, resolution, face
    type, weights present). When the folder's own is missing or damaged, its backup's: the
    checkpoint training would resume from. UserError saying what is wrong otherwise."""
    model_dir = Path(model_dir)
    try:
        return _load(model_dir)
    except UserError as first:
        if (model_dir / BACKUP_DIR / MANIFEST_FILE).is_file():
            try:
                return _load(model_dir / BACKUP_DIR)
            except UserError:
                pass
        raise first


def is_dfm_dir(model_dir: str | Path) -> bool:
    """Whether the folder holds an imported DeepFaceLive model."""
    return (Path(model_dir) / DFM_FILE).is_file()


def find_manifest(model_dir: str | Path) -> dict | None:
    """`read_manifest`, or None where there is no readable one."""
    try:
        return read_manifest(model_dir)
    except UserError:
        return None


def _last_loss(data: dict) -> float | None:
    """The newest loss in the history, whatever shape an entry has (a number, a list ending
    in losses, or a dict with a 'loss' or per-side losses)."""
    history = data.get("loss_history") or data.get("losses") or []
    if not isinstance(history, list) or not history:
        return data.get("loss") if isinstance(data.get("loss"), (int, float)) else None
    last = history[-1]
    if isinstance(last, dict):
        if isinstance(last.get("loss"), (int, float)):
            return float(last["loss"])
        sides = [v for k, v in last.items() if k.startswith("loss") and
                 isinstance(v, (int, float))]
        return float(sum(sides) / len(sides)) if sides else None
    if isinstance(last, (list, tuple)) and last:
        nums = [v for v in last[1:] if isinstance(v, (int, float))] or \
            [v for v in last if isinstance(v, (int, float))]
        return float(sum(nums) / len(nums)) if nums else None
    return float(last) if isinstance(last, (int, float)) else None


@dataclass
class Manifest:
    """The fields every reader of a manifest uses, typed; `data` is the whole JSON object."""
    arch: str
    resolution: int
    face_type: str
    iteration: int
    source: str                     # B, the face put in (a name, not a path)
    target: str                     # A, whose face is replaced
    width: int | None = None
    last_loss: float | None = None
    data: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, data: dict) -> Manifest:
        fs = data.get("facesets") if isinstance(data.get("facesets"), dict) else {}
        source = data.get("source") or fs.get("b") or fs.get("source") or ""
        target = data.get("target") or fs.get("a") or fs.get("target") or ""
        return cls(arch=data["arch"], resolution=int(data["resolution"]),
                   face_type=data.get("face_type", "whole_face"),
                   iteration=int(data.get("iteration", data.get("iterations", 0)) or 0),
                   source=Path(str(source)).name, target=Path(str(target)).name,
                   width=data.get("width"), last_loss=_last_loss(data), data=data)

    @classmethod
    def read(cls, model_dir: str | Path) -> Manifest:
        return cls.of(read_manifest(model_dir))


@dataclass
class ModelInfo:
    """A model as the library lists it."""
    name: str
    arch: str
    resolution: int
    face_type: str
    iterations: int
    source: str
    target: str
    last_loss: float | None
    size_mb: float
    date: str
    path: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_info(path: Path) -> ModelInfo:
    m = Manifest.read(path)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    weights = path / MODEL_FILE
    stamp = (weights if weights.is_file() else path / MANIFEST_FILE).stat().st_mtime
    return ModelInfo(
        name=path.name, arch=m.arch, resolution=m.resolution, face_type=m.face_type,
        iterations=m.iteration, source=m.source, target=m.target, last_loss=m.last_loss,
        size_mb=round(size / 1e6, 2),
        date=time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)), path=str(path))
