"""Rules 26-29 (§1.G): VM_MAYBE_GUARD ("gu"): set on every INSTALL call, never cleared,
copied on split, fork and mremap, sticky on merge, and what makes fork copy page tables."""
import pytest

from ptengine.constants import (MADV_DONTFORK, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
                                MAP_FIXED, MLOCK_ONFAULT, MREMAP_FIXED, MREMAP_MAYMOVE,
                                PROT_READ, VM_MAYBE_GUARD)

from .conftest import EINVAL, ENOMEM, GUARD, NONE, P, RW, SLOT, Delta, errno_of

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
# The simulator runs the reference profile, whose kernel has VM_MAYBE_GUARD.
pytestmark = pytest.mark.host_profile("maybe_guard")


def madv(s, addr, npages, advice, mm=None):
    assert (mm or s.mm).madvise(addr, npages * P, advice) in (0, None)


# --- rule 26 ------------------------------------------------------------------------------
@pytest.mark.kinds("anon", "shared_anon", "shmem", "file", "file_private")
def test_rule_26_set_on_the_whole_vma_never_cleared(s, kind):
    p = s.map(kind, 10, at=0)
    assert "gu" not in s.vmflags(p)
    madv(s, p + 9 * P, 1, INSTALL)
    assert "gu" in s.vmflags(p)
    assert s.mm.find_vma(p).flags & VM_MAYBE_GUARD
    madv(s, p, 10, REMOVE)
    assert "gu" in s.vmflags(p)
    assert s.pm(p + 9 * P, 1) == [NONE]


def test_rule_26_set_even_when_the_call_fails_with_enomem(s):
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, PROT_READ, at=3 * P)
    assert errno_of(s.mm.madvise, a, 5 * P, INSTALL) == ENOMEM
    assert "gu" in s.vmflags(a) and "gu" in s.vmflags(b)


def test_rule_26_not_set_when_the_vma_is_invalid(s):
    p = s.map("anon", 2)
    s.mm.mlock(p, 2 * P, MLOCK_ONFAULT)
    assert errno_of(s.mm.madvise, p, 2 * P, INSTALL) == EINVAL
    assert "gu" not in s.vmflags(p)


def test_rule_26_copied_by_split_fork_and_mremap(s):
    p = s.map("anon", 6, at=0)
    madv(s, p, 1, INSTALL)
    s.mm.mprotect(p + 2 * P, 2 * P, PROT_READ)        # three VMAs
    assert all("gu" in s.vmflags(p + i * P) for i in (0, 2, 4))
    child = s.mm.fork()
    assert all("gu" in s.vmflags(p + i * P, mm=child) for i in (0, 2, 4))
    q = s.mm.mremap(p + 4 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, p + SLOT)
    assert "gu" in s.vmflags(q)
    child.exit()


# --- rule 27: sticky merges ---------------------------------------------------------------
@pytest.mark.kinds("anon", "file")
def test_rule_27_a_new_mapping_merges_with_a_gu_neighbour(s, kind):
    """[gu 0-1][new 2-3] -> [gu 0-3];  [new 4-5] below a gu VMA at 6-7 -> merged too."""
    p = s.map(kind, 2, at=0)
    madv(s, p, 1, INSTALL)
    q = s.map(kind, 2, at=2 * P, off=2)
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 4 * P)]
    assert "gu" in s.vmflags(q)
    r = s.map(kind, 2, at=6 * P, off=6)
    madv(s, r, 1, INSTALL)
    s.map(kind, 2, at=4 * P, off=4)
    if kind == "anon":      # both neighbours have their own anon_vma: merge with one only
        assert s.vmas_in(p, p + 8 * P) == [(p, p + 6 * P), (p + 6 * P, p + 8 * P)]
    else:
        assert s.vmas_in(p, p + 8 * P) == [(p, p + 8 * P)]
    assert s.pm(p, 8) == [GUARD, NONE, NONE, NONE, NONE, NONE, GUARD, NONE]


def test_rule_27_mprotect_merge_ors_the_flag(s):
    """[RW plain 0-1][R gu 2-3] -> mprotect 2-3 RW -> [RW gu 0-3]."""
    p = s.map("anon", 2, at=0)
    q = s.map("anon", 2, PROT_READ, at=2 * P)
    madv(s, q, 1, INSTALL)
    assert "gu" not in s.vmflags(p)
    s.mm.mprotect(q, 2 * P, RW)
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 4 * P)]
    assert "gu" in s.vmflags(p)
    assert s.pm(p, 4) == [NONE, NONE, GUARD, NONE]


def test_rule_27_filling_a_hole_between_plain_and_gu(s):
    p = s.map("anon", 2, at=0)
    r = s.map("anon", 2, at=3 * P)
    madv(s, r, 1, INSTALL)
    s.map("anon", 1, at=2 * P)
    assert s.vmas_in(p, p + 5 * P) == [(p, p + 5 * P)]
    assert "gu" in s.vmflags(p)


def test_rule_27_flag_difference_other_than_gu_blocks_merge(s):
    p = s.map("anon", 2, at=0)
    madv(s, p, 1, INSTALL)
    madv(s, p, 2, MADV_DONTFORK)
    s.map("anon", 2, at=2 * P)
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 2 * P), (p + 2 * P, p + 4 * P)]
    assert "gu" not in s.vmflags(p + 2 * P)


# --- rule 28: fork copies page tables of gu VMAs -----------------------------------------
@pytest.mark.kinds("shared_anon", "shmem", "file", "anon")
def test_rule_28_fork_copies_tables_of_guarded_vmas(s, kind):
    p = s.map(kind, 4, at=0)
    s.mm.write(p, b"f")
    madv(s, p + 2 * P, 1, INSTALL)
    child = s.mm.fork()
    assert s.pm(p + 2 * P, 1, mm=child) == [GUARD]
    # The data page is copied for anon (COW) and shared mappings alike.
    assert s.pm(p, 1, mm=child)[0] & (1 << 63)
    assert s.fault(p + 2 * P, mm=child)[0].name == "SIGSEGV"
    assert child.read(p, 1) == b"f"
    child.exit()


@pytest.mark.kinds("shared_anon", "shmem", "file")
def test_rule_28_fork_does_not_copy_unguarded_shared_tables(s, kind):
    p = s.map(kind, 4, at=0)
    s.mm.write(p, b"f")
    child = s.mm.fork()
    assert s.pm(p, 1, mm=child) == [NONE]          # refaulted on demand
    assert child.read(p, 1) == b"f"
    child.exit()


def test_rule_28_child_vmpte_matches(s):
    """Measured per slot (notes §5): a guard-only anon slot and a shared anon slot with
    a guard both cost the child 12 kB of tables; a shared anon slot without a guard 0."""
    a = s.map("anon", 4, at=0)
    madv(s, a, 1, INSTALL)
    b = s.map("shared_anon", 4, at=SLOT)
    s.mm.write(b, b"x")
    madv(s, b + P, 1, INSTALL)
    c = s.map("shared_anon", 4, at=2 * SLOT)
    s.mm.write(c, b"x")
    child = s.mm.fork()
    with Delta(s, child) as d:
        child.munmap(a, 4 * P)
    assert d["VmPTE"] == -12
    with Delta(s, child) as d:
        child.munmap(b, 4 * P)
    assert d["VmPTE"] == -12
    with Delta(s, child) as d:
        child.munmap(c, 4 * P)
    assert d["VmPTE"] == 0
    child.exit()


# --- rule 29: smaps shows gu in bit order -------------------------------------------------
@pytest.mark.parametrize("setup,flags", [
    ("anon", "rd wr mr mw me gu ac"),
    ("anon_ro", "rd mr mw me gu"),
    ("shared_anon", "rd wr sh mr mw me ms gu"),
    ("file", "rd wr sh mr mw me ms gu"),
    ("locked_onfault", "rd wr mr mw me gu lo lf ac"),
    ("dontfork_wipe", "rd wr mr mw me gu dc ac wf"),
])
def test_rule_29_vmflags_order(s, setup, flags):
    kind = {"anon_ro": "anon", "locked_onfault": "anon", "dontfork_wipe": "anon"}.get(
        setup, setup)
    p = s.map(kind, 2, PROT_READ if setup == "anon_ro" else RW)
    madv(s, p, 1, INSTALL)
    if setup == "locked_onfault":
        s.mm.mlock(p, 2 * P, MLOCK_ONFAULT)
    if setup == "dontfork_wipe":
        madv(s, p, 2, MADV_DONTFORK)
        madv(s, p, 2, 18)                   # MADV_WIPEONFORK
    assert " ".join(s.vmflags(p)) == flags
    line = next(l for l in s.mm.smaps().splitlines()
                if l.startswith("VmFlags:") and " gu " in l)
    assert line.endswith(" ")               # every mnemonic is followed by a space


def test_rule_29_maps_never_shows_markers(s):
    p = s.map("anon", 3, at=0)
    before = s.mm.maps()
    madv(s, p + P, 1, INSTALL)
    assert s.mm.maps() == before
    assert s.map("anon", 1, at=3 * P, extra=MAP_FIXED)
