"""vm.max_map_count: where mmap, mprotect, munmap, madvise and mremap fail near the limit.

The kernel (notes/kernel-probes.md §1): mmap fails (ENOMEM) only once map_count is already
above the limit, so mmap can take a process to max+1; a VMA split is refused once map_count
has reached the limit (mprotect, mlock: ENOMEM; madvise reports it as EAGAIN), except that
munmap may split in two (net zero) even there; mremap refuses a move (ENOMEM) within a few
VMAs of the limit, while a shrink needs no new VMA.

The simulator runs the scenario with a small limit (spawn(max_map_count=...)). The live
backend cannot change the global sysctl, so on the kernel the same scenario runs at the
host's limit (65530), with the VMAs to reach it made in one batch inside the server.
"""
import pytest

from ptengine.constants import (MADV_DONTFORK, MAP_FIXED_NOREPLACE, MREMAP_FIXED,
                                MREMAP_MAYMOVE, PROT_READ)

from ptengine.live.procfs import parse as parse_maps

from .conftest import ANON, BACKENDS, FAR, GiB, P, RW, errno_of, make_system, ok

SMALL_LIMIT = 64


@pytest.fixture(params=BACKENDS)
def limited(request):
    """(mm, max_map_count): a process whose limit is within cheap reach."""
    system = make_system(request.param)
    if request.param == "kernel":
        from ptengine.live.files import host_max_map_count
        yield system.spawn(), host_max_map_count()
        system.close()
    else:
        yield system.spawn(max_map_count=SMALL_LIMIT), SMALL_LIMIT


def fill_to(mm, count, base):
    """Map 1-page VMAs, a page apart (so none merge), until map_count == count; returns
    the address of the last one."""
    need = count - mm.map_count
    assert need > 0
    addrs = [base + 2 * i * P for i in range(need)]
    calls = [("mmap", a, P, PROT_READ, ANON | MAP_FIXED_NOREPLACE) for a in addrs]
    if hasattr(mm, "batch"):
        results, _ = mm.batch(calls)
        assert list(results) == addrs
    else:
        for _, *args in calls:
            mm.mmap(*args)
    assert mm.map_count == count
    return addrs[-1]


def test_limits(limited):
    mm, limit = limited
    filler = fill_to(mm, limit, FAR)
    work = FAR + 64 * GiB

    def vma(page, npages, prot=RW):
        return mm.mmap(work + page * P, npages * P, prot, ANON | MAP_FIXED_NOREPLACE)

    # At the limit mmap still works, once: map_count becomes limit + 1.
    three = vma(0, 3)
    assert mm.map_count == limit + 1
    assert errno_of(mm.mmap, 0, P, RW, ANON) == "ENOMEM"
    # Splits are refused: mprotect (needs 2 or 1 more), munmap in the middle (needs 1).
    assert errno_of(mm.mprotect, three + P, P, PROT_READ) == "ENOMEM"
    assert errno_of(mm.mprotect, three, P, PROT_READ) == "ENOMEM"
    assert errno_of(mm.munmap, three + P, P) == "ENOMEM"
    # madvise reports the failed split as EAGAIN; mlock as ENOMEM.
    assert errno_of(mm.madvise, three, P, MADV_DONTFORK) == "EAGAIN"
    assert errno_of(mm.mlock, three, P) == "ENOMEM"
    # mremap refuses to move, whatever the count after it would be.
    assert errno_of(mm.mremap, filler, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, work + GiB) == \
        "ENOMEM"
    # munmap of the first page splits in two, net zero: allowed even past the limit.
    ok(mm.munmap(three, P))
    assert mm.map_count == limit + 1
    # A shrink unmaps a tail: no new VMA needed.
    assert mm.mremap(three + P, 2 * P, P) == three + P
    assert mm.map_count == limit + 1
    # One below: a split in 3 fails on its second split, and keeps the first.
    ok(mm.munmap(filler, P))
    ok(mm.munmap(three + P, P))
    assert mm.map_count == limit - 1
    middle = vma(8, 3)
    assert mm.map_count == limit
    ok(mm.munmap(FAR, P))                     # limit - 1 again
    assert errno_of(mm.mprotect, middle + P, P, PROT_READ) == "ENOMEM"
    assert mm.map_count == limit
    assert [(v.start - middle) // P for v in parse_maps(mm.maps())
            if middle <= v.start < middle + 3 * P] == [0, 1]
    # At the limit exactly, mmap works once more.
    vma(16, 1)
    assert mm.map_count == limit + 1
    assert errno_of(mm.mmap, 0, P, RW, ANON) == "ENOMEM"
