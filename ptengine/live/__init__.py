"""The host kernel as a second backend: the simulator's MM methods on a real mm_struct.

The address space is not the calling process's: each LiveMM drives a small server process
(ptengine/live_server/server.c, compiled on first use) over a unix socket, and reads that
process's /proc files. So nothing is ever mapped in, or unmapped from, the Python process,
and a LiveMM refuses calls that would touch the server's own mappings (LiveRangeError).

    from ptengine.live import LiveMM, LiveSystem, available
    with LiveMM() as mm:
        p = mm.mmap(0, 10 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
"""
import functools
import signal

from ..constants import MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ
from ..constants import PROT_WRITE
from ._mm import LiveMM, LiveRangeError
from ._procfs import LiveVMA, ScanResult
from ._server import LiveServerError, ServerDied, server_binary
from ._system import LiveFile, LiveSystem

__all__ = ["LiveMM", "LiveSystem", "LiveFile", "LiveVMA", "ScanResult", "LiveServerError",
           "ServerDied", "LiveRangeError", "available", "server_binary"]


@functools.lru_cache(maxsize=None)
def available():
    """True iff the host kernel has guard regions: MADV_GUARD_INSTALL works, and a guarded
    page then faults with SIGSEGV. False too if the server cannot be built or started."""
    try:
        with LiveMM() as mm:
            p = mm.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            mm.madvise(p, PAGE_SIZE, MADV_GUARD_INSTALL)
            return mm.access(p) is signal.SIGSEGV
    except (OSError, LiveServerError):
        return False
