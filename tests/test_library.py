"""The model library: list, export one portable file, import it back (checked, never
unpickled)."""
import hashlib
import json
import pickle
import shutil
import zipfile

import pytest
import torch

from localswap import cli
from localswap.models import library
from localswap.errors import UserError
from localswap.workspace import Workspace
from model_fixtures import tiny_model  # noqa: F401  (module-scoped fixture)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ws(tmp_path, tiny_model):
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_model, ws.path("models", "astro to grace"))
    return ws


def _models_left(ws):
    return sorted(p.name for p in (ws.root / "models").iterdir())


def test_list_shows_each_model(ws, tiny_model):
    (ws.root / "models" / "not a model").mkdir()
    models = library.list_models(ws)
    assert [m.name for m in models] == ["astro to grace"]
    m = models[0]
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert (m.arch, m.resolution, m.face_type) == ("localswap", 64, "face")
    assert m.iterations == manifest.get("iteration", 0)
    assert m.source and m.target and m.size_mb > 0 and len(m.date) == 16


def test_export_import_round_trips_bit_for_bit(ws, tmp_path):
    src = ws.path("models", "astro to grace")
    file = library.export_model(ws, "astro to grace", tmp_path / "exports" / "astro.zip")
    assert zipfile.is_zipfile(file)
    with pytest.raises(UserError, match="already in the library"):
        library.import_model(ws, file)
    info = library.import_model(ws, file, name="copy")
    dst = ws.path("models", "copy")
    for name in ("model.safetensors", "manifest.json", "optimizer.safetensors"):
        if (src / name).exists():
            assert _sha(src / name) == _sha(dst / name), name
    bank = sorted(p.name for p in (src / "detail").iterdir())       # the source's crops too
    assert "bank.json" in bank and len(bank) > 1
    assert all(_sha(src / "detail" / n) == _sha(dst / "detail" / n) for n in bank)
    assert info.name == "copy" and info.arch == "localswap"
    assert _models_left(ws) == ["astro to grace", "copy"]   # no temp folders left


def test_rename_and_delete(ws):
    library.rename_model(ws, "astro to grace", "renamed")
    assert [m.name for m in library.list_models(ws)] == ["renamed"]
    with pytest.raises(UserError):
        library.rename_model(ws, "renamed", "../escape")
    library.delete_model(ws, "renamed")
    assert _models_left(ws) == []


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_import_refuses_pickles_and_foreign_files(ws, tmp_path, tiny_model):
    pth = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(3)}, pth)                  # a torch zip with data.pkl
    raw = tmp_path / "weights.zip"
    raw.write_bytes(pickle.dumps({"w": [1, 2, 3]}))          # a plain pickle, renamed
    for f in (pth, raw):
        with pytest.raises(UserError, match="pickle"):
            library.import_model(ws, f)
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    other = _zip(tmp_path / "other.zip", {"readme.txt": "hi", "manifest.json": "{}"})
    for f in (text, other):
        with pytest.raises(UserError, match="not a localswap model export"):
            library.import_model(ws, f)
    good = (tiny_model / "model.safetensors").read_bytes()
    manifest = (tiny_model / "manifest.json").read_text()
    half = good[: len(good) // 2]
    cut = _zip(tmp_path / "cut.zip", {"manifest.json": manifest, "model.safetensors": half})
    with pytest.raises(UserError, match="checksum in its manifest"):    # the trainer's hashes
        library.import_model(ws, cut)
    bare = json.dumps({k: v for k, v in json.loads(manifest).items() if k != "files"})
    cut = _zip(tmp_path / "cut2.zip", {"manifest.json": bare, "model.safetensors": half})
    with pytest.raises(UserError, match="damaged or truncated"):       # safetensors parse
        library.import_model(ws, cut)
    # The checksum in export.json catches a damaged copy before anything is parsed.
    index = json.dumps({"format": "localswap-model", "version": 1, "name": "x",
                        "files": {"model.safetensors": "0" * 64}})
    bad_sum = _zip(tmp_path / "sum.zip", {"export.json": index, "manifest.json": manifest,
                                          "model.safetensors": good})
    with pytest.raises(UserError, match="checksum"):
        library.import_model(ws, bad_sum)
    not_model = _zip(tmp_path / "fake.zip", {"manifest.json": json.dumps({"arch": "gpt"}),
                                             "model.safetensors": good})
    with pytest.raises(UserError, match="not a localswap model"):
        library.import_model(ws, not_model)
    # Bank members have fixed names: none can point outside the model, none can be a script.
    for name, data in (("detail/../../escape.png", b"\x89PNG\r\n\x1a\n"),
                       ("detail/run.sh", b"#!/bin/sh")):
        odd = _zip(tmp_path / "odd.zip", {"manifest.json": manifest, "model.safetensors": good,
                                          name: data})
        with pytest.raises(UserError, match="not a localswap model export"):
            library.import_model(ws, odd)
    fake = _zip(tmp_path / "fake_png.zip", {"manifest.json": manifest, "model.safetensors": good,
                                            "detail/bank.json": "{}", "detail/000.png": "hi"})
    with pytest.raises(UserError, match="000.png is not a PNG"):
        library.import_model(ws, fake)
    ok = _zip(tmp_path / "ok.zip", {"manifest.json": manifest, "model.safetensors": good})
    with pytest.raises(UserError, match="invalid name"):
        library.import_model(ws, ok, name="../../etc")
    assert _models_left(ws) == ["astro to grace"]


def test_cli_lists_exports_and_imports(ws, tmp_path, capsys):
    root = str(ws.root)
    assert cli.main(["models", "--workspace", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "astro to grace" and listed[0]["resolution"] == 64
    file = tmp_path / "m.zip"
    assert cli.main(["models", "--workspace", root, "--export", "astro to grace",
                     str(file)]) == 0
    assert cli.main(["models", "--workspace", root, "--import", str(file), "--name",
                     "again"]) == 0
    capsys.readouterr()
    assert cli.main(["models", "--workspace", root]) == 0
    table = capsys.readouterr().out
    assert "again" in table and "astro to grace" in table and "localswap" in table
    assert cli.main(["models", "--workspace", root, "--import", str(tmp_path / "nope.zip")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_an_export_for_rendering_is_smaller_renders_and_says_it_cannot_continue(
        ws, tmp_path, capsys, video_a, faceset_a, faceset_b):
    """`models --export --for-rendering` leaves the training state out: a smaller file whose
    import renders like the full one, whose card and CLI say it cannot continue training
    where it stopped, and whose further training starts that state afresh (as DeepFaceLab
    does when its optimizer files are gone)."""
    import numpy as np

    from localswap import media
    from localswap.convert.render import convert
    from localswap.models.card import card_markdown, model_card
    from localswap.settings import TrainSettings
    from localswap.train.trainer import train
    from model_fixtures import one_torch_thread
    root, src = str(ws.root), ws.path("models", "astro to grace")
    full = library.export_model(ws, "astro to grace", tmp_path / "full.zip")
    small = tmp_path / "small.zip"
    assert cli.main(["models", "--workspace", root, "--export", "astro to grace", str(small),
                     "--for-rendering"]) == 0
    assert "cannot continue training" in capsys.readouterr().err
    optimizer = (src / "optimizer.safetensors").stat().st_size
    assert small.stat().st_size < full.stat().st_size - 0.9 * optimizer, \
        (small.stat().st_size, full.stat().st_size, optimizer)
    with zipfile.ZipFile(small) as zf:
        assert "optimizer.safetensors" not in zf.namelist()
        assert json.loads(zf.read("card.json"))["for_rendering"] is True
    assert cli.main(["models", "--workspace", root, "--import", str(small), "--name",
                     "render only"]) == 0
    assert "cannot continue training" in capsys.readouterr().err
    dst = ws.path("models", "render only")
    assert _sha(src / "model.safetensors") == _sha(dst / "model.safetensors")
    card = model_card(dst)
    assert card["for_rendering"] and "cannot continue training" in card_markdown(card)
    assert not model_card(src)["for_rendering"]        # the full model says nothing of it
    # it renders: the same frames, faces swapped, as the full model gives
    with one_torch_thread():
        got = convert(video_a, dst, tmp_path / "small.mp4")
        ref = convert(video_a, src, tmp_path / "full.mp4")
    assert got.frames == ref.frames == 48 and got.faces == ref.faces > 0
    a = np.stack([f for _, _, f in media.read_frames(tmp_path / "small.mp4")])
    b = np.stack([f for _, _, f in media.read_frames(tmp_path / "full.mp4")])
    assert np.abs(a.astype(int) - b).mean() < 1.0
    # more training goes on from its weights, with a note that says the state restarted
    it = card["iterations"]
    with one_torch_thread():
        more = train(faceset_b, faceset_a, dst, TrainSettings(
            iterations=it + 2, arch="localswap", resolution=64, width=8, batch=4,
            device="cpu", preview_every=100))
    assert more.start_iteration == it and more.iteration == it + 2
    assert any("state started afresh" in n for n in more.notes), more.notes
    assert not model_card(dst)["for_rendering"]      # trained again: it has its state now
