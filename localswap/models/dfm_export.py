"""Write a localswap model as a DeepFaceLive `.dfm` (ONNX): the same input and output names,
layout and pixel convention as DeepFaceLab's export (see localswap.convert.dfm), so a model
trained here runs in DeepFaceLive, FaceFusion or VisoMaster.

The graph: in_face:0 NHWC BGR [0, 1] -> NCHW RGB -> encoder -> decoder A's mask of the input
face (out_face_mask:0) and decoder B's face and mask (out_celeb_face:0, out_celeb_face_mask:0),
NHWC, BGR for the face. A model that learns no mask gives masks of ones.

The crop must match what DeepFaceLive feeds: DeepFaceLab's whole face. A model trained on
`dfl_whole_face` facesets (`extract --face-type dfl_whole_face`) matches exactly; one trained
on localswap's `whole_face` is exported as is, with a note: on two real photos its crop
differs from DeepFaceLab's by 3-4% in scale and up to 3% of the side in position (DeepFaceLab
fits brows, nose, eyes and mouth corners; localswap all points from the brows down).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from localswap.errors import UserError
from localswap.convert.dfm import FACE_TYPE, IN_FACE, OUTPUTS, check_dfm


class DfmGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, in_face: torch.Tensor):
        x = in_face.flip(-1).permute(0, 3, 1, 2)                # NHWC BGR -> NCHW RGB
        z = self.model.encoder(x)
        _, mask_a = self.model.decoder_a(z)
        rgb_b, mask_b = self.model.decoder_b(z)
        ones = torch.ones_like(rgb_b[:, :1])
        mask_a = ones if mask_a is None else mask_a
        mask_b = ones if mask_b is None else mask_b
        return (mask_a.permute(0, 2, 3, 1), rgb_b.flip(1).permute(0, 2, 3, 1),
                mask_b.permute(0, 2, 3, 1))


def to_onnx_bytes(model: nn.Module, resolution: int, opset: int = 17) -> bytes:
    """The model as `.dfm` bytes (fp32, CPU, batch dimension dynamic)."""
    graph = DfmGraph(model.float().cpu().to(memory_format=torch.contiguous_format)).eval()
    dummy = torch.rand(1, resolution, resolution, 3)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (dummy,), buf, dynamo=False, opset_version=opset,
                          input_names=[IN_FACE], output_names=list(OUTPUTS),
                          dynamic_axes={n: {0: "N"} for n in (IN_FACE, *OUTPUTS)},
                          do_constant_folding=True)
    return buf.getvalue()


def crop_notes(manifest: dict) -> list[str]:
    """What a DeepFaceLive user should know about the crop this model was trained on."""
    face_type = manifest.get("face_type", "whole_face")
    if face_type == "whole_face":
        return ["the model was trained on localswap's whole-face crops, which differ from "
                "DeepFaceLab's by a few percent in scale and position; extract with "
                "--face-type dfl_whole_face for an exact match"]
    if face_type not in (FACE_TYPE, "dfm"):
        return [f"the model was trained on {face_type} crops; DeepFaceLive feeds whole-face "
                "crops, so the face will sit larger or smaller"]
    return []


def with_card(onnx_bytes: bytes, model_dir: Path) -> bytes:
    """The model with its card (localswap.models.card, without the thumbnail) in the ONNX
    metadata under `localswap.card`: DeepFaceLive ignores it, tools can read it."""
    import json

    import onnx

    from localswap.models.card import model_card
    proto = onnx.load_from_string(onnx_bytes)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "localswap.card", json.dumps(model_card(model_dir, thumbnail=False))
    return proto.SerializeToString()


class GuidedModel(UserError):
    """An expression-guided model cannot be a .dfm. The message names the CLI's flag; the
    web app shows `in_app`, which names the setting a user sees there."""

    def __init__(self, name: str):
        why = (f"{name} is expression-guided (it draws the target's lids and lips from "
               "landmarks), which a .dfm cannot take: DeepFaceLive gives a model the face only.")
        super().__init__(f"{why} Train with --no-guide for a model to export")
        self.in_app = (f"{why} For a model to export as .dfm, start a swap with *Expression "
                       "guide* unticked (New swap, Advanced, training settings). *Export as "
                       "one file* keeps this model whole.")


def export_dfm(model_dir: str | Path, file: str | Path) -> tuple[Path, list[str]]:
    """Write the model in `model_dir` to `file` (atomically) and check it loads as a `.dfm`.
    Returns (file, notes). An imported `.dfm` is written back byte for byte."""
    import shutil

    from localswap.convert.swapper import load_model
    from localswap.train.manifest import read_manifest
    from localswap.train.manifest import DFM_FILE, is_dfm_dir
    from localswap.workspace import AtomicFile
    model_dir, file = Path(model_dir), Path(file)
    notes: list[str] = []
    if not is_dfm_dir(model_dir) and read_manifest(model_dir).get("guided"):
        raise GuidedModel(model_dir.name)
    with AtomicFile(file) as tmp:
        if is_dfm_dir(model_dir):
            shutil.copyfile(model_dir / DFM_FILE, tmp)
        else:
            model, manifest = load_model(model_dir, "cpu")
            notes = crop_notes(manifest)
            tmp.write_bytes(with_card(to_onnx_bytes(model, int(manifest["resolution"])),
                                      model_dir))
        try:
            check_dfm(tmp)
        except UserError as exc:
            raise UserError(f"the exported model does not load back as a .dfm: {exc}") from exc
    read_manifest(model_dir)
    return file, notes
