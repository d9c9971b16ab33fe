"""Property tests: random names and random bytes never crash the input validators and never
lead to a file outside the workspace."""
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from localswap import media
from localswap.errors import UserError
from localswap.faces.extract import collect_inputs
from localswap.workspace import Workspace, check_name, inside

NASTY = st.sampled_from(["..", "../x", "/etc/passwd", "a/../../b", "~root", "a\x00b", " lead",
                         "trail ", "con", "x" * 65, "", ".hidden", "ok name", "ünïcode",
                         "a\\b", "nul\n", "%2e%2e"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(NASTY, st.text(max_size=80)))
def test_names_are_safe_or_refused(tmp_path_factory, name):
    ws = Workspace(tmp_path_factory.getbasetemp() / "ws")
    try:
        checked = check_name(name)
    except UserError:
        return
    assert checked == name and "/" not in name and "\\" not in name and ".." not in name
    for kind in ("facesets", "models", "uploads", "outputs"):
        p = ws.path(kind, name)
        assert inside(ws.root / kind, p) and p.parent == ws.root / kind


def test_symlink_out_of_the_workspace_is_refused(tmp_path):
    ws = Workspace(tmp_path / "ws")
    (ws.root / "models" / "evil").symlink_to(tmp_path)
    with pytest.raises(UserError, match="outside"):
        ws.path("models", "evil")


EXTS = st.sampled_from([".mp4", ".mov", ".mkv", ".webm", ".avi", ".jpg", ".png", ".txt", "",
                        ".MP4", ".exe"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), ext=EXTS)
def test_random_bytes_inputs_give_user_errors(tmp_path, data, ext):
    before = set(os.listdir(tmp_path))
    f = tmp_path / f"upload{ext}"
    f.write_bytes(data)
    try:
        items = collect_inputs([f])
    except UserError as exc:
        assert str(exc)
    else:
        # Only images pass this early check (they are decoded later, one by one).
        assert [p for p, info in items] == [f.absolute()] and media.is_image(f)
        with pytest.raises(UserError):
            media.read_image(f)
    f.unlink()
    assert set(os.listdir(tmp_path)) == before
