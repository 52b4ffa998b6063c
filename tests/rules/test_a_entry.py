"""Rules 1-6 (§1.A): madvise() entry checks, the VMA walk, VMA validity, mseal, and that
guard operations neither split nor merge VMAs."""
import pytest

from ptengine.constants import (F_SEAL_WRITE, MADV_DONTNEED, MADV_GUARD_INSTALL,
                                MADV_GUARD_REMOVE, MAP_ANONYMOUS, MAP_DROPPABLE, MAP_LOCKED,
                                MAP_SHARED, MCL_FUTURE, MCL_ONFAULT, MFD_ALLOW_SEALING,
                                MLOCK_ONFAULT,
                                PROT_EXEC, PROT_NONE, PROT_READ, VM_MAYBE_GUARD)

from .conftest import (EACCES, EINVAL, ENOMEM, EPERM, GUARD, NONE, P, RW, ZERO, errno_of)

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
UNMAPPED = 0x500000000000


# --- rule 1: unknown advice is EINVAL, checked first -------------------------------------
@pytest.mark.parametrize("advice", [26, 99, 104, 0xFFFF, 1 << 31])
def test_rule_01_unknown_advice_einval_before_anything(s, advice):
    p = s.map("anon", 2)
    assert errno_of(s.mm.madvise, p, P, advice) == EINVAL
    # Checked before alignment, the len-0 shortcut and the VMA walk.
    assert errno_of(s.mm.madvise, p + 1, P, advice) == EINVAL
    assert errno_of(s.mm.madvise, UNMAPPED, 0, advice) == EINVAL
    assert errno_of(s.mm.madvise, UNMAPPED, P, advice) == EINVAL
    assert s.pm(p, 2) == [NONE, NONE]


# --- rule 2: alignment, rounding, overflow, len 0 -----------------------------------------
@pytest.mark.parametrize("advice", [INSTALL, REMOVE])
def test_rule_02_unaligned_start_einval(s, advice):
    p = s.map("anon", 2)
    assert errno_of(s.mm.madvise, p + 1, P, advice) == EINVAL
    assert errno_of(s.mm.madvise, p + 1, 0, advice) == EINVAL
    assert s.pm(p, 2) == [NONE, NONE]


def test_rule_02_len_rounded_up_to_pages(s):
    p = s.map("anon", 3)
    assert s.mm.madvise(p, 1, INSTALL) in (0, None)
    assert s.pm(p, 3) == [GUARD, NONE, NONE]
    assert s.mm.madvise(p + P, P + 1, INSTALL) in (0, None)
    assert s.pm(p, 3) == [GUARD, GUARD, GUARD]
    assert s.mm.madvise(p, 2 * P - 1, REMOVE) in (0, None)
    assert s.pm(p, 3) == [NONE, NONE, GUARD]


@pytest.mark.parametrize("length", [(1 << 64) - 1, (1 << 64) - P, (1 << 64) - 2 * P])
@pytest.mark.parametrize("advice", [INSTALL, REMOVE])
def test_rule_02_overflowing_length_einval(s, advice, length):
    p = s.map("anon", 2)
    assert errno_of(s.mm.madvise, p, length, advice) == EINVAL
    assert s.pm(p, 2) == [NONE, NONE]


@pytest.mark.parametrize("advice", [INSTALL, REMOVE])
def test_rule_02_len_zero_returns_0_even_unmapped(s, advice):
    p = s.map("anon", 1)
    assert s.mm.madvise(UNMAPPED, 0, advice) in (0, None)
    assert s.mm.madvise(p, 0, advice) in (0, None)
    assert s.pm(p, 1) == [NONE]
    assert not s.mm.find_vma(p).flags & VM_MAYBE_GUARD
    assert "gu" not in s.vmflags(p)


# --- rule 3: the walk over VMAs and holes -------------------------------------------------
def test_rule_03_hole_does_not_stop_the_walk(s):
    """[A 2P][hole][B 2P][hole][C 2P]: every VMA is guarded, then ENOMEM."""
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, at=3 * P)
    c = s.map("anon", 2, at=6 * P)
    assert errno_of(s.mm.madvise, a, 8 * P, INSTALL) == ENOMEM
    assert s.pm(a, 8) == [GUARD, GUARD, NONE, GUARD, GUARD, NONE, GUARD, GUARD]
    assert all("gu" in s.vmflags(x) for x in (a, b, c))
    # REMOVE behaves alike: ENOMEM, with every VMA done.
    assert errno_of(s.mm.madvise, a, 8 * P, REMOVE) == ENOMEM
    assert s.pm(a, 8) == [NONE] * 8


def test_rule_03_range_starting_and_ending_in_holes(s):
    b = s.map("anon", 2, at=2 * P)
    assert errno_of(s.mm.madvise, b - 2 * P, 6 * P, INSTALL) == ENOMEM
    assert s.pm(b, 2) == [GUARD, GUARD]


@pytest.mark.parametrize("advice", [INSTALL, REMOVE])
def test_rule_03_no_vma_at_all_enomem(s, advice):
    assert errno_of(s.mm.madvise, UNMAPPED, 4 * P, advice) == ENOMEM


def test_rule_03_first_per_vma_error_stops_the_walk(s):
    """[A][B locked][C]: A is guarded, B refuses (EINVAL), C is never reached."""
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, PROT_READ, at=2 * P)      # different prot: separate VMAs
    c = s.map("anon", 2, at=4 * P)
    assert s.mm.mlock(b, 2 * P) in (0, None)
    assert len(s.vmas_in(a, a + 6 * P)) == 3
    assert errno_of(s.mm.madvise, a, 6 * P, INSTALL) == EINVAL
    assert s.pm(a, 2) == [GUARD, GUARD]
    assert s.pm(c, 2) == [NONE, NONE]
    assert "gu" in s.vmflags(a)
    assert "gu" not in s.vmflags(b)
    assert "gu" not in s.vmflags(c)


def test_rule_03_error_after_a_hole_wins_over_enomem(s):
    """[A][hole][B locked]: the hole is remembered, but B's EINVAL is what returns."""
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, at=3 * P)
    assert s.mm.mlock(b, 2 * P) in (0, None)
    assert errno_of(s.mm.madvise, a, 5 * P, INSTALL) == EINVAL
    assert s.pm(a, 2) == [GUARD, GUARD]


# --- rule 4: VMA validity -----------------------------------------------------------------
@pytest.mark.parametrize("lock", ["mlock", "mlock2_onfault", "map_locked"])
def test_rule_04_install_refuses_locked_vma_remove_allows_it(s, lock):
    if lock == "map_locked":
        p = s.map("anon", 4, extra=MAP_LOCKED)
    else:
        p = s.map("anon", 4)
        s.mm.mlock(p, 4 * P, MLOCK_ONFAULT if lock == "mlock2_onfault" else 0)
    assert "lo" in s.vmflags(p)
    assert errno_of(s.mm.madvise, p, 4 * P, INSTALL) == EINVAL
    assert errno_of(s.mm.madvise, p + P, P, INSTALL) == EINVAL
    assert "gu" not in s.vmflags(p)        # rule 26: no flag when the validity check fails
    assert GUARD not in s.pm(p, 4)
    assert s.mm.madvise(p, 4 * P, REMOVE) in (0, None)


def test_rule_04_mlockall_future_mappings_refuse_install(s):
    for flags in (MCL_FUTURE, MCL_FUTURE | MCL_ONFAULT):
        assert s.mm.mlockall(flags) in (0, None)
        p = s.map("anon", 2)
        assert "lo" in s.vmflags(p)
        assert errno_of(s.mm.madvise, p, 2 * P, INSTALL) == EINVAL
        assert s.mm.madvise(p, 2 * P, REMOVE) in (0, None)
        assert s.mm.munlockall() in (0, None)
        # munlockall cleared VM_LOCKED: now it works (rule 25).
        assert s.mm.madvise(p, 2 * P, INSTALL) in (0, None)
        assert s.pm(p, 2) == [GUARD, GUARD]


@pytest.mark.parametrize("prot", [PROT_NONE, PROT_READ, PROT_EXEC, PROT_READ | PROT_EXEC])
@pytest.mark.parametrize("kind", ["anon", "shared_anon", "shmem", "file", "file_private"])
def test_rule_04_no_protection_check(s, kind, prot):
    p = s.map(kind, 3, prot)
    assert s.mm.madvise(p + P, P, INSTALL) in (0, None)
    assert s.pm(p, 3) == [NONE, GUARD, NONE]
    assert s.mm.madvise(p, 3 * P, REMOVE) in (0, None)
    assert s.pm(p, 3) == [NONE, NONE, NONE]


def test_rule_04_readonly_file_and_write_sealed_memfd(s):
    ro = s.file("file").reopen(readonly=True)
    p = s.mm.mmap(0, 4 * P, PROT_READ, MAP_SHARED, ro, 0)
    assert "mw" not in s.vmflags(p)
    assert s.mm.madvise(p, 2 * P, INSTALL) in (0, None)
    assert s.pm(p, 2) == [GUARD, GUARD]

    m = s.system.memfd_create("sealed", MFD_ALLOW_SEALING)
    m.truncate(4 * P)
    m.add_seals(F_SEAL_WRITE)
    q = s.mm.mmap(0, 4 * P, PROT_READ, MAP_SHARED, m, 0)
    assert s.mm.madvise(q, 4 * P, INSTALL) in (0, None)
    assert s.pm(q, 4) == [GUARD] * 4
    assert s.mm.madvise(q, 4 * P, REMOVE) in (0, None)
    assert s.fault(q) is None


def test_rule_04_droppable_mapping_accepts_guards(s):
    p = s.mm.mmap(0, 4 * P, RW, MAP_DROPPABLE | MAP_ANONYMOUS, None, 0)
    assert s.mm.madvise(p, P, INSTALL) in (0, None)
    assert s.pm(p, 2) == [GUARD, NONE]


# --- rule 5: mseal ------------------------------------------------------------------------
def test_rule_05_sealed_readonly_private_anon_install_eperm(s):
    p = s.map("anon", 4, PROT_READ)
    s.mm.read(p, 1)                        # a zero page, so there is something to keep
    assert s.mm.mseal(p, 4 * P) in (0, None)
    assert errno_of(s.mm.madvise, p, 4 * P, INSTALL) == EPERM
    assert s.pm(p, 2) == [ZERO, NONE]
    assert "gu" not in s.vmflags(p)
    assert s.mm.madvise(p, 4 * P, REMOVE) in (0, None)   # never blocked


@pytest.mark.parametrize("kind,prot", [("anon", RW), ("file_private", PROT_READ),
                                       ("file", PROT_READ), ("shmem", PROT_READ),
                                       ("shared_anon", PROT_READ)])
def test_rule_05_sealed_writable_or_file_vmas_allow_install(s, kind, prot):
    p = s.map(kind, 4, prot)
    assert s.mm.mseal(p, 4 * P) in (0, None)
    assert s.mm.madvise(p, 2 * P, INSTALL) in (0, None)
    assert s.pm(p, 3) == [GUARD, GUARD, NONE]
    assert s.mm.madvise(p, 4 * P, REMOVE) in (0, None)
    assert s.pm(p, 3) == [NONE, NONE, NONE]


def test_rule_05_seal_check_precedes_validity_check(s):
    """A sealed, locked, read-only anon VMA: EPERM, not the lock's EINVAL."""
    p = s.map("anon", 2, PROT_READ)
    assert s.mm.mlock(p, 2 * P) in (0, None)
    assert s.mm.mseal(p, 2 * P) in (0, None)
    assert errno_of(s.mm.madvise, p, 2 * P, INSTALL) == EPERM


def test_rule_05_seal_is_checked_per_vma(s):
    """[A rw][B sealed ro]: A has been guarded by the time B refuses."""
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, PROT_READ, at=2 * P)
    assert s.mm.mseal(b, 2 * P) in (0, None)
    assert errno_of(s.mm.madvise, a, 4 * P, INSTALL) == EPERM
    assert s.pm(a, 4) == [GUARD, GUARD, NONE, NONE]


# --- rule 6: no split, no merge -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["anon", "shmem", "file"])
def test_rule_06_guard_ops_never_split_or_merge(s, kind):
    p = s.map(kind, 10, at=0)
    count = s.mm.map_count
    assert s.mm.madvise(p + 3 * P, 2 * P, INSTALL) in (0, None)
    assert s.mm.map_count == count
    assert s.vmas_in(p, p + 10 * P) == [(p, p + 10 * P)]
    assert "gu" in s.vmflags(p) and "gu" in s.vmflags(p + 9 * P)
    assert s.mm.madvise(p + 4 * P, P, REMOVE) in (0, None)
    assert s.mm.map_count == count
    assert s.vmas_in(p, p + 10 * P) == [(p, p + 10 * P)]
    assert s.pm(p + 2 * P, 4) == [NONE, GUARD, NONE, NONE]
    # DONTNEED (for contrast) does not split either; guards are not touched by it.
    s.mm.madvise(p, 10 * P, MADV_DONTNEED)
    assert s.mm.map_count == count


def test_rule_04_memfd_seals_and_guards(s):
    """Guards need no write access, and a guarded shared mapping still counts as a
    writable mapping for F_SEAL_WRITE (EBUSY) as long as it has VM_MAYWRITE."""
    from ptengine.constants import F_SEAL_FUTURE_WRITE, PROT_WRITE
    m = s.system.memfd_create("seals", MFD_ALLOW_SEALING)
    m.truncate(4 * P)
    m.pwrite(0, b"s" * (4 * P))
    p = s.mm.mmap(0, 4 * P, PROT_READ, MAP_SHARED, m, 0)
    assert s.mm.madvise(p + P, P, INSTALL) in (0, None)
    assert errno_of(m.add_seals, F_SEAL_WRITE) == 16                    # EBUSY
    s.mm.munmap(p, 4 * P)
    m.add_seals(F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
    assert errno_of(s.mm.mmap, 0, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0) == EPERM
    q = s.mm.mmap(0, 4 * P, PROT_READ, MAP_SHARED, m, 0)
    assert "mw" not in s.vmflags(q)
    assert s.mm.madvise(q, 2 * P, INSTALL) in (0, None)
    assert s.fault(q)[1] == 1 and s.fault(q + 2 * P) is None
    assert s.fault(q + 2 * P, write=True)[1] == 2                        # ACCERR
    assert s.mm.madvise(q, 4 * P, REMOVE) in (0, None)
    assert s.mm.read(q, 1) == b"s"
    assert errno_of(s.mm.mprotect, q, P, PROT_READ | PROT_WRITE) == EACCES
    # A private mapping of the sealed memfd is writable (COW) and guardable.
    r = s.mm.mmap(0, 2 * P, PROT_READ | PROT_WRITE, 2, m, 0)
    s.mm.write(r, b"p")
    assert s.mm.madvise(r, P, INSTALL) in (0, None)
    assert s.mm.madvise(r, P, REMOVE) in (0, None)
    assert s.mm.read(r, 1) == b"s"
