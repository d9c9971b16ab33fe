"""The named choices every layer shares: detectors, face types, architectures, resolutions,
colour transfers, blends, masks, occlusion, glasses and precisions.

They live here, below the stages, so settings.py (the CLI flags, the app's fields and their
validation) and the stages that act on them read one list: a new detector, face type,
architecture or blend is a choice everywhere once it is added here and handled in its stage.
"""
from __future__ import annotations

# Face detector backends by name: what each needs (faces/detect.py builds them).
DETECTORS = {
    "mediapipe": "BlazeFace + FaceMesh, weights inside the wheel (no download)",
    "facexlib": "RetinaFace + AWing landmarks, weight files in the weights folder",
}

# face type -> (centre x, centre y, half side) of the crop in mean-face units (faces/align.py)
FACE_TYPE_BOX = {
    "face": (0.49, 0.50, 0.80),
    "whole_face": (0.49, 0.43, 1.07),
    "head": (0.49, 0.30, 1.45),
    # DeepFaceLab's "whole face" (what DeepFaceLive .dfm models take): the unit square of the
    # same mean face, padded by 0.40 of its diagonal on each side (half side 0.4*sqrt(2)+0.5)
    # and moved up 7% of its side for more forehead; fitted on brows, nose, eyes and the two
    # mouth corners only (DFL_POINTS).
    "dfl_whole_face": (0.5, 0.43, 0.4 * 2 ** 0.5 + 0.5),
}

# Model architectures (train/models.py builds them):
#   original    faceswap's 64 px "Original" autoencoder, faithful to it (a baseline)
#   localswap   the scalable shared-encoder / two-decoder model with learned masks, 64-512 px
ARCHS = ("original", "localswap")
# Resolutions the localswap model takes (halving them lands on a 4..7 px bottleneck).
RESOLUTIONS = (64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)

# Model arithmetic, the same words for training and rendering: auto (16-bit where the
# device does it in hardware), fp32, bf16, fp16.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# How a face is put back (convert/): colour transfer, blend, mask, hands, glasses.
COLOR_METHODS = ("rct", "lct", "hist", "none")
BLENDS = ("feather", "poisson")
MASKS = ("hull", "learned", "both")
OCCLUSION = ("off", "hands", "auto")   # auto: hands and other things (convert.occluders)
GLASSES = ("keep", "source")
