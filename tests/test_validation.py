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


def _zip_bytes(members: dict) -> bytes:
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


MEMBER_NAMES = st.sampled_from(["model.safetensors", "manifest.json", "export.json",
                                "../escape.txt", "/abs/path", "a/b/../../c", "data.pkl",
                                "optimizer.safetensors", "x" * 200])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2048),
       members=st.dictionaries(MEMBER_NAMES, st.binary(max_size=512), max_size=4),
       as_zip=st.booleans(), name=st.one_of(st.none(), NASTY, st.text(max_size=20)))
def test_model_import_never_crashes_or_escapes(tmp_path, raw, members, as_zip, name):
    from localswap.models import library
    ws = Workspace(tmp_path / "ws")
    upload = tmp_path / "upload.zip"
    upload.write_bytes(_zip_bytes(members) if as_zip else raw)
    outside = set(p for p in tmp_path.rglob("*") if not inside(ws.root, p))
    with pytest.raises(UserError):
        library.import_model(ws, upload, name)
    assert set(p for p in tmp_path.rglob("*") if not inside(ws.root, p)) == outside
    assert list((ws.root / "models").iterdir()) == []   # nothing half-imported, no temp left
