"""The on-disk layout of user data, and the only place user-given names become paths.

    workspace/
      facesets/<name>/     aligned crops + faceset.json
      models/<name>/       model.safetensors, optimizer.safetensors, manifest.json, previews/
      uploads/             uploaded media under generated names
      outputs/             rendered videos and photos
      localswap.db         jobs (SQLite, WAL)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from localswap.errors import UserError

KINDS = ("facesets", "models", "uploads", "outputs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def check_name(name: str) -> str:
    """Return `name` if it is safe as a single path component, else raise UserError."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or name != name.strip():
        raise UserError(f"invalid name {name!r}: use 1-64 letters, digits, spaces, '_', '-' or "
                        "'.', starting with a letter or digit")
    return name


def inside(root: Path, path: Path) -> bool:
    """True if `path` (symlinks resolved) lies within `root`."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
        return True
    except ValueError:
        return False


class AtomicFile:
    """A temp file beside `path` that becomes `path` only if the `with` block succeeds.

    The temp file is created at construction (so an unwritable folder raises OSError before
    any work); on success it is fsynced and renamed over `path`, on failure removed.
        with AtomicFile(path) as tmp:
            write tmp
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix,
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise


def remove_temp_files(folder: str | os.PathLike, name: str = "*", suffix: str = ".tmp") -> None:
    """Delete the temp files a writer killed mid-write leaves in `folder` (AtomicFile's and the
    video writer's '.<name>.<random><suffix>'); `name` is a glob pattern. Call it only where
    no other writer is running."""
    for p in Path(folder).glob(f".{name}.*{suffix}"):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename: never a half file."""
    with AtomicFile(path) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


class Workspace:
    def __init__(self, root: str | os.PathLike = "workspace"):
        self.root = Path(root).absolute()
        for kind in KINDS:
            (self.root / kind).mkdir(parents=True, exist_ok=True)

    @property
    def db_path(self) -> Path:
        return self.root / "localswap.db"

    def path(self, kind: str, name: str) -> Path:
        """The folder or file for a user-named item of `kind`, checked to stay inside."""
        if kind not in KINDS:
            raise ValueError(kind)
        p = self.root / kind / check_name(name)
        if not inside(self.root / kind, p):
            raise UserError(f"{name!r} points outside the workspace")
        return p

    def names(self, kind: str) -> list[str]:
        return sorted(p.name for p in (self.root / kind).iterdir() if not p.name.startswith("."))

    def new_model_name(self, source: str, target: str) -> str:
        """A new model's default name, the same from the command line and the app:
        '<source>-on-<target>' (the source person's face on the target video) from the two
        file names, with -2, -3 ... when that name is taken."""
        base = check_name(f"{slug(Path(source).stem)}-on-{slug(Path(target).stem)}")
        name, k = base, 2
        while self.path("models", name).exists():
            name, k = f"{base}-{k}", k + 1
        return name


def slug(text: str, length: int = 24) -> str:
    """`text` as letters, digits, '-' and '_' only, for a file or model name."""
    # no '-' or '_' first: a name must start with a letter or digit (check_name), and a
    # file named '-x.mp4' (a YouTube id) is read as an option by ffmpeg and shells
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")[:length].strip("_-") or "media"
