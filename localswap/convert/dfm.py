"""DeepFaceLive `.dfm` models: check a file and run it (adding one to the library is
models.library.import_dfm).

A `.dfm` is an ONNX model. Input `in_face:0`: float32 NHWC [N, R, R, 3], BGR in [0, 1], a
face aligned the way DeepFaceLab's "whole face" is (face type `dfl_whole_face` in
localswap.faces.align); optional input `morph_value:0` float32 [1] (AMP models, 0.75 by
default as in DeepFaceLive). Outputs, in order: `out_face_mask:0` (the input face's mask),
`out_celeb_face:0` (the swapped face, BGR), `out_celeb_face_mask:0` (its mask), NHWC in
[0, 1]. The mask used for blending is the product of the two masks.

In the library such a model is a folder: `model.dfm` + `manifest.json` with arch "dfm".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localswap.errors import UserError, error_summary
from localswap.train.manifest import is_dfm_dir  # noqa: F401  (the app asks it here)

IN_FACE, IN_MORPH = "in_face:0", "morph_value:0"
OUTPUTS = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")
FACE_TYPE = "dfl_whole_face"
MORPH_DEFAULT = 0.75
MAX_BYTES = 4 << 30


@dataclass
class DfmInfo:
    resolution: int
    morph: bool
    opset: int
    producer: str


def _dim(d) -> int | None:
    return d.dim_value if d.HasField("dim_value") else None


def check_dfm(file: str | Path) -> DfmInfo:
    """The model's resolution and inputs, or a UserError with one sentence saying why `file`
    is not a DeepFaceLive face model. Runs the model once on a blank face."""
    file = Path(file)
    label = file.name
    if not file.is_file():
        raise UserError(f"{file}: file not found")
    size = file.stat().st_size
    if size == 0:
        raise UserError(f"{label} is empty (0 bytes): not a DeepFaceLive .dfm model")
    if size > MAX_BYTES:
        raise UserError(f"{label} is larger than {MAX_BYTES >> 30} GB: not a face model")
    import onnx
    try:
        model = onnx.load(str(file), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:    # protobuf DecodeError, ValidationError, ...: all mean "broken"
        raise UserError(f"{label} is not a readable ONNX model (damaged, truncated or another "
                        f"kind of file): {error_summary(exc, 160)}") from exc
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    outputs = [o.name for o in model.graph.output]
    if IN_FACE not in inputs or set(inputs) - {IN_FACE, IN_MORPH}:
        raise UserError(f"{label} takes the inputs {', '.join(inputs) or 'none'}; a DeepFaceLive "
                        f"model takes {IN_FACE} (and optionally {IN_MORPH})")
    if tuple(outputs[:3]) != OUTPUTS:
        raise UserError(f"{label} gives the outputs {', '.join(outputs) or 'none'}; a DeepFaceLive "
                        f"model gives {', '.join(OUTPUTS)} in that order")
    t = inputs[IN_FACE].type.tensor_type
    dims = [_dim(d) for d in t.shape.dim]
    if t.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4:
        raise UserError(f"{label}: {IN_FACE} must be a float32 [N, R, R, 3] tensor (it is "
                        f"{onnx.TensorProto.DataType.Name(t.elem_type).lower()} with "
                        f"{len(dims)} dimensions)")
    if dims[1] == 3 and dims[3] != 3:
        raise UserError(f"{label} takes faces as [N, 3, R, R] (NCHW); DeepFaceLive models take "
                        "[N, R, R, 3] (NHWC)")
    if dims[3] != 3 or not dims[1] or dims[1] != dims[2] or not 32 <= dims[1] <= 1024:
        raise UserError(f"{label}: {IN_FACE} has the shape {dims}; a DeepFaceLive model takes "
                        "square BGR faces [N, R, R, 3] with R from 32 to 1024")
    res = int(dims[1])
    session = open_session(file)
    try:
        face, mask, celeb_mask = run(session, np.zeros((1, res, res, 3), np.float32),
                                     IN_MORPH in inputs)
    except Exception as exc:
        raise UserError(f"{label} does not run on a {res} px face "
                        f"({str(exc).splitlines()[0][:160]})") from exc
    if face.shape != (1, res, res, 3) or mask.shape[:3] != (1, res, res) or \
            celeb_mask.shape[:3] != (1, res, res):
        raise UserError(f"{label} gives outputs of shapes {face.shape}, {mask.shape}, "
                        f"{celeb_mask.shape}; a DeepFaceLive model gives [N, {res}, {res}, 3] "
                        "faces and [N, R, R, 1] masks")
    return DfmInfo(res, IN_MORPH in inputs, max((o.version for o in model.opset_import), default=0),
                   model.producer_name or "")


def providers() -> list[str]:
    """CUDA when onnxruntime has it (onnxruntime-gpu), else the CPU."""
    import onnxruntime as ort
    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


def open_session(file: str | Path, device: str = "auto"):
    import onnxruntime as ort
    import torch
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    chosen = providers() if device != "cpu" else ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" not in chosen:
        raise UserError("--device cuda was asked for, but onnxruntime has no CUDA provider "
                        "here (install onnxruntime-gpu)")
    try:
        return ort.InferenceSession(str(file), opts, providers=chosen)
    except Exception as exc:
        raise UserError(f"{Path(file).name}: onnxruntime cannot load it "
                        f"({str(exc).splitlines()[0][:160]})") from exc


def run(session, faces_bgr: np.ndarray, morph: bool, morph_value: float = MORPH_DEFAULT):
    """(celeb face BGR [N,R,R,3], face mask [N,R,R,...], celeb mask [N,R,R,...]) floats.
    A model exported with a fixed batch of 1 runs the faces one by one."""
    n = next(i.shape[0] for i in session.get_inputs() if i.name == IN_FACE)
    if n == 1 and len(faces_bgr) > 1:
        parts = [run(session, faces_bgr[k:k + 1], morph, morph_value)
                 for k in range(len(faces_bgr))]
        return tuple(np.concatenate(p) for p in zip(*parts))
    feed = {IN_FACE: np.ascontiguousarray(faces_bgr, np.float32)}
    if morph:
        feed[IN_MORPH] = np.array([morph_value], np.float32)
    mask, face, celeb_mask = session.run(list(OUTPUTS), feed)
    return face, mask, celeb_mask
