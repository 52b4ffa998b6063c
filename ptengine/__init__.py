"""ptengine: a simulator of Linux memory management around guard regions (mm/madvise.c)."""
import warnings as _warnings

from .constants import *  # noqa: F401,F403  (the flat uapi names are the public surface)
from .errors import BusError, Fault, InvariantError, SegmentationFault  # noqa: F401
from .buildcheck import stale as _stale

__version__ = "0.1.0"

if _stale():
    _warnings.warn(f"ptengine: {', '.join(_stale())} changed after the last build (or a "
                   f"build shadows a plain .py) and the compiled modules run the old code; "
                   f"rebuild with `python setup.py build_ext --inplace`", RuntimeWarning,
                   stacklevel=2)
from .fs.files import File  # noqa: E402,F401
from .system import MM, System  # noqa: E402,F401
from .mm.mm_types import VMA  # noqa: E402,F401
from .calls import call_dtype, calls  # noqa: E402,F401


def __getattr__(name):
    # CALL_DTYPE is made on first use: numpy starts threads at import (calls.py).
    if name == "CALL_DTYPE":
        return call_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
