"""guard-regions.c tests 1-11: install/remove, and guards under VMA operations.

Each scenario is the selftest's, on both backends; where the selftest only says "faults",
some also check the fault itself (SIGSEGV / SEGV_MAPERR at the address) and the VMAs.
"""
import errno

import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_FIXED,
                                MAP_POPULATE, MREMAP_FIXED, MREMAP_MAYMOVE, PROT_EXEC,
                                PROT_NONE, PROT_READ, PROT_WRITE)

from .conftest import P, assert_guard_fault, ok

RW = PROT_READ | PROT_WRITE


def test_basic(g):
    """1. Guard one page, then a range over a populated page; REMOVE keeps present pages."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    assert g.try_rw(ptr)

    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr)
    assert_guard_fault(mm, ptr)
    assert all(g.try_rw(ptr + i * P) for i in range(1, 10))

    g.madvise(ptr + 9 * P, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr)
    assert not g.try_rw(ptr + 9 * P)

    g.madvise(ptr, 1, MADV_GUARD_REMOVE)
    assert g.try_rw(ptr)
    g.madvise(ptr + 9 * P, 1, MADV_GUARD_REMOVE)
    assert g.try_rw(ptr + 9 * P)

    # Page 0 is populated: install zaps it and still guards all three.
    g.madvise(ptr, 3, MADV_GUARD_INSTALL)
    assert [g.try_rw(ptr + i * P) for i in range(10)] == [False] * 3 + [True] * 7

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.try_rw(ptr + i * P) for i in range(10))

    # Removing where there are no guards leaves the present pages alone.
    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.byte(ptr + i * P) == b"x" for i in range(10))
    ok(mm.munmap(ptr, 10 * P))


def test_multi_vma(g):
    """2. A range with holes: every VMA is guarded, yet the call fails with ENOMEM.

        0    10 .. 50   55 .. 80   100
        [---]      [---]      [---]        then the gaps filled RWX:
        [---][xxxx][---][xxxx][---]        5 VMAs, no hole: success
    """
    mm = g.mm
    region = g.mmap_(None, 100, PROT_NONE)
    ptr1 = g.mmap_(region, 10, RW, MAP_FIXED)
    ptr2 = g.mmap_(region + 50 * P, 5, RW, MAP_FIXED)
    ptr3 = g.mmap_(region + 80 * P, 20, RW, MAP_FIXED)
    assert (ptr1, ptr2, ptr3) == (region, region + 50 * P, region + 80 * P)
    ok(mm.munmap(region + 10 * P, 40 * P))
    ok(mm.munmap(region + 55 * P, 25 * P))
    assert [(v.start, v.end) for v in g.vmas_in(region, region + 100 * P)] == [
        (ptr1, ptr1 + 10 * P), (ptr2, ptr2 + 5 * P), (ptr3, ptr3 + 20 * P)]
    mapped = [ptr1 + i * P for i in range(10)] + [ptr2 + i * P for i in range(5)] + \
             [ptr3 + i * P for i in range(20)]

    with pytest.raises(OSError) as e:
        mm.madvise(region, 100 * P, MADV_GUARD_INSTALL)
    assert e.value.errno == errno.ENOMEM
    assert not any(g.try_rw(p) for p in mapped)

    with pytest.raises(OSError) as e:
        mm.madvise(region, 100 * P, MADV_GUARD_REMOVE)
    assert e.value.errno == errno.ENOMEM
    assert all(g.try_rw(p) for p in mapped)

    g.mmap_(region + 10 * P, 40, RW | PROT_EXEC, MAP_FIXED)
    g.mmap_(region + 55 * P, 25, RW | PROT_EXEC, MAP_FIXED)
    assert len(g.vmas_in(region, region + 100 * P)) == 5

    g.madvise(region, 100, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(region + i * P) for i in range(100))
    g.madvise(region, 100, MADV_GUARD_REMOVE)
    assert all(g.try_rw(region + i * P) for i in range(100))
    ok(mm.munmap(region, 100 * P))


def test_process_madvise(g):
    """3. One process_madvise() call guards the first and last page of three VMAs."""
    mm = g.mm
    region = g.mmap_(None, 100, PROT_NONE)
    # MAP_POPULATE: install has to replace present entries.
    ptr1 = g.mmap_(region + P, 10, RW, MAP_FIXED | MAP_POPULATE)
    ptr2 = g.mmap_(region + 50 * P, 5, RW, MAP_FIXED)
    ptr3 = g.mmap_(region + 79 * P, 20, RW, MAP_FIXED)
    vec = [(ptr1, P), (ptr1 + 9 * P, P), (ptr2, P), (ptr2 + 4 * P, P),
           (ptr3, P), (ptr3 + 19 * P, P)]
    ok(mm.munmap(region, P))
    ok(mm.munmap(region + 11 * P, 39 * P))
    ok(mm.munmap(region + 55 * P, 24 * P))
    ok(mm.munmap(region + 99 * P, P))

    try:
        count = mm.process_madvise(vec, MADV_GUARD_INSTALL)
    except PermissionError:
        pytest.skip("no process_madvise() permission")
    assert count == 6 * P
    assert not any(g.try_rw(addr) for addr, _ in vec)

    mm.process_madvise(vec, MADV_GUARD_REMOVE)
    assert all(g.try_rw(addr) for addr, _ in vec)


def test_munmap(g):
    """4. Unmapping drops the markers: a new mapping in the same place is unguarded."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    g.madvise(ptr + 9 * P, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 9 * P)

    ok(mm.munmap(ptr, P))
    ok(mm.munmap(ptr + 9 * P, P))
    assert g.mmap_(ptr, 1, RW, MAP_FIXED) == ptr
    assert g.mmap_(ptr + 9 * P, 1, RW, MAP_FIXED) == ptr + 9 * P
    assert g.try_rw(ptr) and g.try_rw(ptr + 9 * P)
    ok(mm.munmap(ptr, 10 * P))


def test_mprotect(g):
    """5. mprotect neither drops nor blocks markers."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr + 5 * P, 2, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr + 5 * P) and not g.try_rw(ptr + 6 * P)

    ok(mm.mprotect(ptr + 5 * P, 2 * P, PROT_READ))
    assert not g.try_read(ptr + 5 * P) and not g.try_read(ptr + 6 * P)
    assert_guard_fault(mm, ptr + 5 * P)

    g.madvise(ptr + 5 * P, 2, MADV_GUARD_INSTALL)
    assert not g.try_read(ptr + 5 * P) and not g.try_read(ptr + 6 * P)

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.try_read(ptr + i * P) for i in range(10))
    ok(mm.munmap(ptr, 10 * P))


def test_split_merge(g):
    """6. Markers live in the page tables: they survive splitting and merging VMAs.

        0 1 2 3 4 5 6 7 8 9
        [ RO  ][  RW  ][ RO ]    mprotect splits the range into 3 VMAs, and back to 1
    """
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))

    for i in (2, 5, 8):
        ok(mm.munmap(ptr + i * P, P))
    assert not any(g.try_rw(ptr + i * P) for i in (0, 1, 3, 4, 6, 7, 9))

    for i in (2, 5, 8):
        assert g.mmap_(ptr + i * P, 1, RW, MAP_FIXED) == ptr + i * P
    assert [g.try_rw(ptr + i * P) for i in range(10)] == [i in (2, 5, 8) for i in range(10)]

    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))

    if g.variant == "anon":
        # Fresh anon pages next to their old VMA merge back: one VMA again.
        assert len(g.vmas_in(ptr, ptr + 10 * P)) == 1
    ok(mm.mprotect(ptr, 3 * P, PROT_READ))
    ok(mm.mprotect(ptr + 7 * P, 3 * P, PROT_READ))
    if g.variant == "anon":
        assert len(g.vmas_in(ptr, ptr + 10 * P)) == 3
    assert not any(g.try_read(ptr + i * P) for i in range(10))

    ok(mm.mprotect(ptr, 3 * P, RW))
    ok(mm.mprotect(ptr + 7 * P, 3 * P, RW))
    if g.variant == "anon":
        assert len(g.vmas_in(ptr, ptr + 10 * P)) == 1
    assert not any(g.try_rw(ptr + i * P) for i in range(10))

    ok(mm.mprotect(ptr, 3 * P, PROT_READ))
    ok(mm.mprotect(ptr + 7 * P, 3 * P, PROT_READ))
    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.try_read(ptr + i * P) for i in range(10))

    ok(mm.mprotect(ptr, 3 * P, RW))
    ok(mm.mprotect(ptr + 7 * P, 3 * P, RW))
    assert all(g.try_rw(ptr + i * P) for i in range(10))
    ok(mm.munmap(ptr, 10 * P))


def test_mremap_move(g):
    """9. Moving a mapping moves its markers with it."""
    mm = g.mm
    ptr = g.mmap_(None, 5, RW)
    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    g.madvise(ptr + 4 * P, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 4 * P)

    new = g.mmap_(None, 5, PROT_NONE)
    assert mm.mremap(ptr, 5 * P, 5 * P, MREMAP_MAYMOVE | MREMAP_FIXED, new) == new
    assert not g.try_rw(new) and not g.try_rw(new + 4 * P)
    assert_guard_fault(mm, new + 4 * P)
    assert all(g.try_rw(new + i * P) for i in (1, 2, 3))
    ok(mm.munmap(new, 5 * P))


def test_mremap_expand(g):
    """10. Growing in place, then moving and growing, keeps markers at their offsets."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    ok(mm.munmap(ptr + 5 * P, 5 * P))
    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    g.madvise(ptr + 4 * P, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 4 * P)

    assert mm.mremap(ptr, 5 * P, 10 * P, 0) == ptr
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 4 * P)

    new = g.mmap_(None, 20, PROT_NONE)
    ptr = mm.mremap(ptr, 10 * P, 20 * P, MREMAP_MAYMOVE | MREMAP_FIXED, new)
    assert ptr == new
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 4 * P)
    ok(mm.munmap(ptr, 20 * P))


def test_mremap_shrink(g):
    """11. Shrinking drops the markers it cuts off; growing again does not bring them back."""
    mm = g.mm
    ptr = g.mmap_(None, 5, RW)
    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    g.madvise(ptr + 4 * P, 1, MADV_GUARD_INSTALL)
    assert not g.try_rw(ptr) and not g.try_rw(ptr + 4 * P)

    ptr = mm.mremap(ptr, 5 * P, 3 * P, MREMAP_MAYMOVE)
    assert not g.try_rw(ptr)
    assert all(g.try_rw(ptr + i * P) for i in (1, 2))

    assert mm.mremap(ptr, 3 * P, 5 * P, 0) == ptr
    assert not g.try_rw(ptr)
    assert all(g.try_rw(ptr + i * P) for i in range(1, 5))
    ok(mm.munmap(ptr, 5 * P))
