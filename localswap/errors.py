"""Errors a user can act on. The CLI prints them as one line and exits 2; the UI shows them."""


class UserError(Exception):
    """Bad input or a condition the user can fix; the message is the whole story."""


class NoFacesError(UserError):
    """Extraction found no usable face."""
