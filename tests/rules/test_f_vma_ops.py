"""Rules 21-25 (§1.F): unmap-type operations drop markers; split, merge, mprotect and
mremap-move keep them."""
import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_FIXED,
                                MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, PMD_SIZE,
                                PROT_EXEC, PROT_NONE, PROT_READ, SEGV_ACCERR, SEGV_MAPERR)

from .conftest import ANON, EINVAL, GUARD, NONE, P, RW, SLOT, Delta, errno_of

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
HP = PMD_SIZE // P


def madv(s, addr, npages, advice):
    assert s.mm.madvise(addr, npages * P, advice) in (0, None)


# --- rule 21: munmap, MAP_FIXED, shrink, exit drop markers --------------------------------
@pytest.mark.kinds("anon", "shmem", "file", "file_private")
def test_rule_21_munmap_then_remap_is_unguarded(s, kind):
    p = s.map(kind, 10, at=0)
    madv(s, p, 1, INSTALL)
    madv(s, p + 9 * P, 1, INSTALL)
    s.mm.munmap(p, P)
    s.mm.munmap(p + 9 * P, P)
    assert s.fault(p) == (s.fault(p)[0], SEGV_MAPERR, p)     # no VMA now
    assert s.map(kind, 1, at=0, extra=MAP_FIXED) == p
    assert s.map(kind, 1, at=9 * P, extra=MAP_FIXED, off=9) == p + 9 * P
    assert s.pm(p, 10)[0] == NONE and s.pm(p, 10)[9] == NONE
    assert s.fault(p) is None and s.fault(p + 9 * P, write=True) is None


def test_rule_21_munmap_frees_the_tables_of_a_guarded_slot(s):
    p = s.map("anon", 4, at=0)
    with Delta(s) as d:
        s.mm.write(p, b"x")
        madv(s, p + P, 1, INSTALL)
    assert d["VmPTE"] == 12
    with Delta(s) as d:
        s.mm.munmap(p, 4 * P)
    assert d["VmPTE"] == -12 and d["RssAnon"] == -4


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_21_map_fixed_over_a_guard_replaces_it(s, kind):
    p = s.map(kind, 4, at=0)
    madv(s, p, 4, INSTALL)
    q = s.map(kind, 2, at=P, extra=MAP_FIXED, off=1)
    assert q == p + P
    assert s.pm(p, 4) == [GUARD, NONE, NONE, GUARD]
    assert s.fault(p + P) is None and s.fault(p + 2 * P) is None
    assert s.fault(p)[1] == SEGV_MAPERR and s.fault(p + 3 * P)[1] == SEGV_MAPERR
    # MAP_FIXED of the same kind over the whole range: everything is new.
    s.map(kind, 4, at=0, extra=MAP_FIXED)
    assert s.pm(p, 4) == [NONE] * 4


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_21_mremap_shrink_drops_the_cut_markers(s, kind):
    """guard-regions.c test 11 plus pagemap: shrink, then grow back in place."""
    p = s.map(kind, 5, at=0)
    madv(s, p, 1, INSTALL)
    madv(s, p + 4 * P, 1, INSTALL)
    assert s.mm.mremap(p, 5 * P, 3 * P, 0) == p
    assert s.pm(p, 3) == [GUARD, NONE, NONE]
    assert s.mm.mremap(p, 3 * P, 5 * P, 0) == p
    assert s.pm(p, 5) == [GUARD, NONE, NONE, NONE, NONE]
    assert s.fault(p + 4 * P, write=True) is None


def test_rule_21_exit_with_markers(s):
    """A child that installed guards exits; the parent's pages and guards are its own."""
    p = s.map("anon", 4, at=0)
    s.mm.write(p, b"parent")
    madv(s, p + 3 * P, 1, INSTALL)
    child = s.mm.fork()
    assert child.madvise(p, 2 * P, INSTALL) in (0, None)
    assert s.pm(p, 4, mm=child)[:2] == [GUARD, GUARD]
    child.exit()
    assert s.pm(p, 4) == [ANON, NONE, NONE, GUARD]
    assert s.mm.read(p, 6) == b"parent"
    s.mm.check()


# --- rule 22: splits and merges keep markers ----------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_22_split_into_three_and_merge_back(s, kind):
    """0 1 2 3 4 5 6 7 8 9, guards everywhere:
        [RO   ][RW      ][RO   ]   after mprotect of 0-2 and 7-9
        [RW                    ]   after mprotect back (one VMA again)"""
    p = s.map(kind, 10, at=0)
    madv(s, p, 10, INSTALL)
    count = s.mm.map_count
    s.mm.mprotect(p, 3 * P, PROT_READ)
    s.mm.mprotect(p + 7 * P, 3 * P, PROT_READ)
    assert s.mm.map_count == count + 2
    assert s.pm(p, 10) == [GUARD] * 10
    assert all(s.fault(p + i * P)[1] == SEGV_MAPERR for i in range(10))
    s.mm.mprotect(p, 10 * P, RW)
    assert s.mm.map_count == count
    assert s.vmas_in(p, p + 10 * P) == [(p, p + 10 * P)]
    assert s.pm(p, 10) == [GUARD] * 10
    madv(s, p, 10, REMOVE)
    assert all(s.fault(p + i * P, write=True) is None for i in range(10))


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_22_partial_munmap_keeps_the_other_markers(s, kind):
    """guard-regions.c test 6's first half, with pagemap."""
    p = s.map(kind, 10, at=0)
    madv(s, p, 10, INSTALL)
    for i in (2, 5, 8):
        s.mm.munmap(p + i * P, P)
    assert len(s.vmas_in(p, p + 10 * P)) == 4
    for i in (0, 1, 3, 4, 6, 7, 9):
        assert s.pm(p + i * P, 1) == [GUARD]
    for i in (2, 5, 8):
        assert s.map(kind, 1, at=i * P, extra=MAP_FIXED, off=i) == p + i * P
    pm = s.pm(p, 10)
    assert [e == GUARD for e in pm] == [i not in (2, 5, 8) for i in range(10)]
    assert len(s.vmas_in(p, p + 10 * P)) == 1


# --- rule 23: mprotect --------------------------------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file")
@pytest.mark.parametrize("prot", [PROT_READ, PROT_EXEC, PROT_READ | PROT_EXEC, RW | PROT_EXEC])
def test_rule_23_guard_faults_under_any_protection(s, kind, prot):
    p = s.map(kind, 3, at=0)
    madv(s, p + P, 1, INSTALL)
    s.mm.mprotect(p, 3 * P, prot)
    assert s.pm(p, 3) == [NONE, GUARD, NONE]
    if prot & PROT_READ:
        assert s.fault(p + P + 1) == (s.fault(p + P)[0], SEGV_MAPERR, p + P + 1)
    assert s.mm.access(p + P, exec=True) is not None
    write = s.fault(p + P, write=True)
    assert write[1] == (SEGV_MAPERR if prot & 2 else SEGV_ACCERR)


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_23_prot_none_is_accerr_and_keeps_the_marker(s, kind):
    p = s.map(kind, 3, at=0)
    s.mm.write(p, b"d")
    madv(s, p + P, 1, INSTALL)
    s.mm.mprotect(p, 3 * P, PROT_NONE)
    assert s.fault(p + P) == (s.fault(p + P)[0], SEGV_ACCERR, p + P)
    assert s.fault(p) == (s.fault(p)[0], SEGV_ACCERR, p)
    assert s.pm(p, 3)[1] == GUARD
    s.mm.mprotect(p, 3 * P, RW)
    assert s.fault(p + P)[1] == SEGV_MAPERR
    assert s.mm.read(p, 1) == b"d"


# --- rule 24: mremap ----------------------------------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file")
@pytest.mark.parametrize("fixed", [False, True])
def test_rule_24_move_keeps_marker_offsets(s, kind, fixed):
    p = s.map(kind, 5, at=0)
    s.mm.write(p + 2 * P, b"moved")
    madv(s, p, 1, INSTALL)
    madv(s, p + 4 * P, 1, INSTALL)
    if fixed:
        dst = s.map("anon", 5, PROT_NONE, at=SLOT)
        q = s.mm.mremap(p, 5 * P, 5 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
        assert q == dst
    else:
        s.map("anon", 1, PROT_NONE, at=5 * P)       # block growth in place
        q = s.mm.mremap(p, 5 * P, 8 * P, MREMAP_MAYMOVE)
        assert q != p
    assert s.pm(q, 5) == [GUARD, NONE, s.pm(q + 2 * P, 1)[0], NONE, GUARD]
    assert s.mm.read(q + 2 * P, 5) == b"moved"
    assert s.fault(q)[1] == SEGV_MAPERR and s.fault(q + 4 * P)[1] == SEGV_MAPERR
    assert s.fault(p)[1] == SEGV_MAPERR                 # nothing left at the old place
    assert "gu" in s.vmflags(q)                         # rule 26: the flag moves too
    if not fixed:
        assert s.pm(q + 5 * P, 3) == [NONE] * 3


def test_rule_24_move_a_whole_pte_table_with_markers(s):
    """A 2 MiB-aligned 2 MiB move takes the PTE table along (VmPTE unchanged)."""
    p = s.map("anon", HP, at=0)
    madv(s, p + 7 * P, 1, INSTALL)
    s.mm.write(p, b"t")
    with Delta(s) as d:
        q = s.mm.mremap(p, HP * P, HP * P, MREMAP_MAYMOVE | MREMAP_FIXED, p + 2 * HP * P)
    assert d["VmPTE"] == 0
    assert s.pm(q + 6 * P, 2) == [NONE, GUARD]
    assert s.mm.read(q, 1) == b"t"


def test_rule_24_dontunmap_moves_markers(s):
    p = s.map("anon", 4, at=0)
    s.mm.write(p, b"d")
    madv(s, p + P, 1, INSTALL)
    q = s.mm.mremap(p, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0)
    assert s.pm(q, 4) == [ANON, GUARD, NONE, NONE]
    assert s.pm(p, 4) == [NONE] * 4
    assert s.mm.read(p, 1) == b"\0"                    # the old range is empty now


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_24_grow_in_place_keeps_old_markers(s, kind):
    """guard-regions.c test 10."""
    p = s.map(kind, 10, at=0)
    s.mm.munmap(p + 5 * P, 5 * P)
    madv(s, p, 1, INSTALL)
    madv(s, p + 4 * P, 1, INSTALL)
    assert s.mm.mremap(p, 5 * P, 10 * P, 0) == p
    assert s.pm(p, 10) == [GUARD, NONE, NONE, NONE, GUARD] + [NONE] * 5
    assert all(s.fault(p + i * P) is None for i in range(5, 10))


def test_rule_24_mremap_of_a_guarded_vma_keeps_data_and_gu(s):
    """A faulted anon VMA with guards moved and moved back merges with its other half."""
    p = s.map("anon", 4, at=0)
    s.mm.write(p, bytes(range(256)) * 64)
    madv(s, p + 3 * P, 1, INSTALL)
    q = s.mm.mremap(p + 2 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, p + 8 * P)
    assert s.pm(q, 2) == [ANON, GUARD]
    r = s.mm.mremap(q, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, p + 2 * P)
    assert r == p + 2 * P
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 4 * P)]
    assert s.pm(p, 4) == [ANON, ANON, ANON, GUARD]
    assert s.mm.read(p, 3 * P) == bytes(range(256)) * 48


# --- rule 25: mlock -----------------------------------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_25_munlock_then_install(s, kind):
    """guard-regions.c test 8 with VmLck, smaps Locked and pagemap."""
    p = s.map(kind, 10, at=0)
    s.mm.write(p, b"y" * (10 * P))
    with Delta(s) as d:
        s.mm.mlock(p, 10 * P)
    assert d["VmLck"] == 40
    assert s.smaps(p)["Locked"] == 40
    assert errno_of(s.mm.madvise, p, 10 * P, INSTALL) == EINVAL
    s.mm.munlock(p, 10 * P)
    assert s.smaps(p)["Locked"] == 0
    madv(s, p, 5, INSTALL)
    s.mm.mlock(p + 5 * P, 5 * P)
    assert s.smaps(p + 5 * P)["Locked"] == 20
    madv(s, p, 10, REMOVE)
    assert s.pm(p, 5) == [NONE] * 5
    assert s.mm.read(p + 5 * P, 1) == b"y"
    expect = b"\0" if kind == "anon" else b"y"
    assert s.mm.read(p, 1) == expect
