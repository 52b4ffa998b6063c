"""host_profile(): the running kernel's HostProfile, read from /proc and /sys and asked
(mm/util.c, mm/huge_memory.c sysfs).

Sysctls and sizes are read from their files; build options that no file states are asked
of the kernel in a live server process, by doing what the simulator models and looking at
the outcome (a name set or refused, the si_code of a poison fault, the VmFlags smaps shows).
"""
import functools
import os

from ..constants import (BUS_MCEERR_AR, MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_PRIVATE,
                         PAGE_SIZE, PROT_READ, PROT_WRITE)
from ..errors import Fault
from ..profile import HostProfile
from .server import enabled
from .system import LiveMM

PROBE_HINT = PAGE_SIZE      # a hint below any mmap_min_addr: the kernel raises it to the floor


def _read(path):
    with open(path) as f:
        return f.read()


def _meminfo_kb(key):
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    raise OSError(f"/proc/meminfo has no {key}")


def _thp_enabled():
    """The bracketed mode of /sys/kernel/mm/transparent_hugepage/enabled ("never" when the
    kernel has no THP at all)."""
    try:
        text = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    except FileNotFoundError:
        return "never"
    return text[text.index("[") + 1:text.index("]")]


def _vmflags(mm, addr):
    return mm.find_vma(addr).vmflags


def _probe(mm):
    """{field: value} for what only the kernel's behaviour tells."""
    out = {}
    rw, anon = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
    # mm/mmap.c:round_hint_to_min(): a free hint below mmap_min_addr becomes the floor.
    p = mm.mmap(PROBE_HINT, PAGE_SIZE, PROT_READ, anon)
    out["mmap_min_addr"] = p if p < 1 << 32 else PAGE_SIZE
    mm.munmap(p, PAGE_SIZE)
    a = mm.mmap(0, 2 * PAGE_SIZE, rw, anon)
    out["soft_dirty"] = "sd" in _vmflags(mm, a)
    try:
        mm.set_anon_name(a, PAGE_SIZE, "ptengine-probe")
        out["anon_vma_name"] = True
    except OSError:                         # EINVAL without CONFIG_ANON_VMA_NAME
        out["anon_vma_name"] = False
    b = mm.mmap(0, 2 * PAGE_SIZE, rw, anon)
    try:
        mm.madvise(b, PAGE_SIZE, MADV_GUARD_INSTALL)
        out["maybe_guard"] = "gu" in _vmflags(mm, b)
    except OSError:                         # no guard regions at all
        out["maybe_guard"] = False
    out["memory_failure"] = _memory_failure(mm, mm.mmap(0, PAGE_SIZE, rw, anon))
    return out


def _memory_failure(mm, addr):
    """CONFIG_MEMORY_FAILURE: a poison marker faults BUS_MCEERR_AR with it, BUS_ADRERR
    without (arch/x86/mm/fault.c:do_sigbus()). Where UFFDIO_POISON is unavailable, the
    vm.memory_failure_* sysctls, which only that option registers, tell."""
    try:
        mm.install_poison(addr, PAGE_SIZE)
    except OSError:
        return os.path.exists("/proc/sys/vm/memory_failure_recovery")
    try:
        mm.read(addr, 1)
    except Fault as e:
        return e.code == BUS_MCEERR_AR
    return False


@functools.lru_cache(maxsize=None)
def host_profile():
    """The running kernel's HostProfile, named "host". Raises RuntimeError where the live
    backend is off (PTENGINE_LIVE=0) or the host is not Linux."""
    if not enabled():
        raise RuntimeError("the live backend is off (PTENGINE_LIVE=0 or not Linux): "
                           "no host kernel to read a profile from")
    st = os.stat("/")
    with LiveMM() as mm:
        probed = _probe(mm)
    return HostProfile(
        name="host",
        memtotal_kb=_meminfo_kb("MemTotal"),
        swap_kb=_meminfo_kb("SwapTotal"),
        overcommit_memory=int(_read("/proc/sys/vm/overcommit_memory")),
        max_map_count=int(_read("/proc/sys/vm/max_map_count")),
        thp_enabled=_thp_enabled(),
        root_dev=(os.major(st.st_dev), os.minor(st.st_dev)),
        **probed)
