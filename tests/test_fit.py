"""Quick swap with a trained model: the model knows whom it learned as its target, a new
video of that person renders at once, anyone else is told before any render and offered
adapting, which starts from the model, reuses its source faces and trains on the new person.

The tiny model learned Grace Hopper (source) onto the astronaut (target): the astronaut's
video is the same person, Grace's video is someone else."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from localswap import cli
from localswap.bench import samples as mb
from localswap.settings import TrainSettings
from localswap.workspace import Workspace
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (module-scoped fixture)


@pytest.fixture
def ws(tmp_path, tiny_model):
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_model, ws.path("models", "grace"))
    return ws


def test_the_model_knows_its_target_and_tells_who_fits(ws, video_a, video_b):
    from localswap.models.card import card_markdown, model_card
    from localswap.swap.fit import check
    from localswap.train.budget import ADAPT_MINUTES
    model = ws.path("models", "grace")
    same = check(model, video_a, ws)
    assert same.verdict == "same" and same.fits and same.distance < 0.3
    assert "renders with no training" in same.sentence()
    other = check(model, video_b, ws)
    assert other.verdict == "other" and not other.fits and other.distance > 0.5
    # one sentence: what the model learned, what to expect, and what adapting costs here
    text = other.sentence()
    assert "expect artifacts" in text and "Adapt it to this person: about" in text
    assert "\n" not in text and ADAPT_MINUTES["cpu"] * 60 < other.adapt_seconds < 3600
    stored = json.loads((model / "identity.json").read_text())
    assert len(stored["target"]) == 128
    card = model_card(model)
    assert card["knows_target"] and card["target_thumbnail_png"]
    assert "Trained on this person" in card_markdown(card)


def test_an_exported_model_still_knows_its_target_without_its_facesets(ws, tmp_path, video_a,
                                                                      video_b):
    from localswap.swap.fit import check
    from localswap.models.library import export_model, import_model
    zipped = export_model(ws, "grace", tmp_path / "grace.zip")
    other = Workspace(tmp_path / "elsewhere")
    folder = Path(import_model(other, zipped).path)
    manifest = json.loads((folder / "manifest.json").read_text())
    for side in manifest["facesets"].values():      # the faces stayed on the first machine
        side["path"] = str(tmp_path / "gone")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert (folder / "target.png").is_file()
    assert check(folder, video_a).verdict == "same"
    assert check(folder, video_b).verdict == "other"


def test_a_damaged_identity_file_is_refused_at_import(ws, tmp_path):
    import zipfile

    from localswap.errors import UserError
    from localswap.models.library import export_model, import_model
    zipped = export_model(ws, "grace", tmp_path / "grace.zip")
    bad = tmp_path / "bad.zip"
    forged = b'{"target": "import os"}'       # with a matching checksum: the content counts
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "identity.json":
                data = forged
            elif item.filename == "export.json":
                index = json.loads(data)
                index["files"]["identity.json"] = hashlib.sha256(forged).hexdigest()
                data = json.dumps(index).encode()
            dst.writestr(item, data)
    with pytest.raises(UserError, match="damaged identity.json"):
        import_model(Workspace(tmp_path / "other"), bad)


def test_convert_says_before_rendering_that_the_model_does_not_fit(ws, tmp_path, video_b,
                                                                   capsys):
    out = tmp_path / "out.mp4"
    with one_torch_thread():
        code = cli.main(["convert", str(video_b), "--model", "grace", "--out", str(out),
                         "--workspace", str(ws.root), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and out.is_file()           # rendered anyway: the user may want it
    assert "note: grace learned" in err and "expect artifacts" in err
    assert f"swap --adapt {ws.path('models', 'grace')}" in err and "--target" in err


def test_basic_from_a_trained_model_is_the_adapt_budget():
    from localswap.train.budget import ADAPT_MINUTES, UNLIMITED, resolve
    s = resolve(TrainSettings(init_from="grace"), "cpu")
    assert s.max_minutes == ADAPT_MINUTES["cpu"] and s.iterations == UNLIMITED
    assert resolve(TrainSettings(init_from="grace", iterations=5), "cpu").iterations == 5
    assert resolve(TrainSettings(), "cpu").max_minutes == 20.0          # Basic unchanged
    from localswap.train.budget import describe
    said = describe(UNLIMITED, 120, "cpu", adapt=True)     # the estimate's Basic line
    assert "about 2 minutes of training" in said and "adapt" in said
    assert "100,000,000" not in said


def test_adapt_starts_from_the_model_and_reuses_its_source(ws, tmp_path, video_b):
    """`swap --adapt`: no --source, no source extraction; the original is not written; the
    adapted model knows its new target, so the same video now fits it."""
    from localswap.swap.fit import check
    before = {p.name: p.stat().st_mtime_ns for p in ws.path("models", "grace").iterdir()
              if p.is_file() and p.name != "identity.json"}
    facesets_before = set(ws.names("facesets"))
    out = tmp_path / "adapted.mp4"
    with one_torch_thread():
        code = cli.main(["swap", "--adapt", "grace", "--target", str(video_b), "--out",
                         str(out), "--iterations", "2", "--batch", "4", "--device", "cpu",
                         "--workspace", str(ws.root)])
    assert code == 0 and out.is_file()
    new = [n for n in ws.names("models") if n != "grace"]
    assert new == ["grace-adapted-on-grace_hopper"], new
    manifest = json.loads((ws.path("models", new[0]) / "manifest.json").read_text())
    assert manifest["init_from"]["name"] == "grace" and manifest["iteration"] == 2
    made = set(ws.names("facesets")) - facesets_before
    assert made == {f"{new[0]}-target"}          # only the new person's faces were found
    assert {p.name: p.stat().st_mtime_ns for p in ws.path("models", "grace").iterdir()
            if p.is_file() and p.name != "identity.json"} == before
    assert check(ws.path("models", new[0]), video_b, ws).verdict == "same"


def test_live_frames_are_checked_against_the_model(ws):
    from localswap.swap.fit import check_images
    model = ws.path("models", "grace")
    grace = mb.moving_frames(mb.grace_hopper(), mb.FACE_CENTRES["grace_hopper"], 2,
                             size=(640, 480))
    astronaut = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 2,
                                 size=(640, 480))
    assert check_images(model, astronaut[:1]).verdict == "same"
    other = check_images(model, grace[:1], seconds=6)
    assert other.verdict == "other" and other.adapt_seconds > 6
    blank = [np.full((480, 640, 3), 128, np.uint8)]
    assert check_images(model, blank).verdict == "unknown"
