"""guard-regions.c tests 27, 28 and 30: how /proc shows guards (pagemap, PAGEMAP_SCAN,
smaps VmFlags "gu")."""
import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_FIXED,
                                PAGE_IS_GUARD, PM_FILE, PM_GUARD_REGION, PM_MMAP_EXCLUSIVE,
                                PM_PFRAME_MASK, PM_PRESENT, PM_SWAP, PROT_READ, PROT_WRITE,
                                VM_MAYBE_GUARD)

from .conftest import P, ok

RW = PROT_READ | PROT_WRITE
# A guard marker as a privileged pagemap reader sees it: swap type 31 (SWP_PTE_MARKER),
# offset 4 (PTE_MARKER_GUARD), in the swap layout of the frame field.
GUARD_FRAME = 31 | (4 << 5)


def test_pagemap(g):
    """27. Pagemap bit 58 is set exactly on guarded pages (which read as swapped, never
    present)."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    assert not any(int(e) & PM_GUARD_REGION for e in mm.pagemap(ptr, 10 * P))

    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    entries = [int(e) for e in mm.pagemap(ptr, 10 * P)]
    assert len(entries) == 10
    for i, e in enumerate(entries):
        assert bool(e & PM_GUARD_REGION) == (i % 2 == 0)
        if i % 2 == 0:
            assert e & PM_SWAP
            assert not e & (PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE)
            assert e & PM_PFRAME_MASK == GUARD_FRAME
    ok(mm.munmap(ptr, 10 * P))


def test_pagemap_scan(g):
    """28. PAGEMAP_SCAN with PAGE_IS_GUARD finds one region per guarded page."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    end = ptr + 10 * P
    scan = dict(category_anyof_mask=PAGE_IS_GUARD, return_mask=PAGE_IS_GUARD)

    before = mm.pagemap_scan(ptr, end, **scan)
    assert list(before) == []
    if g.backend == "kernel" or hasattr(before, "walk_end"):
        assert before.walk_end == end

    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    after = mm.pagemap_scan(ptr, end, **scan)
    assert [tuple(r) for r in after] == [
        (ptr + 2 * i * P, ptr + (2 * i + 1) * P, PAGE_IS_GUARD) for i in range(5)]
    if g.backend == "kernel" or hasattr(after, "walk_end"):
        assert after.walk_end == end
    ok(mm.munmap(ptr, 10 * P))


def local_fs_has_sane_mmap(g):
    """The selftest's check that the file system merges a re-mapped middle page."""
    if g.variant != "file":
        return True
    ptr = g.mmap_(None, 10, RW)
    ok(g.mm.munmap(ptr + 5 * P, P))
    g.mmap_(ptr + 5 * P, 1, RW, MAP_FIXED, 5 * P)
    vma = g.mm.find_vma(ptr)
    return (vma.start, vma.end) == (ptr, ptr + 10 * P)


@pytest.mark.host_profile("maybe_guard")
def test_smaps(g):
    """30. VM_MAYBE_GUARD ("gu") is set on install, never cleared, copied to both halves
    of a split, and does not stop the halves merging again.

        0 1 2 3 4 5 6 7 8 9
        [gu     ]   [gu   ]    after munmap of page 4
        [gu               ]    after mapping page 4 back (at file offset 4P)
    """
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    assert "gu" not in g.vmflags(ptr)
    assert not mm.find_vma(ptr).flags & VM_MAYBE_GUARD

    g.madvise(ptr, 1, MADV_GUARD_INSTALL)
    assert "gu" in g.vmflags(ptr)
    assert mm.find_vma(ptr).flags & VM_MAYBE_GUARD

    g.madvise(ptr, 1, MADV_GUARD_REMOVE)
    assert "gu" in g.vmflags(ptr)

    for i in range(10):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
        assert "gu" in g.vmflags(ptr)

    ok(mm.munmap(ptr + 4 * P, P))
    assert "gu" in g.vmflags(ptr)
    assert "gu" in g.vmflags(ptr + 5 * P)
    assert [(v.start, v.end) for v in g.vmas_in(ptr, ptr + 10 * P)] == [
        (ptr, ptr + 4 * P), (ptr + 5 * P, ptr + 10 * P)]

    assert local_fs_has_sane_mmap(g), "the file system does not merge VMAs sanely"
    assert g.mmap_(ptr + 4 * P, 1, RW, MAP_FIXED, 4 * P) == ptr + 4 * P
    vma = mm.find_vma(ptr)
    assert (vma.start, vma.end) == (ptr, ptr + 10 * P)
    assert vma.flags & VM_MAYBE_GUARD
    assert "gu" in g.vmflags(ptr)
