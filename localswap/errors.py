"""Errors a user can act on. The CLI prints them as one line and exits 2; the UI shows them."""
import errno


class UserError(Exception):
    """Bad input or a condition the user can fix; the message is the whole story."""


class NoFacesError(UserError):
    """Extraction found no usable face."""


class DiskFullError(UserError):
    """The disk (or quota) filled up; what was saved before is intact."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
