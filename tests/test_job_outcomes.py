"""How a job ends, on real files (issue 11): what a cancel keeps, which failures Resume can
fix, when 'Render with what is trained so far' applies, which source photos have a face."""
from __future__ import annotations

import json
import shutil

import pytest

from localswap.errors import DiskFullError, NoFacesError, UserError
from localswap.jobs import stages
from localswap.jobs.runner import Runner, resumable
from localswap.jobs.store import CANCELLED, FAILED, Job
from localswap.workspace import Workspace
from ui_helpers import install_tiny_model


@pytest.fixture
def ws(tmp_path, tmp_path_factory, faceset_a, faceset_b) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    install_tiny_model(ws.root / "models", tmp_path_factory.getbasetemp(), faceset_a, faceset_b)
    return ws


def _job(status: str, **info) -> Job:
    return Job(1, "swap", "t", status, stage="train", params={"model": "tiny_model"},
               info=info)


def test_a_cancel_keeps_a_trained_model_and_removes_one_that_learned_nothing(ws):
    model = ws.root / "models" / "tiny_model"
    trained = json.loads((model / "manifest.json").read_text())["iteration"]
    message = stages.cancelled(_job(CANCELLED), ws)
    assert message.startswith(f"Cancelled at iteration {trained}") and "unfinished" in message
    assert model.is_dir()
    # A model saved at its start (iteration 0) holds nothing trained: it is not kept.
    shutil.copytree(model, ws.root / "models" / "fresh")
    manifest = json.loads((ws.root / "models" / "fresh" / "manifest.json").read_text())
    manifest["iteration"] = 0
    (ws.root / "models" / "fresh" / "manifest.json").write_text(json.dumps(manifest))
    fresh = Job(2, "swap", "t", CANCELLED, params={"model": "fresh"})
    assert stages.cancelled(fresh, ws) == "Cancelled before any training: no model was kept."
    assert not (ws.root / "models" / "fresh").exists()
    assert model.is_dir()                            # the other model is untouched


def test_resume_is_for_failures_running_again_can_fix(ws):
    assert not stages.resumable(NoFacesError("no usable face found"))
    assert not stages.resumable(UserError("not a video"))
    assert stages.resumable(DiskFullError("disk full"))
    assert stages.resumable(RuntimeError("CUDA error: an illegal memory access"))
    assert not resumable(_job(FAILED, resumable=False))
    assert resumable(_job(FAILED))                   # jobs failed before the flag existed
    runner = Runner(ws)                              # not started: requests only
    j = runner.store.add("swap", {"model": "tiny_model"}, "t")
    runner.store.update(j, status=FAILED, info={"resumable": False})
    assert not runner.resume_job(j)
    runner.store.update(j, info={"resumable": True})
    assert runner.resume_job(j)


def test_render_so_far_needs_a_stopped_job_with_a_trained_model(ws):
    runner = Runner(ws)
    j = runner.store.add("swap", {"model": "tiny_model", "train": {}}, "t")
    assert not runner.render_now(j)                  # still queued
    runner.store.update(j, status=CANCELLED, timings={"extract_target": 1.0})
    assert runner.render_now(j)
    job = runner.store.get(j)
    trained = json.loads((ws.root / "models" / "tiny_model" / "manifest.json").read_text())
    assert job.status == "queued" and job.params["train"]["iterations"] == trained["iteration"]
    none = runner.store.add("swap", {"model": "not trained", "train": {}}, "t")
    runner.store.update(none, status=CANCELLED)
    assert not runner.render_now(none)               # nothing to render with


def test_source_photos_without_a_face_are_named(tmp_path):
    from localswap import media
    from localswap.bench import samples
    from localswap.jobs.uploads import photos_without_face
    coffee, face = tmp_path / "coffee.jpg", tmp_path / "face.png"
    media.write_image(coffee, samples.no_face())
    media.write_image(face, samples.grace_hopper())
    assert photos_without_face([(face, "face.png"), (coffee, "coffee.jpg")]) == ["coffee.jpg"]
    assert photos_without_face([(face, "face.png")]) == []


def test_the_hint_names_the_setting_that_lets_small_faces_through():
    from localswap.errors import NoFacesError
    from localswap.jobs.stages import hint_for
    hint = hint_for(NoFacesError("Source: no usable face found in 104 frames (rejected: "
                                 "other person 102, too small 104)"), "extract_source")
    assert '"Smallest source face (px)"' in hint and "--min-face" in hint
    assert '"Who"' in hint
    plain = hint_for(NoFacesError("no usable face found in 3 frames"), "extract_source")
    assert "Smallest" not in plain
