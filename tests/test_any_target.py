"""A model for any target: the target side trained on a mix of people (a pipeline test: two
packaged faces stand in for the many people a real mix holds)."""
import json

from localswap import cli
from localswap.faces.faceset import Faceset
from localswap.train.any_target import mix_facesets, people_of
from localswap.models.card import card_markdown, model_card
from model_fixtures import one_torch_thread


def test_mix_is_balanced_tagged_and_repeatable(tmp_path, faceset_a, faceset_b):
    out = mix_facesets([faceset_a, faceset_b], tmp_path / "mix", per_person=5)
    mix = Faceset.load(out)
    assert people_of(mix) == [faceset_a.name, faceset_b.name] and len(mix) == 10
    assert all((out / f.image).is_file() for f in mix.faces)
    first = (out / "faceset.json").read_bytes()
    mix_facesets([faceset_a, faceset_b], tmp_path / "mix", per_person=5)
    assert (out / "faceset.json").read_bytes() == first


def test_train_on_several_targets_makes_an_any_target_model(tmp_path, faceset_a, faceset_b):
    """Targets: a faceset, and a folder of photos (extracted like the source first)."""
    import cv2
    from matplotlib import cbook
    photos = tmp_path / "hopper_photos"
    photos.mkdir()
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        (photos / "grace.jpg").write_bytes(fh.read())
    assert cv2.imread(str(photos / "grace.jpg")) is not None
    model = tmp_path / "models" / "anyone"
    with one_torch_thread():
        assert cli.main(["train", "--source", str(faceset_b), "--target", str(faceset_a),
                         str(photos), "--model", str(model), "--iterations", "2",
                         "--arch", "localswap", "--resolution", "64", "--width", "8",
                         "--batch", "4", "--device", "cpu"]) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["any_target"] is True
    assert manifest["targets"] == [faceset_a.name, "hopper_photos"]
    extracted = Faceset.load(faceset_a.parent / "anyone-targets" / "people" / "hopper_photos")
    assert extracted.face_type == Faceset.load(faceset_b).face_type and len(extracted) == 1
    card = model_card(model, thumbnail=False)
    assert card["any_target"] and "(any target)" in card_markdown(card)
