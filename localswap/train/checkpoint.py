"""The model directory: weights, optimizer state and a JSON manifest. Never pickle.

    DIR/model.safetensors       model weights
    DIR/optimizer.safetensors   Adam moments and step counts; param groups as JSON metadata
    DIR/manifest.json           architecture, iteration, loss history, ... and the SHA-256 of
                                both files above: written last, it commits a save
    DIR/backup/                 the same three files from the save with the best average loss
    DIR/previews/               preview grids

Every file is written atomically (temp file, fsync, rename), and a save writes all three before
it renames any, so a save that fails (a full disk) leaves the last one whole. A crash between
renames, a truncated or corrupted file, all show up as a hash mismatch on load, and the backup
is used instead.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save as st_save

from localswap.errors import UserError
from localswap.train.manifest import BACKUP_DIR, MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE
from localswap.workspace import AtomicFile, file_sha256

FORMAT = 1


def exists(model_dir: Path) -> bool:
    d = Path(model_dir)
    return any((d / f).exists() for f in (MANIFEST_FILE, MODEL_FILE, Path(BACKUP_DIR) / MANIFEST_FILE))


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)          # unwrap DistributedDataParallel
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, str]]:
    """Flatten an optimizer state dict to named tensors + string metadata for safetensors."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{pid}.{key}"] = t.detach().contiguous().cpu()
    return tensors, {"param_groups": json.dumps(sd["param_groups"]), "format": str(FORMAT)}


def optimizer_state(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = t
    groups = json.loads(metadata["param_groups"])
    for group in groups:        # JSON turned tuples such as Adam's betas into lists
        for key, value in group.items():
            if key != "params" and isinstance(value, list):
                group[key] = tuple(value)
    return {"state": state, "param_groups": groups}


def _write(folder: Path, model_b: bytes, optim_b: bytes, manifest: dict) -> None:
    """All three files go to temp files first and are renamed only once all are whole, so a
    full disk (or any failed write) leaves the previous checkpoint exactly as it was. The
    stack renames in reverse order of entry: model, optimizer, then the manifest."""
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(AtomicFile(folder / name))
               for name in (MANIFEST_FILE, OPTIMIZER_FILE, MODEL_FILE)}
        tmp[MODEL_FILE].write_bytes(model_b)
        tmp[OPTIMIZER_FILE].write_bytes(optim_b)
        tmp[MANIFEST_FILE].write_bytes(json.dumps(manifest, indent=1).encode())


def save(model_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         manifest: dict, backup: bool = False) -> dict:
    """Write a checkpoint; with backup=True also refresh DIR/backup. Returns the manifest."""
    model_dir = Path(model_dir)
    model_b = st_save(model_tensors(model))
    otensors, ometa = optimizer_tensors(optimizer)
    optim_b = st_save(otensors, metadata=ometa)
    manifest = dict(manifest, format=FORMAT, files={
        MODEL_FILE: hashlib.sha256(model_b).hexdigest(),
        OPTIMIZER_FILE: hashlib.sha256(optim_b).hexdigest()})
    _write(model_dir, model_b, optim_b, manifest)
    if backup:
        _write(model_dir / BACKUP_DIR, model_b, optim_b, manifest)
    return manifest


@dataclass
class Loaded:
    model: dict[str, torch.Tensor]
    optimizer: dict | None              # None: the model dir holds weights only
    manifest: dict
    from_backup: bool = False
    problems: list[str] = field(default_factory=list)


def _load_folder(folder: Path) -> Loaded:
    """Load and verify one folder; raises ValueError saying what is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder / MANIFEST_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder / MANIFEST_FILE} is unreadable ({exc})") from None
    hashes = manifest.get("files") or {}      # absent in models made by other tools
    for name in (MODEL_FILE, OPTIMIZER_FILE):
        path = folder / name
        if not path.is_file():
            if name == OPTIMIZER_FILE and name not in hashes:
                continue                          # weights only (e.g. an imported model)
            raise ValueError(f"{path} is missing")
        if name in hashes and file_sha256(path) != hashes[name]:
            raise ValueError(f"{path} does not match the manifest (truncated, corrupted or "
                             "written by an interrupted save)")
    try:
        model = load_file(folder / MODEL_FILE)
        optim = None
        if (folder / OPTIMIZER_FILE).is_file():
            with safe_open(folder / OPTIMIZER_FILE, framework="pt") as fh:
                ometa = fh.metadata() or {}
            optim = optimizer_state(load_file(folder / OPTIMIZER_FILE), ometa)
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{folder}: unreadable checkpoint ({exc})") from None
    return Loaded(model, optim, manifest)


def load(model_dir: Path) -> Loaded:
    """The newest intact checkpoint in DIR: the main one, else the backup (with a note why)."""
    model_dir = Path(model_dir)
    problems = []
    for folder, is_backup in ((model_dir, False), (model_dir / BACKUP_DIR, True)):
        try:
            loaded = _load_folder(folder)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        loaded.from_backup, loaded.problems = is_backup, problems
        return loaded
    raise UserError(f"{model_dir}: no usable checkpoint: {'; '.join(problems)}")


def stored_width(model_dir: Path) -> int | None:
    """The width of the stored model (its first convolution's outputs), from the file header."""
    try:
        with safe_open(Path(model_dir) / MODEL_FILE, framework="pt") as fh:
            return int(fh.get_slice("encoder.0.conv.weight").get_shape()[0])
    except (SafetensorError, OSError, ValueError, KeyError):
        return None


def weights_folder(model_dir: Path) -> Path:
    """The folder whose weights to use: the model dir, or its backup/ when the main weights
    do not match the SHA-256 the trainer's manifest records (an interrupted or damaged
    save). Only the weights are checked: conversion and a new model started from this one
    do not need the optimizer state."""
    problems = []
    for folder in (model_dir, model_dir / BACKUP_DIR):
        if not (folder / MANIFEST_FILE).is_file():
            continue
        try:
            digest = (json.loads((folder / MANIFEST_FILE).read_text()).get("files") or {}) \
                .get(MODEL_FILE)
        except (OSError, ValueError, AttributeError):
            problems.append(f"{folder / MANIFEST_FILE} is unreadable")
            continue
        if digest and (not (folder / MODEL_FILE).is_file() or
                       file_sha256(folder / MODEL_FILE) != digest):
            problems.append(f"{folder / MODEL_FILE} does not match its manifest")
            continue
        return folder
    if problems:
        raise UserError(f"{model_dir}: no usable weights: {'; '.join(problems)}")
    return model_dir
