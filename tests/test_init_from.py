"""train --init-from: a new model folder starting from a trained model's weights, its shape
taken from that model; a mismatch is one sentence and nothing is written."""
import hashlib
import json
import shutil

import pytest
from safetensors.torch import load_file

from localswap import cli
from localswap.errors import UserError
from localswap.settings import TrainSettings
from localswap.train.trainer import train
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (module-scoped fixture)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def library(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "grace")
    return models


def test_init_from_starts_from_the_weights_and_leaves_the_original(library, faceset_a,
                                                                   faceset_b):
    before = {p.name: _sha(p) for p in (library / "grace").iterdir() if p.is_file()}
    new = library / "grace-on-new"
    with one_torch_thread():
        code = cli.main(["train", "--source", str(faceset_b), "--target", str(faceset_a),
                         "--model", str(new), "--init-from", "grace", "--iterations", "1",
                         "--batch", "4", "--device", "cpu"])
    assert code == 0
    manifest = json.loads((new / "manifest.json").read_text())
    old = json.loads((library / "grace" / "manifest.json").read_text())
    assert (manifest["arch"], manifest["resolution"], manifest["width"]) == \
        (old["arch"], old["resolution"], old["width"])
    assert manifest["iteration"] == 1 and manifest["init_from"]["name"] == "grace"
    assert manifest["init_from"]["iteration"] == old["iteration"]
    start, now = load_file(str(library / "grace" / "model.safetensors")), \
        load_file(str(new / "model.safetensors"))
    # One small warm-up step away from the weights it started from (a fresh model is ~0.1 off).
    assert max(float((start[k] - now[k]).abs().max()) for k in start) < 0.01
    assert {p.name: _sha(p) for p in (library / "grace").iterdir() if p.is_file()} == before


@pytest.mark.parametrize("settings, sentence", [
    (dict(width=16), "--width 16 does not fit"), (dict(resolution=128), "--resolution 128"),
    (dict(init_from="nobody"), "no such model")])
def test_init_from_mismatch_is_one_sentence(library, faceset_a, faceset_b, settings, sentence):
    s = dict(iterations=1, batch=4, device="cpu", init_from="grace") | settings
    new = library / "mismatch"
    with pytest.raises(UserError, match=sentence) as err, one_torch_thread():
        train(faceset_b, faceset_a, new, TrainSettings(**s))
    assert "\n" not in str(err.value)
    assert not new.exists()


def test_swap_plan_takes_the_face_type_of_the_model_it_starts_from(tmp_path, tiny_model,
                                                                    video_a, video_b):
    from localswap.swap.plan import plan_swap
    from localswap.workspace import Workspace
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_model, ws.path("models", "grace"))
    manifest = json.loads((ws.path("models", "grace") / "manifest.json").read_text())
    manifest["face_type"] = "head"
    (ws.path("models", "grace") / "manifest.json").write_text(json.dumps(manifest))
    job = plan_swap([video_b], video_a, tmp_path / "out.mp4", ws,
                             train=TrainSettings(iterations=1, init_from="grace"))
    assert job.extract.face_type == "head" and job.model_dir.name != "grace"
    assert job.train.init_from == str(ws.path("models", "grace"))    # any folder finds it


def test_the_same_source_person_is_proposed_and_another_is_not(tmp_path, tiny_model, video_a,
                                                               video_b):
    """The library model learned Grace Hopper (faceset_b): a new video of her proposes it,
    the astronaut does not; the web app's New swap sets "Start from" the same way."""
    from types import SimpleNamespace

    from localswap.models.identity import propose
    from localswap.ui.new_swap import propose_start
    from localswap.workspace import Workspace
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_model, ws.path("models", "grace"))
    name, distance = propose(ws, [video_b])
    assert name == "grace" and distance < 0.3
    assert (ws.path("models", "grace") / "identity.json").is_file()      # kept for next time
    assert propose(ws, [video_a]) is None
    update, note = propose_start(SimpleNamespace(workspace=ws), [str(video_b)])
    assert update["value"] == "grace" and "grace" in note
