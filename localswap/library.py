"""The old import path of the model library, which now lives in localswap.models.library:
this name is the same module object, so `from localswap import library` and
`localswap.library.X` keep working (monkeypatching included)."""
import sys

from localswap.models import library as _library

sys.modules[__name__] = _library
