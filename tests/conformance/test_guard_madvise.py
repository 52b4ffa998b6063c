"""guard-regions.c tests 7, 8, 15-17, 19 and 29: other madvise() advice on guarded ranges."""
import errno

import pytest

from ptengine.constants import (HPAGE_PMD_NR, MADV_COLD, MADV_COLLAPSE, MADV_DONTNEED,
                                MADV_FREE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
                                MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT,
                                MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_SEQUENTIAL,
                                PROT_READ, PROT_WRITE)

from .conftest import P, assert_guard_fault, ok, thp_available

RW = PROT_READ | PROT_WRITE


def test_dontneed(g):
    """7. DONTNEED zaps pages but keeps markers; anon then reads zero, files their data."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    for i in range(10):
        mm.write(ptr + i * P, b"y")
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)

    g.madvise(ptr, 10, MADV_DONTNEED)
    for i in range(10):
        addr = ptr + i * P
        if i % 2 == 0:
            assert not g.try_read(addr)
        else:
            assert g.try_read(addr)
            assert g.byte(addr) == (b"\0" if g.variant == "anon" else b"y")
        assert g.try_write(addr) == (i % 2 != 0)
    ok(mm.munmap(ptr, 10 * P))


def test_mlock(g):
    """8. INSTALL refuses a locked VMA (EINVAL); REMOVE works across one."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    for i in range(10):
        mm.write(ptr + i * P, b"y")
    ok(mm.mlock(ptr, 10 * P))

    with pytest.raises(OSError) as e:
        mm.madvise(ptr, 10 * P, MADV_GUARD_INSTALL)
    assert e.value.errno == errno.EINVAL

    ok(mm.munlock(ptr, 10 * P))
    g.madvise(ptr, 5, MADV_GUARD_INSTALL)
    for i in range(10):
        addr = ptr + i * P
        if i < 5:
            assert not g.try_rw(addr)
        else:
            assert g.try_rw(addr)
            assert g.byte(addr) == b"x"

    # Locking the guarded half would populate it, which fails; lock the rest only.
    ok(mm.mlock(ptr + 5 * P, 5 * P))
    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.try_rw(ptr + i * P) for i in range(10))
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("anon")
def test_lazyfree(g):
    """15. MADV_FREE leaves markers in place."""
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    g.madvise(ptr, 10, MADV_FREE)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    ok(g.mm.munmap(ptr, 10 * P))


def test_populate(g):
    """16. Populating a guarded range is a kernel-mode access: EFAULT, no signal."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    for advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
        with pytest.raises(OSError) as e:
            mm.madvise(ptr, 10 * P, advice)
        assert e.value.errno == errno.EFAULT
    ok(mm.munmap(ptr, 10 * P))


def test_cold_pageout(g):
    """17. COLD and PAGEOUT leave markers in place."""
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    g.madvise(ptr, 10, MADV_COLD)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    g.madvise(ptr, 10, MADV_PAGEOUT)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    ok(g.mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem", "file")
def test_madvise_sequential(g):
    """19. Readahead after PAGEOUT must not fill guarded PTEs; the file data survives."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    assert g.check_pattern(ptr, 10)

    g.madvise(ptr, 10, MADV_SEQUENTIAL)
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    g.madvise(ptr, 10, MADV_PAGEOUT)

    for i in range(10):
        if i % 2 == 0:
            assert not g.try_rw(ptr + i * P)
        else:
            assert g.byte(ptr + i * P) == bytes([ord("a") + i])

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert g.check_pattern(ptr, 10)
    ok(mm.munmap(ptr, 10 * P))


def test_collapse(g):
    """29. MADV_COLLAPSE fails over a range holding markers, and the markers stay."""
    if not thp_available(g.backend):
        pytest.skip("Transparent Hugepages not available")
    mm = g.mm
    npages = 2 * HPAGE_PMD_NR
    if g.file is not None:
        g.file.truncate(npages * P)
    ptr = g.mmap_(None, npages, PROT_READ)
    g.madvise(ptr, npages, MADV_NOHUGEPAGE)    # keep it from faulting in huge
    g.madvise(ptr, npages, MADV_POPULATE_READ)

    for i in range(0, npages, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
        assert not g.try_read(ptr + i * P)

    g.madvise(ptr, npages, MADV_HUGEPAGE)
    with pytest.raises(OSError):
        mm.madvise(ptr, npages * P, MADV_COLLAPSE)

    assert not any(g.try_read(ptr + i * P) for i in range(0, npages, 2))
    assert_guard_fault(mm, ptr + (npages - 2) * P)
