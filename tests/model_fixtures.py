"""A tiny trained model shared by the conversion, library and swap tests (built once per
session, whichever test module asks first)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY = {"arch": "localswap", "resolution": 64, "width": 16}


def build_tiny_model(base: Path, faceset_a: Path, faceset_b: Path) -> Path:
    out = base / "tiny_model"
    if (out / "manifest.json").is_file():
        return out
    # Until the trainer lands: a randomly initialised model saved as a model dir.
    from safetensors.torch import save_file
    from localswap.train.models import build_model
    model = build_model(TINY["arch"], TINY["resolution"], TINY["width"])
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / "model.safetensors"))
    (out / "manifest.json").write_text(json.dumps({
        "arch": TINY["arch"], "resolution": TINY["resolution"], "width": TINY["width"],
        "face_type": "whole_face", "iteration": 0, "loss_history": [],
        "source": faceset_b.name, "target": faceset_a.name}))
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, faceset_a, faceset_b) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp(), faceset_a, faceset_b)
