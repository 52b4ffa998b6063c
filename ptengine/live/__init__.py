"""The host kernel as a second backend: the simulator's MM methods on a real mm_struct
(mirrors no kernel file: it is the kernel).

Design. The address space is not the calling process's: each LiveMM drives a small server
process (ptengine/live/server.c, compiled on first use into ~/.cache/ptengine, or
$PTENGINE_LIVE_SERVER) over a unix socket, and reads that process's /proc files itself.
Nothing is ever mapped in, or unmapped from, the Python process. The server runs
non-randomised with an 8 MiB stack limit, so its first top-down mmap lands just below its
[vvar]/[vdso] (about 0x7ffff7ff7000), and it refuses (LiveRangeError) any call that would
change its own program, stack, heap or vdso mappings.

    from ptengine.live import LiveMM, LiveSystem, available
    with LiveSystem() as system:
        mm = system.spawn()
        f = system.create_file("data.bin", 100 * 4096)
        p = mm.mmap(0, 10 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f)

Same as the simulator: System/spawn/create_file/memfd_create and file objects; every MM
method of the API (errors are the kernel's errno; faults raise Fault with the si_code and
si_addr the kernel delivered); exit() is idempotent and an exited MM answers ESRCH.

Live-only extras: LiveMM.pid, .reserved (the server's own ranges), .user_vmas(),
.vmas(start, end), .uffd_register(addr, len, mode) / .uffd_unregister(addr, len),
pagemap_scan(...).walk_end, LiveVMA.perms /
.vmflags / .stats / .anon_name; LiveSystem(timeout=...).

Where the host decides, not this module:
- access(exec=True) fetches for real only where no executable VMA covers the address (it
  must fault there); under an executable VMA it is answered by a read access, which takes
  the same fault path (guard, poison, EOF) once the VMA allows the fetch.
- access(write=True) and touch(write=True) are locked ORs of 0: write faults, data kept.
- install_poison registers the range with the server's userfaultfd for UFFDIO_POISON
  (anon and shmem only; EINVAL on regular files, as the kernel says). Without
  CONFIG_MEMORY_FAILURE a poisoned page raises SIGBUS with BUS_ADRERR, not BUS_MCEERR_AR.
- set_anon_name is EINVAL on kernels built without CONFIG_ANON_VMA_NAME.
- The server's userfaultfd uses UFFD_FEATURE_SIGBUS: a missing fault in a registered range
  raises SIGBUS instead of waiting for a handler.
- map_count is mm->map_count: the lines of maps less the [vsyscall] gate area. It includes
  the server's own mappings (about ten); compare differences or ranges.

The host as a profile: host_profile() is the running kernel's HostProfile (ptengine.profile),
and unchecked(profile, fields) says which of a profile's fields the host cannot check.
PTENGINE_LIVE=0 in the environment turns the backend off (available() is False), as on a
host without guard regions: everything that needs the kernel skips or says so.
"""
import functools
import signal

from ..constants import MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ
from ..constants import PROT_WRITE
from ..profile import describe
from .files import LiveFile
from .process import LiveRangeError
from .procfs import LiveVMA, ScanResult
from .profile import host_profile
from .server import LiveServerError, ServerDied, enabled, server_binary
from .system import LiveMM, LiveSystem

__all__ = ["LiveMM", "LiveSystem", "LiveFile", "LiveVMA", "ScanResult", "LiveServerError",
           "ServerDied", "LiveRangeError", "available", "enabled", "host_profile", "unchecked",
           "server_binary"]


@functools.lru_cache(maxsize=None)
def available():
    """True iff the host kernel has guard regions: MADV_GUARD_INSTALL works, and a guarded
    page then faults with SIGSEGV. False too if the server cannot be built or started, or
    the backend is turned off (enabled())."""
    if not enabled():
        return False
    try:
        with LiveMM() as mm:
            p = mm.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            mm.madvise(p, PAGE_SIZE, MADV_GUARD_INSTALL)
            return mm.access(p) is signal.SIGSEGV
    except (OSError, LiveServerError):
        return False


def unchecked(profile, fields=None):
    """Why the host cannot check figures made under `profile`: one reason per field (of
    `fields`, default all but the name) where the host differs; [] if it can check them
    all; one reason saying so if there is no usable host kernel."""
    if not available():
        return ["ptengine.live is not available (no host kernel with MADV_GUARD_INSTALL)"]
    host = host_profile()
    return [describe(field, wanted, got)
            for field, wanted, got in profile.differences(host, fields)]
