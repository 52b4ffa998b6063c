"""Address-space scenarios, written once and run on both backends (issue #3).

  "kernel"   - ptengine.live: the host kernel, through a live server process;
  "ptengine" - the simulator, configured as the host kernel is built (notes/kernel-probes.md
               §0: CONFIG_ANON_VMA_NAME off), so that every answer can be compared.

A scenario works in a `Region`: a fixed, 1 GiB-aligned slot far above everything the live
server maps itself (its program sits near 0x400000, its vdso and stack near TASK_SIZE), and
proven free with MAP_FIXED_NOREPLACE before use. Addresses in assertions are page offsets
from the region's base, so the same numbers hold on both backends.
"""
import errno
from dataclasses import dataclass

import pytest

import ptengine
from ptengine.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE,
                                MAP_PRIVATE, PAGE_SIZE, PROT_NONE, PROT_READ,
                                PROT_WRITE)
from ptengine.live.procfs import parse as parse_smaps

P = PAGE_SIZE
MiB = 1 << 20
GiB = 1 << 30
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
BACKENDS = ("kernel", "ptengine")
# 0x100000000000 is the first of a run of empty 512 GiB page-table slots (one PGD entry
# each) on both backends: the live server maps nothing between 4 MiB and 0x7fff00000000.
SLOT = 512 * GiB
FAR = 0x100000000000


@dataclass
class Env:
    backend: str
    system: object
    mm: object

    @property
    def live(self):
        return self.backend == "kernel"


def make_system(backend, **options):
    if backend == "kernel":
        from ptengine import live
        if not live.available():
            live.server_binary()          # a build failure is an error, not a skip
            pytest.skip("the host kernel has no guard regions (MADV_GUARD_INSTALL)")
        return live.LiveSystem(**options)
    return ptengine.System(**options)


@pytest.fixture(params=BACKENDS)
def env(request):
    """(backend, system, mm): a fresh system and one empty process on that backend."""
    system = make_system(request.param)
    try:
        yield Env(request.param, system, system.spawn())
    finally:
        if request.param == "kernel":
            system.close()


# --- outcomes ----------------------------------------------------------------------------

def ok(ret):
    """A syscall-shaped method succeeded: it returned 0 (or None) rather than raising."""
    assert ret in (0, None), ret
    return ret


def errno_of(call, *args, **kw):
    with pytest.raises(OSError) as e:
        call(*args, **kw)
    return errno.errorcode[e.value.errno]


def vmpte(mm):
    return mm.status()["VmPTE"]


# --- a region of the address space ---------------------------------------------------------

class Region:
    """A free, aligned slot at `base`; VMAs are described in pages from base.

    layout() lists the VMAs overlapping the region as (first page, end page, perms,
    VmFlags), read from smaps on either backend, so what is compared is what a user sees.
    """

    def __init__(self, env, base=FAR, span=GiB):
        self.env, self.mm, self.base, self.span = env, env.mm, base, span
        mm = self.mm
        # Prove the slot is empty on this backend (EEXIST otherwise), then give it back.
        assert mm.mmap(base, span, PROT_NONE, ANON | MAP_FIXED_NOREPLACE | MAP_NORESERVE) == base
        ok(mm.munmap(base, span))
        self.count0 = mm.map_count

    def addr(self, page):
        return self.base + page * P

    def map(self, page, npages, prot=RW, flags=ANON, fd=None, off=0):
        """mmap(MAP_FIXED) of npages at page; `off` is the file offset in pages."""
        if fd is not None and flags == ANON:
            flags = MAP_PRIVATE
        addr = self.mm.mmap(self.addr(page), npages * P, prot, flags | MAP_FIXED, fd, off * P)
        assert addr == self.addr(page)
        return addr

    def touch(self, page, npages=1, write=True):
        self.mm.touch(self.addr(page), npages * P, write=write)

    def mprotect(self, page, npages, prot):
        return ok(self.mm.mprotect(self.addr(page), npages * P, prot))

    def madvise(self, page, npages, advice):
        return ok(self.mm.madvise(self.addr(page), npages * P, advice))

    def munmap(self, page, npages):
        return ok(self.mm.munmap(self.addr(page), npages * P))

    @property
    def delta(self):
        """map_count now, less map_count when the region was proven empty."""
        return self.mm.map_count - self.count0

    def vmas(self):
        end = self.base + self.span
        return [v for v in parse_smaps(self.mm.smaps())
                if v.start < end and self.base < v.end]

    def layout(self):
        return [((v.start - self.base) // P, (v.end - self.base) // P, v.perms,
                 " ".join(v.vmflags)) for v in self.vmas()]

    def spans(self):
        """Just [first, end) page pairs, for scenarios where flags are not the point."""
        return [(a, b) for a, b, _, _ in self.layout()]


@pytest.fixture
def region(env):
    return Region(env)


# VmFlags of the common shapes (notes/kernel-probes.md §3), for readable expectations.
ANON_RW = "rd wr mr mw me ac"
ANON_R = "rd mr mw me"
ANON_R_AC = "rd mr mw me ac"           # read-only, but VM_ACCOUNT kept (it has an anon_vma)
ANON_NONE = "mr mw me"
SHARED_RW = "rd wr sh mr mw me ms"


def rw(a, b, flags=ANON_RW):
    return (a, b, "rw-p", flags)


def ro(a, b, flags=ANON_R):
    return (a, b, "r--p", flags)
