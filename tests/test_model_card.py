"""The model card: source thumbnail, targets, shape, iterations, training time and the scores
of the last render; shown in the Models panel, exported with the model (zip and .dfm)."""
import json
import shutil
import zipfile

import onnx

from localswap.models import library
from localswap.evaluate.report import Report
from localswap.models.card import card_markdown, model_card, record_evaluation
from localswap.workspace import Workspace
from model_fixtures import tiny_plain_model  # noqa: F401  (module-scoped fixture)


def test_card_is_shown_and_travels_with_the_model(tmp_path, tiny_plain_model):
    ws = Workspace(tmp_path / "ws")
    src = ws.path("models", "grace")
    shutil.copytree(tiny_plain_model, src)
    manifest = json.loads((src / "manifest.json").read_text())
    card = model_card(src)
    assert card["evaluation"] is None and "Not judged yet" in card_markdown(card)
    assert (card["arch"], card["resolution"], card["iterations"]) == \
        ("localswap", 64, manifest["iteration"])
    assert card["training_s"] > 0 and card["source"] and card["targets"]
    assert card["source_thumbnail_png"] and (src / "source.png").is_file()

    report = Report(frames=40, target_faces=40, closer_to_source=0.97, distance_to_source=0.41,
                    eye_correlation=0.7, mouth_correlation=0.85, stability=1.05, seam=1.1)
    record_evaluation(src, report.to_dict(), "/uploads/new_target.mp4")
    card = model_card(src)
    text = card_markdown(card)
    assert card["targets"][-1] == "new_target.mp4"
    assert report.sentence() in text and "closer to source 97%" in text
    assert text.startswith("![source face](data:image/png;base64,")

    file = library.export_model(ws, "grace", tmp_path / "grace.zip")
    with zipfile.ZipFile(file) as zf:
        assert {"card.json", "evaluation.json", "source.png"} <= set(zf.namelist())
        assert json.loads(zf.read("card.json"))["evaluation"]["report"]["closer_to_source"] \
            == 0.97
    library.import_model(ws, file, name="copy")
    assert model_card(ws.path("models", "copy"))["evaluation"] == card["evaluation"]

    dfm = library.export_model(ws, "grace", tmp_path / "grace.dfm")
    meta = {p.key: p.value for p in onnx.load(str(dfm)).metadata_props}
    assert json.loads(meta["localswap.card"])["evaluation"]["target"] == "new_target.mp4"


def test_models_panel_exports_a_dfm_where_the_app_serves_files(tmp_path, tiny_plain_model):
    from types import SimpleNamespace

    from localswap.convert.dfm import check_dfm
    from localswap.ui import models_panel
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_plain_model, ws.path("models", "grace"))
    path = models_panel.export_model(SimpleNamespace(workspace=ws), "grace", ".dfm")
    assert path.parent == ws.root / "outputs" / "exports" and path.suffix == ".dfm"
    assert check_dfm(path).resolution == 64
