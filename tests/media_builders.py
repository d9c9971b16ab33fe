"""Tests build their media with localswap.samples; this name is kept for the test files."""
from localswap.samples import *  # noqa: F401,F403
from localswap.samples import FACE_CENTRES  # noqa: F401
