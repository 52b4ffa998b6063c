"""Guard markers over whole, 2 MiB-aligned PMD spans, on both backends: VmPTE, access and
pagemap after install, remove, partial remove, fork, mremap and munmap.

The simulator stores a PTE table that holds 512 guard markers (or, after a remove, 512
none entries) as one canonical shared table; these scenarios prove that what a process
sees - VmPTE, SIGSEGV on access, PM_GUARD_REGION - is still what the kernel shows for
one table per 2 MiB. Every scenario works in an empty 512 GiB slot (one PGD entry), so
the first table there costs PUD + PMD + PTE and every VmPTE delta is the scenario's own.
"""
import signal

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_FIXED_NOREPLACE,
                                MAP_NORESERVE, MREMAP_FIXED, MREMAP_MAYMOVE, PM_GUARD_REGION)

from .conftest import ANON, FAR, GiB, MiB, P, RW, vmpte

PMD = 2 * MiB
SPANS = 4                               # the guarded region: 4 whole PMD spans, 8 MiB


class Spans:
    """A RW anonymous reservation of SPANS PMD spans at the start of an empty slot, with
    guard markers over all of it, and VmPTE deltas from just before."""

    def __init__(self, env, base=FAR):
        self.env, self.mm, self.base = env, env.mm, base
        self.last = vmpte(self.mm)
        assert self.mm.mmap(base, SPANS * PMD, RW, ANON | MAP_NORESERVE | MAP_FIXED_NOREPLACE) \
            == base
        self.mm.madvise(base, SPANS * PMD, MADV_GUARD_INSTALL)

    def delta(self):
        now = vmpte(self.mm)
        d, self.last = now - self.last, now
        return d

    def guarded(self, addr, npages):
        """Per page: (access gives SIGSEGV, pagemap has PM_GUARD_REGION)."""
        bits = [bool(int(e) & PM_GUARD_REGION) for e in self.mm.pagemap(addr, npages * P)]
        faults = [self.mm.access(addr + i * P) == signal.SIGSEGV for i in range(npages)]
        return list(zip(faults, bits))


def probes(s, base=None):
    """Pages worth looking at in each span: both ends and one inside."""
    base = s.base if base is None else base
    return [base + k * PMD + off for k in range(SPANS) for off in (0, 17 * P, PMD - P)]


def all_guarded(s, base=None):
    return all(s.guarded(a, 1) == [(True, True)] for a in probes(s, base))


def test_install_whole_spans(env):
    s = Spans(env)
    assert s.delta() == 4 + 4 + 4 * SPANS          # PUD + PMD + one PTE table per span
    assert all_guarded(s)


def test_remove_whole_spans_keeps_the_tables(env):
    s = Spans(env)
    s.delta()
    s.mm.madvise(s.base, SPANS * PMD, MADV_GUARD_REMOVE)
    assert s.delta() == 0                          # the emptied tables stay
    assert not any(f or b for a in probes(s) for f, b in s.guarded(a, 1))
    s.mm.madvise(s.base, SPANS * PMD, MADV_GUARD_INSTALL)
    assert s.delta() == 0
    assert all_guarded(s)


def test_partial_remove(env):
    s = Spans(env)
    s.delta()
    hole = s.base + PMD + 100 * P                  # three pages inside the second span
    s.mm.madvise(hole, 3 * P, MADV_GUARD_REMOVE)
    assert s.delta() == 0
    assert s.guarded(hole - P, 5) == [(True, True)] + [(False, False)] * 3 + [(True, True)]
    s.mm.write(hole, b"data")                      # a page of its own in that table
    assert s.mm.read(hole, 4) == b"data"
    assert s.delta() == 0
    # The rest of the span and the other spans keep their guards.
    assert all_guarded(s)
    s.mm.madvise(hole, 3 * P, MADV_GUARD_INSTALL)  # the page is zapped, then guarded
    assert s.guarded(hole, 3) == [(True, True)] * 3
    assert s.delta() == 0
    s.mm.madvise(hole, 3 * P, MADV_GUARD_REMOVE)
    assert s.mm.read(hole, 4) == bytes(4)


def test_fork_copies_whole_spans(env):
    s = Spans(env)
    s.delta()
    child = s.mm.fork()
    try:
        before = vmpte(child)
        assert all(child.access(a) == signal.SIGSEGV for a in probes(s))
        assert all(int(e) & PM_GUARD_REGION for e in child.pagemap(s.base, SPANS * PMD))
        # The child's guards are its own: removing them leaves the parent's.
        child.madvise(s.base, PMD, MADV_GUARD_REMOVE)
        assert child.access(s.base) is None and child.access(s.base + PMD) == signal.SIGSEGV
        assert all_guarded(s)
        child.munmap(s.base, SPANS * PMD)
        assert before - vmpte(child) == 4 + 4 + 4 * SPANS   # fork copied every table
    finally:
        child.exit()


def test_mremap_moves_whole_spans(env):
    s = Spans(env)
    s.delta()
    new = s.base + GiB                             # PMD-aligned, in the next PMD table
    assert s.mm.mremap(s.base, SPANS * PMD, SPANS * PMD, MREMAP_MAYMOVE | MREMAP_FIXED,
                       new) == new
    # move_normal_pmd(): the PTE tables change hands; the destination gains a PMD table
    # and the source's, empty now, is freed with the old range.
    assert s.delta() == 0
    assert all_guarded(s, new)
    assert not any(int(e) & PM_GUARD_REGION for e in s.mm.pagemap(new - P, P))
    s.mm.munmap(new, SPANS * PMD)
    assert s.delta() == -(4 + 4 + 4 * SPANS)       # PTE tables, the PMD and the PUD table


def test_munmap_whole_and_partial_spans(env):
    s = Spans(env)
    s.delta()
    s.mm.munmap(s.base + PMD, PMD)                 # one whole span in the middle
    assert s.delta() == -4
    s.mm.munmap(s.base + 2 * PMD, P)               # one page: its table stays
    assert s.delta() == 0
    assert s.guarded(s.base + 2 * PMD + P, 1) == [(True, True)]
    assert s.mm.access(s.base) == signal.SIGSEGV
    s.mm.munmap(s.base, SPANS * PMD)
    assert s.delta() == -(4 + 4 + 4 * (SPANS - 1))


def test_wasm_reservation_of_8_gib(env):
    """An 8 GiB PROT_NONE reservation full of guard markers, as wasm runtimes make:
    VmPTE is 4,096 PTE tables (16 MiB) + 8 PMD tables + the PUD table on both backends;
    the simulator holds them in under 1 MiB (host memory exists only there)."""
    mm, size = env.mm, 8 * GiB
    before = vmpte(mm)
    assert mm.mmap(FAR, size, 0, ANON | MAP_NORESERVE | MAP_FIXED_NOREPLACE) == FAR
    mm.madvise(FAR, size, MADV_GUARD_INSTALL)
    assert vmpte(mm) - before == 4 * (size // PMD + 8 + 1)
    assert mm.access(FAR + 5 * GiB + 123 * P) == signal.SIGSEGV
    if env.backend == "ptengine":
        pt = mm.pt
        assert pt.nr_shared_pte_tables >= size // PMD
        assert pt.host_table_bytes < 1 * MiB
        pt.check()
