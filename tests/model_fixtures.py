"""A tiny model trained by the real trainer, shared by the conversion and library tests
(trained once per session, by whichever test module asks first)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

ITERATIONS = 12


def build_tiny_model(base: Path, faceset_a: Path, faceset_b: Path, guide: bool = True) -> Path:
    """localswap 64 px, width 8, batch 4: a few seconds on a 2-core CPU. Expression-guided, as
    the default is; `guide=False` for what only unguided models can do (a .dfm export)."""
    out = base / ("tiny_model" if guide else "tiny_plain_model")
    if (out / "manifest.json").is_file():
        return out
    from localswap.settings import TrainSettings
    from localswap.train.trainer import train
    with one_torch_thread():
        train(faceset_b, faceset_a, out, TrainSettings(
            iterations=ITERATIONS, arch="localswap", resolution=64, width=8, batch=4,
            device="cpu", preview_every=6, guide=guide))
    return out


@contextlib.contextmanager
def one_torch_thread():
    """On the shared 2-core test machine torch's second thread mostly spin-waits for a core:
    measured 5 it/s with one thread against 0.3-0.6 it/s with two for this tiny model."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, faceset_a, faceset_b) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp(), faceset_a, faceset_b)


@pytest.fixture(scope="module")
def tiny_plain_model(tmp_path_factory, faceset_a, faceset_b) -> Path:
    """Without the expression guide: what a .dfm export takes."""
    return build_tiny_model(tmp_path_factory.getbasetemp(), faceset_a, faceset_b, guide=False)
