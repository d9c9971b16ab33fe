"""Session fixtures: real videos and facesets built from photos that ship inside packages."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Under pytest-xdist each worker gets its share of the cores (before torch is imported, and
# inherited by the CLI processes tests start): two workers of two threads each on a 2-core
# machine spent their time switching.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

pytest_plugins = ["ci_skips"]       # in CI a skip is a failure

from localswap.bench import samples as mb  # noqa: E402

FPS = 24
FRAMES = 48  # 2 s


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def video_a(media_dir) -> Path:
    """Target: the astronaut, moving, with an audio tone."""
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], FRAMES)
    return mb.encode(media_dir / "astronaut.mp4", frames, FPS)


@pytest.fixture(scope="session")
def video_b(media_dir) -> Path:
    """Source: Grace Hopper, moving, with an audio tone."""
    frames = mb.moving_frames(mb.grace_hopper(), mb.FACE_CENTRES["grace_hopper"], FRAMES,
                              zoom=0.8, seed=1)
    return mb.encode(media_dir / "grace_hopper.mp4", frames, FPS)


@pytest.fixture(scope="session")
def video_no_face(media_dir) -> Path:
    frames = mb.moving_frames(mb.no_face(), mb.FACE_CENTRES["coffee"], 24)
    return mb.encode(media_dir / "coffee.mp4", frames, FPS)


@pytest.fixture(scope="session")
def video_two_faces(media_dir) -> Path:
    return mb.encode(media_dir / "two_faces.mp4", mb.two_faces_frames(24), FPS)


@pytest.fixture(scope="session")
def broken_files(media_dir, video_a) -> dict[str, Path]:
    d = media_dir / "broken"
    d.mkdir()
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    truncated = d / "truncated.mp4"
    data = video_a.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    text = d / "notes.mp4"
    text.write_text("this is a text file renamed to mp4\n" * 20)
    return {"empty": empty, "truncated": truncated, "text": text}


def _faceset(tmp_path_factory, video: Path, name: str) -> Path:
    from localswap.faces.extract import extract
    from localswap.settings import ExtractSettings
    out = tmp_path_factory.mktemp("facesets") / name
    extract([video], out, ExtractSettings(size=128))
    return out


@pytest.fixture(scope="session")
def faceset_a(tmp_path_factory, video_a) -> Path:
    """Aligned 128 px face crops of the astronaut (target A)."""
    return _faceset(tmp_path_factory, video_a, "astronaut")


@pytest.fixture(scope="session")
def faceset_b(tmp_path_factory, video_b) -> Path:
    """Aligned 128 px face crops of Grace Hopper (source B)."""
    return _faceset(tmp_path_factory, video_b, "grace_hopper")
