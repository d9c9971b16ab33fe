"""The judge: how good is a swap? Identity (dlib's face descriptor), expression and pose
(landmarks), temporal stability and seam (pixels), against the source and the target."""
from localswap.evaluate.judge import Judge, evaluate
from localswap.evaluate.report import Report

__all__ = ["Judge", "Report", "evaluate"]
