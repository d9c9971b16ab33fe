"""DeepFaceLive .dfm interchange: export a trained model and run it in onnxruntime, import a
model built here with DeepFaceLab's exact names and render a video with it, refuse files that
are not such models (one sentence, nothing written)."""
import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from localswap import cli
from localswap.models import library
from localswap.convert.render import convert
from localswap.convert.swapper import load_model
from localswap.errors import UserError
from localswap.convert import dfm
from localswap.settings import ConvertSettings
from localswap.workspace import Workspace
from model_fixtures import one_torch_thread, tiny_plain_model  # noqa: F401  (module-scoped fixture)


class DflLike(nn.Module):
    """A small network with DeepFaceLab's export interface: NHWC BGR [0, 1] in, the target
    mask, the swapped face (a colour-shifted, convolved copy) and its mask out, AMP's morph."""

    def __init__(self, nchw: bool = False):
        super().__init__()
        self.nchw = nchw
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, face, morph):
        x = face if self.nchw else face.permute(0, 3, 1, 2)
        y = torch.sigmoid(self.conv(x))
        celeb = (0.6 * x + 0.4 * y[:, :3] * morph).clamp(0, 1)
        mask = torch.ones_like(y[:, 3:])
        if self.nchw:
            return mask, celeb, y[:, 3:]
        return (mask.permute(0, 2, 3, 1), celeb.permute(0, 2, 3, 1),
                y[:, 3:].permute(0, 2, 3, 1))


def build_dfl_onnx(path, res=96, nchw=False, names=("in_face:0", "morph_value:0"),
                   outputs=dfm.OUTPUTS, dynamic=True):
    torch.manual_seed(0)
    shape = (1, 3, res, res) if nchw else (1, res, res, 3)
    with torch.no_grad():
        torch.onnx.export(DflLike(nchw).eval(), (torch.rand(shape), torch.tensor([0.75])),
                          str(path), dynamo=False, opset_version=17, input_names=list(names),
                          output_names=list(outputs),
                          dynamic_axes={names[0]: {0: "N"}} if dynamic else None)
    return path


def _real_faces(faceset, res):
    crops = sorted(faceset.glob("*.png"))[:8]
    return np.stack([cv2.resize(cv2.imread(str(p)), (res, res), interpolation=cv2.INTER_AREA)
                     for p in crops])           # BGR uint8, as DeepFaceLive feeds it


def test_export_matches_pytorch_on_real_faces(tmp_path, tiny_plain_model, faceset_a):
    ws = Workspace(tmp_path / "ws")
    import shutil
    shutil.copytree(tiny_plain_model, ws.path("models", "tiny"))
    file = library.export_model(ws, "tiny", tmp_path / "tiny.dfm")
    info = dfm.check_dfm(file)
    assert info.resolution == 64 and not info.morph
    bgr = _real_faces(faceset_a, 64).astype(np.float32) / 255
    with one_torch_thread():
        face, mask, celeb_mask = dfm.run(dfm.open_session(file), bgr, False)
        model, _ = load_model(ws.path("models", "tiny"))
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(0, 3, 1, 2)
            z = model.encode(x)
            rgb_b, mask_b = model.decode(z, "b")
            _, mask_a = model.decode(z, "a")
    nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731
    assert np.abs(face - nhwc(rgb_b)[..., ::-1]).mean() < 1 / 255
    assert np.abs(celeb_mask - nhwc(mask_b)).mean() < 1 / 255
    assert np.abs(mask - nhwc(mask_a)).mean() < 1 / 255
    # ... and the exported file comes back into the library as a runnable model
    back = library.import_model(ws, file, name="tiny back")
    assert (back.arch, back.resolution, back.face_type) == ("dfm", 64, "dfl_whole_face")


def test_dfl_named_model_imports_and_renders_a_video(tmp_path, video_a):
    ws = Workspace(tmp_path / "ws")
    src = build_dfl_onnx(tmp_path / "celeb.dfm")
    assert cli.main(["models", "--workspace", str(ws.root), "--import", str(src)]) == 0
    [m] = library.list_models(ws)
    assert (m.name, m.arch, m.resolution, m.source) == ("celeb", "dfm", 96, "celeb")
    out = tmp_path / "out.mp4"
    with one_torch_thread():
        result = convert(video_a, ws.path("models", "celeb"), out,
                         ConvertSettings(mask="both", end=1.0))
    assert out.is_file() and result.faces > 0 and result.model == "celeb"
    assert json.loads((ws.path("models", "celeb") / "manifest.json").read_text())[
        "morph_input"] is True
    # It is used as it is: training it is refused before any work.
    from localswap.swap.plan import plan_swap
    with pytest.raises(UserError, match="cannot be trained here"):
        plan_swap([video_a], video_a, tmp_path / "o.mp4", ws, model="celeb")
    # A library .dfm exports back byte for byte.
    again = library.export_model(ws, "celeb", tmp_path / "again.dfm")
    assert again.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("kind, sentence", [
    ("empty", "empty"), ("text", "not a readable ONNX model"),
    ("truncated", "not a readable ONNX model"), ("names", "takes the inputs"),
    ("outputs", "gives the outputs"),
    ("nchw", "NCHW")])
def test_not_a_dfm_is_refused_with_one_sentence(tmp_path, kind, sentence):
    ws = Workspace(tmp_path / "ws")
    (ws.root / "models").mkdir(parents=True, exist_ok=True)
    file = tmp_path / f"{kind}.dfm"
    if kind == "empty":
        file.write_bytes(b"")
    elif kind == "text":
        file.write_text("not a model\n" * 50)
    elif kind == "truncated":
        data = build_dfl_onnx(tmp_path / "whole.onnx", res=32).read_bytes()
        file.write_bytes(data[: len(data) // 2])
    elif kind == "outputs":
        build_dfl_onnx(file, res=32, outputs=("mask", "face", "face_mask"))
    elif kind == "names":
        build_dfl_onnx(file, res=32, names=("input", "morph"))
    else:
        build_dfl_onnx(file, res=32, nchw=True)
    with pytest.raises(UserError, match=sentence) as err:
        library.import_model(ws, file)
    assert "\n" not in str(err.value) and file.name in str(err.value)
    assert list((ws.root / "models").iterdir()) == []


def test_dfl_whole_face_crop_follows_deepfacelab_construction():
    """DeepFaceLab's recipe, step by step: fit brows, nose, eyes and mouth corners to the mean
    face; take the unit square's corners back to the image; pad its diagonal by 0.40 * sqrt 2
    on each side, move the centre up 7% of the side; the crop is that square."""
    import skimage.data

    from localswap.faces.align import transform_matrix, umeyama
    from localswap.faces.detect import make_backend
    from localswap.faces.landmarks import MEAN_FACE
    backend = make_backend("mediapipe")
    try:
        lm = backend.detect(skimage.data.astronaut())[0].landmarks
    finally:
        backend.close()
    pts = list(range(17, 49)) + [54]
    to_mean = np.vstack([umeyama(lm[pts], MEAN_FACE[np.array(pts) - 17]), [0, 0, 1]])
    back = np.linalg.inv(to_mean)[:2]
    g = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]]) @ back[:, :2].T + back[:, 2]
    diag_tb = (g[2] - g[0]) / np.linalg.norm(g[2] - g[0])
    diag_bt = (g[1] - g[3]) / np.linalg.norm(g[1] - g[3])
    mod = np.linalg.norm(g[0] - g[2]) * (0.40 * np.sqrt(2) + 0.5)
    centre = g[4] + (g[0] - g[3]) * 0.07
    src = np.float32([centre - diag_tb * mod, centre + diag_bt * mod, centre + diag_tb * mod])
    size = 224
    expected = cv2.getAffineTransform(src, np.float32([[0, 0], [size, 0], [size, size]]))
    assert np.abs(transform_matrix(lm, size, "dfl_whole_face") - expected).max() < 1e-3


def test_a_model_with_a_fixed_batch_of_one_runs_face_by_face(tmp_path, faceset_a):
    file = build_dfl_onnx(tmp_path / "one.dfm", res=64, dynamic=False)
    session = dfm.open_session(file)
    faces = _real_faces(faceset_a, 64).astype(np.float32) / 255
    face, mask, celeb_mask = dfm.run(session, faces[:3], True)
    assert face.shape == (3, 64, 64, 3) and celeb_mask.shape == (3, 64, 64, 1)
    alone = dfm.run(session, faces[1:2], True)[0]
    assert np.abs(face[1:2] - alone).max() < 1e-6
