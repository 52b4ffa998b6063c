"""guard-regions.c tests 18 and 20-26: userfaultfd, and guards over file and shmem data."""
import errno

import pytest

from ptengine.constants import (F_SEAL_WRITE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
                                MADV_PAGEOUT, MADV_REMOVE, MAP_PRIVATE, MFD_ALLOW_SEALING,
                                PROT_READ, PROT_WRITE)

from .conftest import P, ok, pattern

RW = PROT_READ | PROT_WRITE
UFFDIO_REGISTER_MODE_MISSING = 1


@pytest.mark.variants("anon", "shmem")
def test_uffd(g):
    """18. A uffd-registered (missing mode) range: INSTALL raises no uffd event, and a
    guard answers with SIGSEGV rather than a userfault."""
    mm = g.mm
    if not hasattr(mm, "uffd_register"):
        pytest.skip(f"the {g.backend} backend has no userfaultfd (uffd_register)")
    ptr = g.mmap_(None, 10, RW)
    try:
        mm.uffd_register(ptr, 10 * P, UFFDIO_REGISTER_MODE_MISSING)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            pytest.skip(f"userfaultfd not permitted or not supported: {e}")
        raise
    g.madvise(ptr, 10, MADV_GUARD_INSTALL)
    assert not any(g.try_rw(ptr + i * P) for i in range(10))
    ok(mm.uffd_unregister(ptr, 10 * P))
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem", "file")
def test_map_private(g):
    """20. A shared and a private mapping of one file have independent markers; INSTALL
    in the private one discards its COW copies.

        0123456789
        SPSPSPSPSP   private view after writing the even pages (P = COW copy)
        xxxxxPSPSP   after INSTALL on pages 0-4
        SSSSSPSPSP   after REMOVE: the COW copies under the guards are gone
    """
    mm = g.mm
    shared = g.mmap_(None, 10, RW)
    private = mm.mmap(None, 10 * P, RW, MAP_PRIVATE, g.file, 0)
    g.set_pattern(shared, 10)

    for i in range(0, 10, 2):
        g.madvise(shared + i * P, 1, MADV_GUARD_INSTALL)
    for i in range(10):
        assert g.try_read(shared + i * P) == (i % 2 != 0)
        assert g.try_read(private + i * P)

    for i in range(0, 10, 2):
        g.madvise(private + i * P, 1, MADV_GUARD_INSTALL)
    for i in range(10):
        assert g.try_read(shared + i * P) == (i % 2 != 0)
        assert g.try_read(private + i * P) == (i % 2 != 0)

    g.madvise(shared, 10, MADV_GUARD_REMOVE)
    for i in range(10):
        assert g.try_read(shared + i * P)
        assert g.try_read(private + i * P) == (i % 2 != 0)

    g.madvise(private, 10, MADV_GUARD_REMOVE)
    for i in range(10):
        assert g.try_read(shared + i * P)
        assert g.try_read(private + i * P)
    assert g.check_pattern(shared, 10)
    assert g.check_pattern(private, 10)

    for i in range(0, 10, 2):
        mm.write(private + i * P, bytes([ord("a") + i]) * P)

    g.madvise(private, 5, MADV_GUARD_INSTALL)
    for i in range(10):
        assert g.try_read(private + i * P) == (i >= 5)
        assert g.try_read(shared + i * P)

    g.madvise(private, 10, MADV_GUARD_REMOVE)
    for i in range(10):
        page = mm.read(private + i * P, P)
        if i < 5 or i % 2 == 0:
            assert page == mm.read(shared + i * P, P)
        else:
            assert page == bytes([ord("a") + i]) * P
    ok(mm.munmap(shared, 10 * P))
    ok(mm.munmap(private, 10 * P))


@pytest.mark.variants("file")
def test_readonly_file(g):
    """21. Guards in a read-only mapping of a file opened O_RDONLY."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    ok(mm.munmap(ptr, 10 * P))
    rw_file = g.file
    g.file = rw_file.reopen(readonly=True)
    rw_file.close()

    ptr = g.mmap_(None, 10, PROT_READ)
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    assert [g.try_read(ptr + i * P) for i in range(10)] == [i % 2 != 0 for i in range(10)]

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert g.check_pattern(ptr, 10)
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem", "file")
def test_fault_around(g):
    """22. Fault-around on the odd pages must skip the guarded even ones."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    g.madvise(ptr, 10, MADV_PAGEOUT)        # so the next faults are major ones
    ok(mm.munmap(ptr, 10 * P))

    ptr = g.mmap_(None, 10, RW)
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    for i in range(1, 10, 2):
        assert g.try_read(ptr + i * P)
    assert [g.try_read(ptr + i * P) for i in range(10)] == [i % 2 != 0 for i in range(10)]
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem", "file")
def test_truncation(g):
    """23. Truncating the file (shrinking, then growing back) keeps the markers."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    expect = [i % 2 != 0 for i in range(10)]
    assert [g.try_rw(ptr + i * P) for i in range(10)] == expect

    g.file.truncate(10 * P)
    assert [g.try_rw(ptr + i * P) for i in range(10)] == expect

    g.file.truncate(5 * P)
    g.file.truncate(10 * P)
    assert [g.try_rw(ptr + i * P) for i in range(10)] == expect
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem", "file")
def test_hole_punch(g):
    """24. MADV_REMOVE punches the file under guarded pages; the markers stay, and once
    removed the punched pages read zero.

        0123456789
        ***xxxx***   * data, x guard
    """
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    g.madvise(ptr + 3 * P, 4, MADV_GUARD_INSTALL)
    expect = [i < 3 or i >= 7 for i in range(10)]
    assert [g.try_read(ptr + i * P) for i in range(10)] == expect

    g.madvise(ptr + 3 * P, 4, MADV_REMOVE)
    assert [g.try_read(ptr + i * P) for i in range(10)] == expect

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert g.check_pattern(ptr, 3)
    assert mm.read(ptr + 3 * P, 4 * P) == bytes(4 * P)
    assert g.check_pattern(ptr, 3, pgoff=7)
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("shmem")
def test_memfd_write_seal(g):
    """25. Guards in a read-only mapping of a write-sealed memfd."""
    mm = g.mm
    g.file = g.system.memfd_create("guard_regions_memfd_seals_test", MFD_ALLOW_SEALING)
    g.file.truncate(10 * P)
    ptr = g.mmap_(None, 10, RW)
    g.set_pattern(ptr, 10)
    ok(mm.munmap(ptr, 10 * P))

    g.file.add_seals(F_SEAL_WRITE)
    assert g.file.seals & F_SEAL_WRITE
    ptr = g.mmap_(None, 10, PROT_READ)
    assert g.check_pattern(ptr, 10)

    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    assert [g.try_read(ptr + i * P) for i in range(10)] == [i % 2 != 0 for i in range(10)]

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert g.check_pattern(ptr, 10)
    assert not any(g.try_write(ptr + i * P) for i in range(10))
    assert g.file.pread(0, 10 * P) == pattern(0, 10)
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("anon", "shmem")
def test_anon_zeropage(g):
    """26. Guards in a read-only mapping of zero pages."""
    mm = g.mm
    ptr = g.mmap_(None, 10, PROT_READ)
    for i in range(0, 10, 2):
        g.madvise(ptr + i * P, 1, MADV_GUARD_INSTALL)
    assert [g.try_read(ptr + i * P) for i in range(10)] == [i % 2 != 0 for i in range(10)]

    g.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(g.try_read(ptr + i * P) for i in range(10))
    assert mm.read(ptr, 10 * P) == bytes(10 * P)
    ok(mm.munmap(ptr, 10 * P))
