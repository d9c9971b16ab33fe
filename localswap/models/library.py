"""The model library: list the models in a workspace, export one as a single portable file,
import such a file back, checked before anything lands in the library.

An export is a zip (stored, not compressed: weights do not compress) holding
    export.json          {"format": "localswap-model", "version": 1, "files": {name: sha256}}
    manifest.json        the model's manifest
    model.safetensors    the weights
    optimizer.safetensors  (if the model has one, so training can continue after import;
                         left out of an export "for rendering": 60% of the file, and rendering
                         never reads it. Its manifest then lists no optimizer checksum and
                         says "for_rendering", which the model card and the CLI show)
    detail/bank.json, detail/NNN.png  the source's sharp crops (train.detail_bank), when present
    evaluation.json, source.png, target.png, identity.json  the model card's files: its last
                         report, both people's faces and descriptors (a quick swap's fit)
Import reads only JSON and safetensors. Pickles (.pth, .ckpt, .pkl, torch zip files) are
refused by content, whatever their name: unpickling runs arbitrary code.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from localswap.convert.dfm import FACE_TYPE, MORPH_DEFAULT, check_dfm
from localswap.convert.swapper import build_from_state
from localswap.train.detail_bank import BANK_DIR, BANK_FILE
from localswap.train.manifest import (DFM_FILE, MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE,
                                      ModelInfo, model_info, read_manifest)
from localswap.errors import UserError
from localswap.workspace import AtomicFile, Workspace, check_name, file_sha256

FORMAT = "localswap-model"
VERSION = 1
EXPORT_FILE = "export.json"
# The model card's files (localswap.models.card) travel with the model when present.
CARD_MEMBERS = ("evaluation.json", "source.png", "target.png", "identity.json")
MEMBERS = (MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE, *CARD_MEMBERS)
# the detail bank: these names only, so a member can never name a path outside the model
DETAIL_MEMBER = re.compile(rf"{BANK_DIR}/(\d{{3}}\.png|{re.escape(BANK_FILE)})")
CARD_FILE = "card.json"     # the card as written at export, for people and other tools
MAX_BYTES = 16 << 30        # refuse archives that unpack to more than this (zip bombs)


def list_models(ws: Workspace) -> list[ModelInfo]:
    """Every readable model in the workspace, newest first; unreadable folders are skipped."""
    out = []
    for name in ws.names("models"):
        path = ws.root / "models" / name
        if path.is_dir():
            try:
                out.append(model_info(path))
            except UserError:
                continue
    return sorted(out, key=lambda m: m.date, reverse=True)


def resolve_model(value: str | Path, ws: Workspace | None = None) -> Path:
    """A model folder given as a path, or by name from the workspace's library."""
    path = Path(value).expanduser()
    if path.is_dir():
        return path
    if ws is not None:
        try:
            named = ws.path("models", str(value))
        except UserError:
            named = None
        if named is not None and named.is_dir():
            return named
        known = ", ".join(ws.names("models")) or "none yet"
        raise UserError(f"model {str(value)!r} not found (models in {ws.root / 'models'}: "
                        f"{known})")
    raise UserError(f"{value}: model folder not found")


def rename_model(ws: Workspace, old: str, new: str) -> Path:
    src, dst = ws.path("models", old), ws.path("models", new)
    if not src.is_dir():
        raise UserError(f"there is no model called {old!r}")
    if dst.exists():
        raise UserError(f"a model called {new!r} already exists")
    os.rename(src, dst)
    return dst


def delete_model(ws: Workspace, name: str) -> None:
    path = ws.path("models", name)
    if not path.is_dir():
        raise UserError(f"there is no model called {name!r}")
    # Rename first, then remove: a crash half-way leaves a hidden folder, not half a model.
    trash = path.with_name(f".deleted-{name}-{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def export_model(ws: Workspace, name: str, file: str | Path,
                 for_rendering: bool = False) -> Path:
    """Write model `name` as one portable zip at `file` (atomically), or as a DeepFaceLive
    `.dfm` when `file` ends in .dfm. `for_rendering` leaves the optimizer state out: the
    file renders and quick-swaps alike, but training it further starts the optimizer afresh
    (as DeepFaceLab does when its optimizer files are gone)."""
    src = ws.path("models", name)
    if not src.is_dir():
        raise UserError(f"model {name!r} not found in {ws.root / 'models'}")
    manifest = read_manifest(src)
    if Path(file).suffix.lower() == ".dfm":
        from localswap.models.dfm_export import export_dfm
        return export_dfm(src, file)[0]
    if manifest["arch"] == "dfm":
        raise UserError(f"{name} is a DeepFaceLive model: export it as a .dfm file")
    file = Path(file)
    from localswap.models.card import model_card
    from localswap.models.identity import remember
    remember(src)                 # who it learned travels with it (identity.json)
    card = model_card(src)        # first, as it may make the thumbnails
    members = [m for m in MEMBERS if (src / m).is_file()
               and not (for_rendering and m in (OPTIMIZER_FILE, MANIFEST_FILE))]
    if (src / BANK_DIR).is_dir():
        members += sorted(f"{BANK_DIR}/{f.name}" for f in (src / BANK_DIR).iterdir()
                          if f.is_file() and DETAIL_MEMBER.fullmatch(f"{BANK_DIR}/{f.name}"))
    files = {m: file_sha256(src / m) for m in members}
    written = {}         # members written from memory: a for-rendering export's manifest
    if for_rendering:
        written[MANIFEST_FILE] = rendering_manifest(manifest)
        files[MANIFEST_FILE] = hashlib.sha256(written[MANIFEST_FILE]).hexdigest()
        card["for_rendering"] = True
    index = {"format": FORMAT, "version": VERSION, "name": name, "files": files,
             **({"for_rendering": True} if for_rendering else {})}
    with AtomicFile(file) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(EXPORT_FILE, json.dumps(index, indent=1))
            zf.writestr(CARD_FILE, json.dumps(card, indent=1))
            for m, data in written.items():
                zf.writestr(m, data)
            for m in members:
                zf.write(src / m, m)
    return file


def rendering_manifest(manifest: dict) -> bytes:
    """The manifest of a for-rendering export: marked so, and without the optimizer's
    checksum (the checkpoint loader would otherwise call the missing file damage)."""
    out = dict(manifest)
    if isinstance(out.get("files"), dict):
        out["files"] = {k: v for k, v in out["files"].items() if k != OPTIMIZER_FILE}
    out["for_rendering"] = True
    return json.dumps(out, indent=1).encode()



def _refuse_pickle(file: Path, head: bytes) -> None:
    pickle_head = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    torch_zip = False
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as zf:
            torch_zip = any(n.endswith((".pkl", "data.pkl")) for n in zf.namelist())
    if pickle_head or torch_zip or file.suffix.lower() in (".pth", ".pt", ".ckpt", ".pkl",
                                                          ".pickle", ".bin"):
        raise UserError(f"{file.name} is a Python pickle (PyTorch .pth/.ckpt/.pkl) file: "
                        "localswap never loads pickles, since opening one can run any code; "
                        "import a file made by 'python -m localswap models --export'")


def _check_safetensors(path: Path, label: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{label}: {path.name} is damaged or truncated ({exc})") from exc


def import_model(ws: Workspace, file: str | Path, name: str | None = None) -> ModelInfo:
    """Check the export `file` and unpack it into the library as `name` (default: the name it
    was exported under). Nothing is written unless every check passes."""
    file = Path(file)
    if not file.is_file():
        raise UserError(f"{file}: file not found")
    if file.suffix.lower() in (".dfm", ".onnx"):
        return import_dfm(ws, file, name)
    with open(file, "rb") as fh:
        head = fh.read(8)
    _refuse_pickle(file, head)
    if not zipfile.is_zipfile(file):
        raise UserError(f"{file.name}: not a localswap model export (expected the zip written "
                        "by 'python -m localswap models --export')")
    models = ws.root / "models"
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=models))
    try:
        try:
            with zipfile.ZipFile(file) as zf:
                index = _check_members(zf, file.name)
                for m in index["files"]:
                    (tmp / m).parent.mkdir(exist_ok=True)
                    with zf.open(m) as src, open(tmp / m, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise UserError(f"{file.name}: damaged or truncated archive ({exc})") from exc
        for m, digest in index["files"].items():
            if digest and file_sha256(tmp / m) != digest:
                raise UserError(f"{file.name}: {m} does not match its checksum (damaged copy)")
        manifest = read_manifest(tmp)
        recorded = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
        for m, digest in recorded.items():     # the trainer's own checksums, when present
            if m in MEMBERS and (tmp / m).is_file() and file_sha256(tmp / m) != digest:
                raise UserError(f"{file.name}: {m} does not match the checksum in its "
                                "manifest (damaged copy)")
        build_from_state(manifest, _check_safetensors(tmp / MODEL_FILE, file.name))
        if (tmp / OPTIMIZER_FILE).is_file():
            _check_safetensors(tmp / OPTIMIZER_FILE, file.name)
        _check_card_files(tmp, file.name)
        _check_detail_files(tmp, file.name)
        name = check_name(name or index.get("name") or file.stem)
        dest = ws.path("models", name)
        if dest.exists():
            raise UserError(f"a model named {name!r} is already in the library; import with "
                            "--name NEW_NAME")
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return model_info(dest)


def _check_members(zf: zipfile.ZipFile, label: str) -> dict:
    """The export index, after checking the archive holds only what an export holds."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    extra = [n for n in names if n not in (*MEMBERS, EXPORT_FILE, CARD_FILE)
             and not DETAIL_MEMBER.fullmatch(n)]
    if extra or MANIFEST_FILE not in names or MODEL_FILE not in names:
        raise UserError(f"{label}: not a localswap model export (it holds "
                        f"{', '.join(names[:6]) or 'nothing'}; expected {MANIFEST_FILE} and "
                        f"{MODEL_FILE})")
    if sum(i.file_size for i in infos) > MAX_BYTES:
        raise UserError(f"{label}: unpacks to more than {MAX_BYTES >> 30} GB; refused")
    index = {"format": FORMAT, "files": {}}
    if EXPORT_FILE in names:
        try:
            index = json.loads(zf.read(EXPORT_FILE))
        except ValueError as exc:
            raise UserError(f"{label}: damaged {EXPORT_FILE} ({exc})") from exc
        if not isinstance(index, dict) or index.get("format") != FORMAT or \
                not isinstance(index.get("files"), dict):
            raise UserError(f"{label}: not a localswap model export")
    files = {m: str(index["files"].get(m, "")) for m in names
             if m in MEMBERS or DETAIL_MEMBER.fullmatch(m)}
    return {**index, "files": files}


def _check_detail_files(folder: Path, label: str) -> None:
    """The detail bank is a JSON object and PNG images, or it is not imported."""
    bank = folder / BANK_DIR
    if not bank.is_dir():
        return
    try:
        if not isinstance(json.loads((bank / BANK_FILE).read_text()), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: damaged {BANK_DIR}/{BANK_FILE} ({exc})") from exc
    for png in bank.glob("*.png"):
        if png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            raise UserError(f"{label}: {BANK_DIR}/{png.name} is not a PNG image")


def _check_card_files(folder: Path, label: str) -> None:
    """The card's files are what they claim: JSON objects (identity.json: lists of numbers)
    and PNG images."""
    for ev in (folder / "evaluation.json", folder / "identity.json"):
        if not ev.is_file():
            continue
        try:
            data = json.loads(ev.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if ev.name == "identity.json" and not all(
                    isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                    if k != "names" else isinstance(v, dict) and all(
                        isinstance(x, str) for x in v.values())
                    for k, v in data.items()):
                raise ValueError("not lists of numbers (and the people's names)")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{label}: damaged {ev.name} ({exc})") from exc
    for png in (folder / "source.png", folder / "target.png"):
        if png.is_file() and not png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
            raise UserError(f"{label}: {png.name} is not a PNG image")


def import_dfm(ws, file: str | Path, name: str | None = None):
    """Check `file` and add it to the library as `name` (default: the file's stem). Nothing is
    written unless the check passes. Returns the library's ModelInfo."""
    file = Path(file)
    info = check_dfm(file)
    name = check_name(name or file.stem)
    dest = ws.path("models", name)
    if dest.exists():
        raise UserError(f"a model named {name!r} is already in the library; import with "
                        "--name NEW_NAME")
    models = ws.root / "models"
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=models))
    try:
        shutil.copyfile(file, tmp / DFM_FILE)
        manifest = {
            "arch": "dfm", "resolution": info.resolution, "face_type": FACE_TYPE,
            "morph_input": info.morph, "morph_value": MORPH_DEFAULT, "opset": info.opset,
            "producer": info.producer, "source": file.stem, "target": "any",
            "imported_from": file.name, "iteration": 0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "files": {DFM_FILE: file_sha256(tmp / DFM_FILE)}}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return model_info(dest)
