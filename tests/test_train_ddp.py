"""Multi-process training: torchrun, two processes, gloo on the CPU; the ranks must agree."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_train_one_model(faceset_a, faceset_b, tmp_path):
    src = shutil.copytree(faceset_b, tmp_path / "b")
    tgt = shutil.copytree(faceset_a, tmp_path / "a")
    model = tmp_path / "model"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "localswap", "train", "--source", str(src), "--target", str(tgt),
           "--model", str(model), "--iterations", "6", "--resolution", "64", "--width", "8",
           "--batch", "2", "--device", "cpu", "--precision", "fp32", "--preview-every", "3",
           "--save-every", "3", "--json"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)              # rank 0 alone prints
    assert result["iteration"] == 6 and result["stopped"] == "target"
    manifest = json.loads((model / "manifest.json").read_text())
    ddp = manifest["ddp"]
    assert ddp["world_size"] == 2 and manifest["world_size"] == 2
    assert len(ddp["weight_digests"]) == 2 and ddp["ranks_agree"], ddp
    # Two ranks each drew their own batches: 2 x 2 x 2 faces per step.
    assert result["eg_s"] > 0 and result["batch"] == 2
    weights = load_file(model / "model.safetensors")
    assert all(t.isfinite().all() for t in weights.values())
    assert (model / "previews" / "preview_00000006.png").is_file()
