"""Results kept between runs in the user's cache folder, keyed by the bytes they came from
(size, first and last MB), not by file names: the app's upload and the job's stored copy of
one video get the same key. A cache is a convenience: a file that cannot be read or written
is computed again."""
from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

_MB = 2**20


def user_cache(name: str) -> Path:
    """~/.cache/localswap/<name> (or under $XDG_CACHE_HOME); not created here."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "localswap" / name


def file_key(paths, *settings) -> str:
    """A 20-hex key for these files' bytes and the settings that shaped the result."""
    h = hashlib.sha1("|".join(str(s) for s in settings).encode())
    for path in paths:
        size = Path(path).stat().st_size
        h.update(f"|{size}|".encode())
        with open(path, "rb") as fh:
            h.update(fh.read(_MB))
            fh.seek(max(0, size - _MB))
            h.update(fh.read(_MB))
    return h.hexdigest()[:20]


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays saved by save_arrays, or None (missing, damaged, not ours). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write atomically (a reader never sees half a file); an OSError is left unsaid."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
