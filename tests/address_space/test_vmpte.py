"""Page-table bytes (VmPTE) on both backends, after sequences of faults, guard installs,
DONTNEED, munmap, mremap and fork (notes/kernel-probes.md §5).

VmPTE counts 4 kB per PTE, PMD and PUD table. Every scenario works in its own empty
512 GiB slot (one PGD entry) far above the live server's mappings, so the first fault
there costs exactly PUD + PMD + PTE = 12 kB and every delta is the scenario's own.
A scenario returns the VmPTE delta of each step; the expectation is the kernel's.
"""
import pytest

from ptengine.constants import (MADV_COLLAPSE, MADV_DONTFORK, MADV_DONTNEED, MADV_FREE,
                                MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE,
                                MADV_PAGEOUT, MADV_REMOVE, MADV_WIPEONFORK,
                                MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, MREMAP_DONTUNMAP,
                                MREMAP_FIXED, MREMAP_MAYMOVE, PROT_NONE, PROT_READ)

from .conftest import ANON, FAR, GiB, MiB, P, RW, SLOT, vmpte

PMD = 2 * MiB
SHANON = MAP_SHARED | 0x20
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED


class Slot:
    """An empty 512 GiB slot: mappings at byte offsets from its base, and VmPTE deltas."""

    def __init__(self, env, index):
        self.env, self.mm = env, env.mm
        self.base = FAR + index * SLOT
        self.last = vmpte(self.mm)
        self._file = None

    @property
    def file(self):
        if self._file is None:
            self._file = self.env.system.create_file("vmpte.bin", 4 * PMD)
        return self._file

    def map(self, off, length, prot=RW, flags=ANON, fd=None, foff=0):
        addr = self.mm.mmap(self.base + off, length, prot, flags | MAP_FIXED_NOREPLACE, fd, foff)
        assert addr == self.base + off
        return addr

    def touch(self, off, write=True, length=1):
        self.mm.touch(self.base + off, length, write=write)

    def advise(self, off, length, advice):
        self.mm.madvise(self.base + off, length, advice)

    def unmap(self, off, length):
        self.mm.munmap(self.base + off, length)

    def delta(self):
        """VmPTE (kB) gained since the last call."""
        now = vmpte(self.mm)
        d, self.last = now - self.last, now
        return d


def first_faults(s):
    s.map(0, 2 * PMD)
    steps = [s.delta()]                                   # mmap allocates nothing
    s.touch(0)
    steps.append(s.delta())                               # PUD + PMD + PTE
    s.touch(P)
    steps.append(s.delta())                               # same PTE table
    s.touch(PMD)
    steps.append(s.delta())                               # next 2 MiB: a PTE table
    s.map(GiB, PMD), s.touch(GiB)
    steps.append(s.delta())                               # next 1 GiB: PMD + PTE
    return steps


def read_fault(s):
    s.map(0, PMD), s.touch(0, write=False)                # the zero page needs tables too
    return [s.delta()]


def guard_install_and_reclaim(s):
    s.map(0, PMD)
    s.advise(0, P, MADV_GUARD_INSTALL)
    steps = [s.delta()]
    s.advise(0, P, MADV_GUARD_REMOVE)
    steps.append(s.delta())                               # the empty table stays
    s.advise(0, PMD, MADV_DONTNEED)
    steps.append(s.delta())                               # PT_RECLAIM frees it
    return steps


def guard_in_prot_none(s):
    s.map(0, PMD, PROT_NONE), s.advise(0, P, MADV_GUARD_INSTALL)
    return [s.delta()]


def dontneed_reclaim_rules(s):
    """PT_RECLAIM frees a PTE table only when DONTNEED covers its whole 2 MiB and leaves
    it empty (a guard marker keeps it)."""
    s.map(0, PMD), s.touch(0), s.touch(P)
    s.delta()
    s.advise(0, PMD, MADV_DONTNEED)
    steps = [s.delta()]                                   # whole table: freed
    s.touch(0)
    steps.append(s.delta())
    s.advise(0, P, MADV_DONTNEED)
    steps.append(s.delta())                               # empty, but range < 2 MiB
    s.touch(5 * P)
    s.advise(0, 4 * P, MADV_DONTNEED)
    steps.append(s.delta())
    s.advise(0, P, MADV_GUARD_INSTALL)
    s.advise(0, PMD, MADV_DONTNEED)
    steps.append(s.delta())                               # a marker keeps it
    # A VMA that does not cover the table's 2 MiB: nothing freed.
    s.map(GiB + P, PMD - P), s.touch(GiB + P)
    s.delta()
    s.advise(GiB + P, PMD - P, MADV_DONTNEED)
    steps.append(s.delta())
    # Unaligned range over two tables, page at +1 MiB: neither table covered.
    s.map(2 * GiB, 2 * PMD), s.touch(2 * GiB + MiB)
    s.delta()
    s.advise(2 * GiB + MiB, PMD, MADV_DONTNEED)
    steps.append(s.delta())
    # FREE and PAGEOUT never free tables.
    s.map(3 * GiB, PMD), s.touch(3 * GiB)
    s.delta()
    s.advise(3 * GiB, PMD, MADV_FREE)
    steps.append(s.delta())
    s.touch(3 * GiB)
    s.advise(3 * GiB, PMD, MADV_PAGEOUT)
    steps.append(s.delta())
    return steps


def dontneed_shared(s):
    s.map(0, PMD, RW, MAP_SHARED, s.file), s.touch(0)
    s.delta()
    s.advise(0, PMD, MADV_DONTNEED)
    steps = [s.delta()]
    s.map(GiB, PMD, RW, SHANON), s.touch(GiB)
    s.delta()
    s.advise(GiB, PMD, MADV_DONTNEED)
    steps.append(s.delta())
    s.touch(GiB)
    s.delta()
    s.advise(GiB, PMD, MADV_REMOVE)
    steps.append(s.delta())                               # REMOVE never frees tables
    return steps


def munmap_alone(s):
    s.map(0, PMD), s.touch(0)
    s.delta()
    s.unmap(0, PMD)
    return [s.delta()]


def munmap_neighbour(where):
    def scenario(s):
        s.map(0, 4 * P), s.map(where, P)                  # an untouched neighbour
        s.touch(0)
        s.delta()
        s.unmap(0, 4 * P)
        return [s.delta()]
    return scenario


def munmap_pieces(s):
    s.map(PMD - P, 2 * P), s.touch(PMD - P), s.touch(PMD)   # straddles a 2 MiB boundary
    s.delta()
    s.unmap(PMD - P, 2 * P)
    steps = [s.delta()]
    s.map(0, 4 * P), s.touch(0), s.touch(3 * P)
    s.delta()
    s.unmap(0, P)
    steps.append(s.delta())                               # the VMA is still there
    s.unmap(3 * P, P)
    steps.append(s.delta())
    s.unmap(P, 2 * P)
    steps.append(s.delta())
    s.map(0, 4 * P), s.touch(0), s.advise(P, P, MADV_GUARD_INSTALL)
    s.delta()
    s.unmap(0, 4 * P)
    steps.append(s.delta())                               # markers do not keep tables
    return steps


def mremap_moves(s):
    mm, b = s.mm, s.base
    s.map(0, PMD), s.touch(0)
    s.delta()
    assert mm.mremap(b, PMD, PMD, MOVE, b + 2 * PMD) == b + 2 * PMD
    steps = [s.delta()]                                   # the PTE table moves
    assert mm.mremap(b + 2 * PMD, PMD, PMD, MOVE, b + 2 * GiB) == b + 2 * GiB
    steps.append(s.delta())                               # new PMD table, old one freed
    s.map(8 * PMD, 4 * P), s.touch(8 * PMD), s.touch(8 * PMD + P)
    s.delta()
    assert mm.mremap(b + 8 * PMD, 4 * P, 4 * P, MOVE, b + 10 * PMD + P) == b + 10 * PMD + P
    steps.append(s.delta())
    assert mm.mremap(b + 2 * GiB, PMD, PMD, MOVE, b + 2 * GiB + 2 * PMD + P) == \
        b + 2 * GiB + 2 * PMD + P
    steps.append(s.delta())                               # unaligned: new PTE tables
    s.map(GiB, PMD), s.touch(GiB)
    s.delta()
    assert mm.mremap(b + GiB, PMD, PMD, MOVE | MREMAP_DONTUNMAP, b + GiB + 2 * PMD) == \
        b + GiB + 2 * PMD
    steps.append(s.delta())
    assert mm.mremap(b + GiB + 2 * PMD, PMD, MiB) == b + GiB + 2 * PMD
    steps.append(s.delta())
    assert mm.mremap(b + GiB + 2 * PMD, MiB, PMD) == b + GiB + 2 * PMD
    steps.append(s.delta())
    return steps


def thp(s):
    s.map(0, 2 * PMD), s.advise(0, 2 * PMD, MADV_HUGEPAGE), s.touch(0)
    steps = [s.delta()]                                   # PMD leaf, PTE table deposited
    assert s.mm.status().get("AnonHugePages", 2048) == 2048
    s.advise(P, P, MADV_DONTNEED)
    steps.append(s.delta())                               # split: the deposit is used
    s.advise(0, PMD, MADV_DONTNEED)
    steps.append(s.delta())
    s.touch(PMD)
    steps.append(s.delta())
    s.unmap(PMD, PMD)
    steps.append(s.delta())
    return steps


def collapse(s):
    s.map(0, PMD), s.touch(0, length=PMD)
    s.delta()
    s.advise(0, PMD, MADV_COLLAPSE)
    steps = [s.delta()]
    s.map(GiB, PMD), s.touch(GiB)
    s.delta()
    s.advise(GiB, PMD, MADV_COLLAPSE)
    steps.append(s.delta())
    s.map(2 * GiB, PMD), s.touch(2 * GiB), s.advise(2 * GiB + P, P, MADV_GUARD_INSTALL)
    s.delta()
    with pytest.raises(OSError) as e:
        s.advise(2 * GiB, PMD, MADV_COLLAPSE)
    assert e.value.errno == 22
    steps.append(s.delta())
    return steps


SCENARIOS = [
    ("first faults", first_faults, [0, 12, 0, 4, 8]),
    ("read fault", read_fault, [12]),
    ("guard install, remove, reclaim", guard_install_and_reclaim, [12, 0, -4]),
    ("guard in PROT_NONE", guard_in_prot_none, [12]),
    ("DONTNEED reclaim rules", dontneed_reclaim_rules, [-4, 4, 0, 0, 0, 0, 0, 0, 0]),
    ("DONTNEED shared file/anon, REMOVE", dontneed_shared, [-4, -4, 0]),
    ("munmap the only VMA", munmap_alone, [-12]),
    ("munmap, neighbour in the same 2 MiB", munmap_neighbour(8 * P), [0]),
    ("munmap, neighbour in the next 2 MiB", munmap_neighbour(PMD), [-4]),
    ("munmap, neighbour in the next 1 GiB", munmap_neighbour(GiB), [-8]),
    ("munmap pieces", munmap_pieces, [-16, 0, 0, -12, -12]),
    ("mremap moves", mremap_moves, [0, 0, 0, 4, 0, 0, 0]),
    ("THP", thp, [12, 0, -4, 4, -4]),
    ("MADV_COLLAPSE", collapse, [0, 0, 0]),
]


@pytest.mark.parametrize("scenario, expected", [pytest.param(f, e, id=n) for n, f, e in SCENARIOS])
def test_vmpte(env, scenario, expected):
    assert scenario(Slot(env, 0)) == expected


# --- fork ------------------------------------------------------------------------------------

def _fork_kind(kind):
    """Set up one slot of the given kind, fork, and return the tables the child holds for
    it (its VmPTE drop when the slot is unmapped there) - 12 if fork copied them, else 0."""
    def run(s):
        mm = s.mm
        if kind.startswith("shared anon"):
            s.map(0, PMD, RW, SHANON)
        elif kind == "shared file":
            s.map(0, PMD, RW, MAP_SHARED, s.file)
        elif kind.startswith("private file"):
            s.map(0, PMD, RW if "RW" in kind else PROT_READ, MAP_PRIVATE, s.file)
        else:
            s.map(0, PMD)
        if "WIPEONFORK" in kind:
            s.advise(0, PMD, MADV_WIPEONFORK)
        if "DONTFORK" in kind:
            s.advise(0, PMD, MADV_DONTFORK)
        if "guard marker only" not in kind:
            s.touch(0, write=not ("read" in kind or kind == "private file R"))
        if "guard" in kind:
            s.advise(P, P, MADV_GUARD_INSTALL)
        child = mm.fork()
        try:
            before = vmpte(child)
            child.munmap(s.base, PMD)
            return before - vmpte(child)
        finally:
            child.exit()
    return run


FORKS = [
    ("private anon written", 12),
    ("private anon read (zero page)", 0),
    ("private anon guard marker only", 12),
    ("shared anon", 0),
    ("shared anon + guard", 12),
    ("WIPEONFORK", 0),
    ("WIPEONFORK + guard", 0),
    ("DONTFORK", 0),
    ("shared file", 0),
    ("private file R", 0),
    ("private file RW written", 12),
]


@pytest.mark.parametrize("kind, expected", FORKS, ids=[k for k, _ in FORKS])
def test_fork_copies_tables(env, kind, expected):
    """fork copies page tables only for VMAs with an anon_vma or VM_MAYBE_GUARD, never for
    WIPEONFORK (nor DONTFORK, which the child does not get)."""
    assert _fork_kind(kind)(Slot(env, 0)) == expected
