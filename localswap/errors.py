"""Errors a user can act on. The CLI prints them as one line and exits 2; the UI shows them."""
import errno
import sys


class UserError(Exception):
    """Bad input or a condition the user can fix; the message is the whole story."""


class NoFacesError(UserError):
    """Extraction found no usable face. `summary`: the extraction's counts (frames read and
    why each was left out), for a caller that words its own sentence."""

    def __init__(self, message: str = "", summary=None):
        super().__init__(message)
        self.summary = summary


class DiskFullError(UserError):
    """The disk (or quota) filled up; what was saved before is intact."""


def error_summary(exc: BaseException, limit: int = 200) -> str:
    """An unexpected error named for a sentence: 'Kind: the first line of its message' (or the
    kind alone), e.g. inside "Training stopped with an unexpected error (...)"."""
    name = type(exc).__name__
    lines = str(exc).strip().splitlines()
    return f"{name}: {lines[0][:limit]}" if lines else name


def in_words(exc: BaseException) -> str:
    """What went wrong, for a log line or a page: a UserError's own sentence (it says what
    to fix), any other error named by error_summary."""
    if isinstance(exc, UserError) and str(exc).strip():
        return str(exc).strip()
    return error_summary(exc)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def is_oom(exc: BaseException) -> bool:
    """CUDA out of memory, in every form it takes: the caching allocator's OutOfMemoryError
    (torch.OutOfMemoryError only from torch 2.5; torch.cuda's name is older), and the plain
    RuntimeErrors of cuBLAS/cuDNN/kernels that fail to allocate their own workspace. Asked
    without importing torch: where torch was never imported, no torch error exists."""
    torch = sys.modules.get("torch")
    kinds = tuple(k for k in (getattr(torch, "OutOfMemoryError", None),
                              getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None))
                  if k)
    if kinds and isinstance(exc, kinds):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(m in text for m in (
        "CUDA out of memory", "CUDA error: out of memory", "CUBLAS_STATUS_ALLOC_FAILED",
        "CUDNN_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
        "cudaErrorMemoryAllocation"))
