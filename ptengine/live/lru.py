"""Draining every CPU's LRU add batches before reclaim advice reaches the kernel
(mm/swap.c:lru_add_drain_all(), from outside).

A page the kernel just faulted in or added to the page cache sits in the per-CPU folio
batch of the CPU that did it until that batch fills or is drained; until then it is not on
an LRU list, and MADV_COLD / MADV_PAGEOUT skip it (madvise_cold_or_pageout_pte_range()
needs folio_test_lru()). madvise drains only its own CPU's batch (lru_add_drain()), so the
kernel's answer would depend on where the server and the Python process last ran. The
simulator models every page as on the LRU; draining all CPUs first makes the kernel agree
with that for any scheduling.

mbind(MPOL_MF_MOVE) runs lru_add_drain_all() (mm/mempolicy.c:do_mbind() via
lru_cache_disable()) before it looks at the range, so an mbind of one private page of this
process, with the default policy, drains every CPU and changes nothing else.
"""
import ctypes
import functools
import mmap

_SYS_MBIND = 237            # x86-64
_MPOL_DEFAULT = 0
_MPOL_MF_MOVE = 1 << 1


@functools.lru_cache(maxsize=None)
def _page():
    buf = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return buf, ctypes.addressof(ctypes.c_char.from_buffer(buf))


def drain_lru_batches():
    """lru_add_drain_all() from user space; False where mbind is unavailable."""
    libc = ctypes.CDLL(None, use_errno=True)
    _, addr = _page()
    r = libc.syscall(ctypes.c_long(_SYS_MBIND), ctypes.c_ulong(addr),
                     ctypes.c_ulong(mmap.PAGESIZE), ctypes.c_int(_MPOL_DEFAULT), None,
                     ctypes.c_ulong(0), ctypes.c_uint(_MPOL_MF_MOVE))
    return r == 0
