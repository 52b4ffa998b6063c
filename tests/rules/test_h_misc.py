"""Rules 30-38 (§1.H): fork, truncation and hole punch, per-mapping scope, THP,
userfaultfd, /proc views, process_madvise. (Rule 35, hugetlb, needs reserved huge pages,
which neither backend has; rule 36, mincore, and rule 39, lock order, are not in the API.)"""
import signal

import pytest

from ptengine.constants import (MADV_DONTFORK, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
                                MADV_HUGEPAGE, MADV_WIPEONFORK, MAP_SHARED,
                                PAGE_IS_FILE, PAGE_IS_GUARD, PAGE_IS_HUGE, PAGE_IS_PFNZERO,
                                PAGE_IS_PRESENT, PAGE_IS_SWAPPED, PAGE_IS_WRITTEN, PMD_SIZE,
                                PROT_READ, SEGV_MAPERR, BUS_ADRERR, UIO_MAXIOV)

from .conftest import (ANON, CACHE, EINVAL, ENOMEM, GUARD, GUARD_FRAME, NONE, P, POISON,
                       POISON_CODE, POISON_FRAME, RW, SLOT, ZERO, Delta, errno_of, page_byte,
                       pattern)

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
SEGV, BUS = signal.SIGSEGV, signal.SIGBUS
HP = PMD_SIZE // P


def madv(s, addr, npages, advice, mm=None):
    assert (mm or s.mm).madvise(addr, npages * P, advice) in (0, None)


# --- rule 30: fork ------------------------------------------------------------------------
@pytest.mark.kinds("anon", "shared_anon", "shmem", "file", "file_private")
def test_rule_30_fork_copies_markers_independently(s, kind):
    p = s.map(kind, 6, at=0)
    madv(s, p + P, 2, INSTALL)
    child = s.mm.fork()
    assert s.pm(p, 4, mm=child) == [NONE, GUARD, GUARD, NONE]
    madv(s, p + P, 1, REMOVE, mm=child)               # the child's REMOVE ...
    madv(s, p + 4 * P, 1, INSTALL, mm=child)
    assert s.pm(p, 6) == [NONE, GUARD, GUARD, NONE, NONE, NONE]   # ... is its own
    madv(s, p + 2 * P, 1, REMOVE)                     # and the parent's is its own
    assert s.pm(p, 6, mm=child) == [NONE, NONE, GUARD, NONE, GUARD, NONE]
    assert s.fault(p + 2 * P, mm=child) == (SEGV, SEGV_MAPERR, p + 2 * P)
    assert s.fault(p + 2 * P) is None
    child.exit()


@pytest.mark.kinds("anon", "shared_anon", "shmem")
def test_rule_30_fork_copies_poison_markers(s, kind):
    p = s.map(kind, 2, at=0)
    madv(s, p, 1, INSTALL)                           # makes the tables copyable
    s.mm.install_poison(p + P, P)
    child = s.mm.fork()
    assert s.pm(p, 2, mm=child) == [GUARD, POISON]
    assert s.pm_frames(p, 2, mm=child) == [GUARD_FRAME, POISON_FRAME]
    assert s.fault(p + P, mm=child) == (BUS, POISON_CODE, p + P)
    child.exit()


@pytest.mark.kinds("anon", "shared_anon")
def test_rule_30_poison_alone_is_copied_only_with_an_anon_vma(s, kind):
    """UFFDIO_POISON prepares an anon_vma for a private VMA (mfill_atomic()), so fork
    copies that VMA's page tables; a shared VMA with poison only is not copied."""
    p = s.map(kind, 2, at=0)
    s.mm.install_poison(p + P, P)
    child = s.mm.fork()
    assert s.pm(p, 2, mm=child) == ([NONE, POISON] if kind == "anon" else [NONE, NONE])
    child.exit()


def test_rule_30_poison_gives_a_private_vma_an_anon_vma(s):
    """Seen through merging: [A poisoned][B] then B's flags change and change back:
    A's anon_vma (from the poison) is shared with both halves of a later split."""
    p = s.map("anon", 8, at=0)
    s.mm.install_poison(p + 7 * P, P)
    s.mm.mlock(p + 4 * P, 4 * P, 1)          # split: both halves share the anon_vma
    s.mm.write(p, b"a")
    s.mm.write(p + 4 * P, b"b")
    s.mm.munlock(p + 4 * P, 4 * P)
    assert s.vmas_in(p, p + 8 * P) == [(p, p + 8 * P)]


def test_rule_30_fork_cow_data_is_independent(s):
    p = s.map("anon", 4, at=0)
    s.mm.write(p, pattern(0, 4))
    madv(s, p + 3 * P, 1, INSTALL)
    child = s.mm.fork()
    shared = 1 << 63                       # present, mapped twice: not exclusive
    assert s.pm(p, 3, mm=child) == [shared] * 3 and s.pm(p, 3) == [shared] * 3
    child.write(p, b"child")
    s.mm.write(p + P, b"parent")
    assert child.read(p, 5) == b"child" and s.mm.read(p, 5) == page_byte(0) * 5
    assert s.mm.read(p + P, 6) == b"parent" and child.read(p + P, 6) == page_byte(1) * 6
    # Each COW left the other process the only mapper of the original page.
    assert s.pm(p, 3, mm=child) == [ANON, ANON, shared]
    assert s.pm(p, 3) == [ANON, ANON, shared]
    # guard-regions.c test 13: INSTALL + REMOVE in the child discards its COW view.
    madv(s, p, 3, INSTALL, mm=child)
    madv(s, p, 3, REMOVE, mm=child)
    assert child.read(p, 3 * P) == bytes(3 * P)
    assert s.mm.read(p + 2 * P, P) == pattern(2, 1)
    child.exit()


def test_rule_30_wipeonfork_child_sees_no_markers(s):
    p = s.map("anon", 4, at=0)
    s.mm.write(p, b"w")
    madv(s, p, 4, MADV_WIPEONFORK)
    madv(s, p + P, 2, INSTALL)
    child = s.mm.fork()
    assert s.pm(p, 4, mm=child) == [NONE] * 4
    assert child.read(p, 1) == b"\0"
    assert "wf" in s.vmflags(p, mm=child) and "gu" in s.vmflags(p, mm=child)
    assert s.pm(p, 4) == [ANON, GUARD, GUARD, NONE]
    child.exit()


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_30_dontfork_vma_is_absent_in_the_child(s, kind):
    p = s.map(kind, 4, at=0)
    madv(s, p + P, 1, INSTALL)
    madv(s, p, 4, MADV_DONTFORK)
    child = s.mm.fork()
    assert child.find_vma(p) is None or child.find_vma(p).start > p
    assert s.fault(p + P, mm=child) == (SEGV, SEGV_MAPERR, p + P)
    assert s.fault(p, mm=child) == (SEGV, SEGV_MAPERR, p)
    assert s.mm.map_count - child.map_count == 1
    child.exit()


# --- rule 31: truncation and hole punch ---------------------------------------------------
@pytest.mark.kinds("shmem", "file", "shmem_private", "file_private")
def test_rule_31_truncate_keeps_markers(s, kind):
    """guard-regions.c test 23 with pagemap: shrink to 5 pages and grow back to 10."""
    f = s.file(kind.split("_")[0])
    f.truncate(10 * P)
    p = s.map(kind, 10, at=0)
    for i in range(0, 10, 2):
        madv(s, p + i * P, 1, INSTALL)
    for i in range(1, 10, 2):
        s.mm.read(p + i * P, 1)
    f.truncate(5 * P)
    assert s.pm(p, 10)[0::2] == [GUARD] * 5
    assert s.pm(p, 10)[5:] == [NONE, GUARD, NONE, GUARD, NONE]
    assert s.fault(p + 7 * P) == (BUS, BUS_ADRERR, p + 7 * P)        # beyond EOF
    assert s.fault(p + 8 * P) == (SEGV, SEGV_MAPERR, p + 8 * P)      # a guard wins
    f.truncate(10 * P)
    assert s.readable(p, 10) == [i % 2 == 1 for i in range(10)]
    assert s.mm.read(p + 7 * P, P) == bytes(P)                        # re-extended: zeroes
    assert s.mm.read(p + 3 * P, P) == pattern(3, 1)


def test_rule_31_truncate_drops_private_cow_copies_beyond_eof(s):
    f = s.file("file")
    f.truncate(4 * P)
    p = s.map("file_private", 4, at=0)
    s.mm.write(p + 3 * P, b"cow")
    madv(s, p + 2 * P, 1, INSTALL)
    with Delta(s) as d:
        f.truncate(2 * P)
    assert d["RssAnon"] == -4
    assert s.pm(p, 4) == [NONE, NONE, GUARD, NONE]
    assert s.fault(p + 3 * P) == (BUS, BUS_ADRERR, p + 3 * P)


@pytest.mark.kinds("shmem", "file")
def test_rule_31_hole_punch_keeps_markers_and_private_copies(s, kind):
    f = s.file(kind)
    sh = s.map(kind, 6, at=0)
    pv = s.map(kind + "_private", 6, at=16 * P)
    s.mm.read(sh, 6 * P)
    s.mm.write(pv + 4 * P, b"mine")
    madv(s, sh + 2 * P, 2, INSTALL)
    madv(s, pv + 3 * P, 1, INSTALL)
    f.punch_hole(P, 4 * P)                       # pages 1-4
    pm = s.pm(sh, 6)
    assert pm[1:5] == [NONE, GUARD, GUARD, NONE]
    if kind == "shmem":
        assert pm[0] == pm[5] == CACHE
    else:
        # ext4 caches the file in large folios: punching part of one unmaps all of it,
        # so whether pages 0 and 5 stay mapped depends on the folio sizes.
        assert pm[0] in (NONE, CACHE) and pm[5] in (NONE, CACHE)
    assert s.pm(pv + 3 * P, 2) == [GUARD, ANON]
    assert s.mm.read(pv + 4 * P, 4) == b"mine"   # the COW copy is not the file's page
    assert s.mm.read(sh + P, P) == bytes(P)
    madv(s, sh, 6, REMOVE)
    assert s.mm.read(sh + 2 * P, 2 * P) == bytes(2 * P)
    assert s.mm.read(sh + 5 * P, P) == pattern(5, 1)


def test_rule_31_truncate_to_zero_and_back(s):
    f = s.file("shmem")
    p = s.map("shmem", 4, at=0)
    madv(s, p + P, 1, INSTALL)
    f.truncate(0)
    assert s.fault(p) == (BUS, BUS_ADRERR, p)
    assert s.fault(p + P) == (SEGV, SEGV_MAPERR, p + P)
    f.truncate(4 * P)
    assert s.mm.read(p, 1) == b"\0"
    assert s.pm(p + P, 1) == [GUARD]


# --- rule 32: per-mapping scope -----------------------------------------------------------
@pytest.mark.kinds("shmem", "file")
def test_rule_32_markers_belong_to_one_mapping(s, kind):
    a = s.map(kind, 4, at=0)
    b = s.map(kind, 4, at=8 * P)
    c = s.map(kind + "_private", 4, at=16 * P)
    madv(s, a + P, 2, INSTALL)
    assert s.pm(b, 4) == [NONE] * 4 and s.pm(c, 4) == [NONE] * 4
    assert s.mm.read(b + P, P) == pattern(1, 1)
    assert s.mm.read(c + 2 * P, P) == pattern(2, 1)
    s.mm.write(b + P, b"via b")
    assert s.file(kind).pread(P, 5) == b"via b"
    madv(s, a, 4, REMOVE)
    assert s.mm.read(a + P, 5) == b"via b"


def test_rule_32_markers_belong_to_one_process(s):
    f = s.file("file")
    other = s.system.spawn()
    a = s.mm.mmap(0, 4 * P, RW, MAP_SHARED, f, 0)
    b = other.mmap(0, 4 * P, RW, MAP_SHARED, f, 0)
    madv(s, a, 4, INSTALL)
    assert other.read(b, 4 * P) == pattern(0, 4)
    other.write(b + 3 * P, b"other")
    madv(s, a, 4, REMOVE)
    assert s.mm.read(a + 3 * P, 5) == b"other"


# --- rule 33: THP -------------------------------------------------------------------------
def test_rule_33_install_in_a_cow_shared_thp(s):
    """After fork a THP is shared; INSTALL in the child splits the child's mapping only."""
    p = s.map("anon", HP, at=0)
    madv(s, p, HP, MADV_HUGEPAGE)
    s.mm.write(p, b"H" * P)
    child = s.mm.fork()
    madv(s, p + 5 * P, 1, INSTALL, mm=child)
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert s.smaps(p, mm=child)["AnonHugePages"] == 0
    assert child.read(p, 1) == b"H" and child.read(p + 6 * P, 1) == b"\0"
    assert s.pm(p + 5 * P, 1, mm=child) == [GUARD]
    # Still mapped by both: the parent's PMD maps a folio the child maps too.
    assert s.pm(p, 1) == [1 << 63] and s.pm(p, 1, mm=child) == [1 << 63]
    child.exit()


def test_rule_33_exclusive_bit_of_a_partly_shared_thp(s):
    """PM_MMAP_EXCLUSIVE of a PMD-mapped THP is per folio: a subpage the child no longer
    maps is still not exclusive in the parent, since the child maps the rest."""
    p = s.map("anon", HP, at=0)
    madv(s, p, HP, MADV_HUGEPAGE)
    s.mm.write(p, b"H")
    child = s.mm.fork()
    madv(s, p + 5 * P, 1, INSTALL, mm=child)
    assert s.pm(p + 5 * P, 1) == [1 << 63]
    child.exit()


# --- rule 34: userfaultfd -----------------------------------------------------------------
@pytest.mark.kinds("anon", "shmem")
@pytest.mark.parametrize("mode", [1, 2])      # MISSING, WP
def test_rule_34_registered_range_guard_is_sigsegv(s, kind, mode):
    p = s.map(kind, 4, at=0)
    madv(s, p + P, 1, INSTALL)
    s.mm.uffd_register(p, 4 * P, mode)
    assert "gu" in s.vmflags(p)
    madv(s, p + 2 * P, 1, INSTALL)                 # INSTALL in a registered range
    for i in (1, 2):
        assert s.fault(p + i * P) == (SEGV, SEGV_MAPERR, p + i * P)
        assert s.fault(p + i * P, write=True) == (SEGV, SEGV_MAPERR, p + i * P)
    if mode == 1 and kind == "anon":
        # A missing page raises SIGBUS (UFFD_FEATURE_SIGBUS: no handler thread).
        assert s.fault(p + 3 * P) == (BUS, BUS_ADRERR, p + 3 * P)
    else:
        # WP mode has no missing faults; shmem's page is in the page cache: not missing.
        assert s.fault(p + 3 * P, write=True) is None
    s.mm.uffd_unregister(p, 4 * P)
    assert s.fault(p + 3 * P) is None
    assert s.pm(p + P, 2) == [GUARD, GUARD]


@pytest.mark.kinds("anon", "shmem")
def test_rule_34_a_userfault_leaves_its_tables(s, kind):
    """A missing fault that becomes SIGBUS: anon has allocated the PTE table (12 kB in
    an empty slot); shmem (a page not in the cache) only the PUD and PMD (8 kB)."""
    if kind == "shmem":
        s.file("shmem").punch_hole(0, 8 * P)
    p = s.map(kind, 8, at=0)
    s.mm.uffd_register(p, 8 * P, 1)
    with Delta(s) as d:
        assert s.fault(p + 2 * P) == (BUS, BUS_ADRERR, p + 2 * P)
    assert d["VmPTE"] == (12 if kind == "anon" else 8)
    assert s.pm(p, 8) == [NONE] * 8


# --- rule 37: pagemap, PAGEMAP_SCAN, smaps -------------------------------------------------
SCAN_BITS = (PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_PFNZERO
             | PAGE_IS_GUARD | PAGE_IS_WRITTEN | PAGE_IS_HUGE)


def test_rule_37_pagemap_and_scan_of_a_mixed_range(s):
    """[anon][zero][guard][none][poison][guard] in anon, then [cache][guard] in a file."""
    p = s.map("anon", 6, at=0)
    s.mm.write(p, b"a")
    s.mm.read(p + P, 1)
    madv(s, p + 2 * P, 1, INSTALL)
    s.mm.install_poison(p + 4 * P, P)
    madv(s, p + 5 * P, 1, INSTALL)
    q = s.map("file", 2, PROT_READ, at=8 * P)
    s.mm.read(q, 1)
    madv(s, q + P, 1, INSTALL)
    assert s.pm(p, 6) == [ANON, ZERO, GUARD, NONE, POISON, GUARD]
    assert s.pm_frames(p, 6)[2:] == [GUARD_FRAME, 0, POISON_FRAME, GUARD_FRAME]
    assert s.pm(q, 2) == [CACHE, GUARD]
    assert s.pm(p + 6 * P, 2) == [NONE, NONE]       # no VMA there
    scan = s.mm.pagemap_scan(p, q + 2 * P, category_anyof_mask=SCAN_BITS,
                             return_mask=SCAN_BITS)
    W, S, G = PAGE_IS_WRITTEN, PAGE_IS_SWAPPED, PAGE_IS_GUARD
    assert [tuple(r) for r in scan] == [
        (p, p + P, PAGE_IS_PRESENT | W),
        (p + P, p + 2 * P, PAGE_IS_PRESENT | W | PAGE_IS_PFNZERO),
        (p + 2 * P, p + 3 * P, S | W | G),
        (p + 3 * P, p + 4 * P, W),              # a none PTE in an existing table
        (p + 4 * P, p + 5 * P, S | W),
        (p + 5 * P, p + 6 * P, S | W | G),
        (q, q + P, PAGE_IS_PRESENT | W | PAGE_IS_FILE),
        (q + P, q + 2 * P, S | W | G)]
    guards = s.mm.pagemap_scan(p, q + 2 * P, category_mask=G, return_mask=G)
    assert [tuple(r) for r in guards] == [(p + 2 * P, p + 3 * P, G), (p + 5 * P, p + 6 * P, G),
                                          (q + P, q + 2 * P, G)]
    inverted = s.mm.pagemap_scan(p, p + 6 * P, category_inverted=G, category_mask=G,
                                 return_mask=G)
    assert [tuple(r) for r in inverted] == [(p, p + 2 * P, 0), (p + 3 * P, p + 5 * P, 0)]
    # Pages without a PTE table are holes: no category at all.
    r = s.map("anon", 4, at=32 * P * 512)
    assert s.mm.pagemap_scan(r, r + 4 * P, category_anyof_mask=SCAN_BITS,
                             return_mask=SCAN_BITS) == []
    limited = s.mm.pagemap_scan(p, q + 2 * P, category_mask=G, return_mask=G, max_pages=2)
    assert [tuple(r) for r in limited] == [(p + 2 * P, p + 3 * P, G), (p + 5 * P, p + 6 * P, G)]


def test_rule_37_scan_of_a_thp(s):
    p = s.map("anon", HP, at=0)
    madv(s, p, HP, MADV_HUGEPAGE)
    s.mm.write(p, b"h")
    scan = s.mm.pagemap_scan(p, p + HP * P, category_anyof_mask=SCAN_BITS,
                             return_mask=SCAN_BITS)
    assert [tuple(r) for r in scan] == [
        (p, p + HP * P, PAGE_IS_PRESENT | PAGE_IS_WRITTEN | PAGE_IS_HUGE)]


def test_rule_37_smaps_counts_no_memory_for_markers(s):
    p = s.map("anon", 8, at=0)
    madv(s, p, 8, INSTALL)
    sm = s.smaps(p)
    assert (sm["Rss"], sm["Swap"], sm["Anonymous"]) == (0, 0, 0)
    madv(s, p + 4 * P, 4, REMOVE)
    s.mm.write(p + 4 * P, b"x" * (4 * P))
    sm = s.smaps(p)
    assert (sm["Rss"], sm["Anonymous"], sm["Private_Dirty"], sm["Swap"]) == (16, 16, 16, 0)


# --- rule 38: process_madvise -------------------------------------------------------------
def test_rule_38_argument_checks(s):
    p = s.map("anon", 2)
    assert errno_of(s.mm.process_madvise, [(p, P)], INSTALL, 1) == EINVAL
    assert errno_of(s.mm.process_madvise, [(p, P)] * (UIO_MAXIOV + 1), INSTALL) == EINVAL
    assert s.mm.process_madvise([], INSTALL) == 0
    assert errno_of(s.mm.process_madvise, [(p, P)], 99) == EINVAL
    assert s.pm(p, 2) == [NONE, NONE]
    assert s.mm.process_madvise([(p, P)] * UIO_MAXIOV, INSTALL) == UIO_MAXIOV * P


def test_rule_38_guard_vectors(s):
    """guard-regions.c test 3: six one-page iovecs in three VMAs."""
    a = s.map("anon", 10, at=P)
    b = s.map("anon", 5, PROT_READ, at=50 * P)
    c = s.map("anon", 20, at=79 * P)
    vec = [(a, P), (a + 9 * P, P), (b, P), (b + 4 * P, P), (c, P), (c + 19 * P, P)]
    assert s.mm.process_madvise(vec, INSTALL) == 6 * P
    for addr, _ in vec:
        assert s.pm(addr, 1) == [GUARD]
    assert s.mm.process_madvise(vec, REMOVE) == 6 * P
    assert all(s.pm(addr, 1) == [NONE] for addr, _ in vec)


def test_rule_38_return_counts_iovecs_before_the_first_failure(s):
    a = s.map("anon", 4, at=0)
    locked = s.map("anon", 2, PROT_READ, at=8 * P)
    s.mm.mlock(locked, 2 * P)
    c = s.map("anon", 2, at=16 * P)
    # zero-length iovecs are skipped; the locked one fails; the last is not reached.
    vec = [(a, 2 * P), (a + 3 * P, 0), (a + 2 * P, P), (locked, P), (c, P)]
    assert s.mm.process_madvise(vec, INSTALL) == 3 * P
    assert s.pm(a, 4) == [GUARD, GUARD, GUARD, NONE]
    assert s.pm(c, 1) == [NONE]
    # Failing on the very first iovec is an error.
    assert errno_of(s.mm.process_madvise, [(locked, P), (c, P)], INSTALL) == EINVAL
    assert errno_of(s.mm.process_madvise, [(a + 1, P)], INSTALL) == EINVAL
    assert s.mm.process_madvise([(a, P), (a + 1, P), (c, P)], INSTALL) == P


def test_rule_38_a_hole_inside_an_iovec_applies_but_does_not_count(s):
    a = s.map("anon", 2, at=0)
    s.map("anon", 2, at=3 * P)                  # [a a][hole][b b]
    c = s.map("anon", 2, at=8 * P)
    vec = [(c, P), (a, 5 * P), (c + P, P)]
    assert s.mm.process_madvise(vec, INSTALL) == P
    assert s.pm(a, 5) == [GUARD, GUARD, NONE, GUARD, GUARD]
    assert s.pm(c, 2) == [GUARD, NONE]
    assert errno_of(s.mm.process_madvise, [(a, 5 * P)], REMOVE) == ENOMEM
    assert s.pm(a, 5) == [NONE] * 5


# --- UFFDIO_POISON (rules 12, 16, 30 use it) ----------------------------------------------
@pytest.mark.kinds("anon", "shmem")
def test_poison_install_errors(s, kind):
    """EEXIST on a populated (or marked) first page; EAGAIN when some pages were poisoned
    before the stop; shmem past EOF is EFAULT."""
    p = s.map(kind, 6, at=0)
    madv(s, p + 2 * P, 1, INSTALL)
    assert errno_of(s.mm.install_poison, p + 2 * P, P) == 17             # EEXIST
    assert errno_of(s.mm.install_poison, p + P, 2 * P) == 11             # EAGAIN
    assert s.pm(p, 3) == [NONE, POISON, GUARD]
    if kind == "shmem":
        s.file("shmem").truncate(4 * P)
        q = s.map("shmem", 8, at=SLOT)
        with Delta(s) as d:                  # the tables are allocated before the check
            assert errno_of(s.mm.install_poison, q + 5 * P, P) == 14     # EFAULT
        assert d["VmPTE"] == 12
        assert errno_of(s.mm.install_poison, p + 4 * P, P) == 14
        assert errno_of(s.mm.install_poison, p + 3 * P, 2 * P) == 11
        assert s.pm(p + 3 * P, 2) == [POISON, NONE]
