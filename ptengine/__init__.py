"""ptengine: a simulator of Linux memory management around lightweight guard regions."""
from .constants import *  # noqa: F401,F403  (the flat uapi names are the public surface)
from .errors import BusError, Fault, InvariantError, SegmentationFault  # noqa: F401

__version__ = "0.1.0"
from .compiled import warn_if_stale  # noqa: E402

warn_if_stale()
from .fs.files import File  # noqa: E402,F401
from .system import System  # noqa: E402,F401
from .mm import MM  # noqa: E402,F401
from .vma import VMA  # noqa: E402,F401
from .calls import calls  # noqa: E402,F401


def __getattr__(name):
    # CALL_DTYPE is made on first use: numpy starts threads at import (calls.py).
    if name == "CALL_DTYPE":
        from .calls import call_dtype
        return call_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
