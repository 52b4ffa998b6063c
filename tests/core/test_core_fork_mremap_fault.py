"""copy_range (fork), move_range (mremap), fault_anon and change_prot."""
import pytest

from ptengine import core as _core
from .conftest import BASE, PAGE, PMD, PROT_PRIVATE, PTE_RW_PAGE, PUD
from .test_core_guards_zap import anon_page, kinds

P = PAGE
RW, DIRTY, ACC = _core.PTE_RW, _core.PTE_DIRTY, _core.PTE_ACCESSED
COW, UFFD, SHARED = _core.COPY_COW, _core.COPY_UFFD_WP, _core.COPY_SHARED


# --- copy_range ------------------------------------------------------------------------
def test_fork_cow_write_protects_both_sides(pt, pt2, frames):
    pfn = anon_page(pt, frames, BASE)
    assert pt.copy_range(pt2, BASE, BASE + 4 * P, COW) == 1
    parent, child = pt.get_pte(BASE), pt2.get_pte(BASE)
    assert parent == (pfn << 12) | (PTE_RW_PAGE & ~RW)
    assert child == parent & ~ACC               # the child's copy is old
    assert (frames.refcount(pfn), frames.mapcount(pfn)) == (2, 2)
    assert pt2.rss_anon == 1
    assert (pt2.nr_pud_tables, pt2.nr_pmd_tables, pt2.nr_pte_tables) == (1, 1, 1)


def test_fork_without_cow_keeps_rw_and_shared_cleans(pt, pt2, frames):
    pfn = frames.alloc(_core.FRAME_SHMEM)
    pt.map_page(BASE, pfn, PTE_RW_PAGE)
    pt.copy_range(pt2, BASE, BASE + P, SHARED)
    assert pt.get_pte(BASE) & (RW | DIRTY) == RW | DIRTY
    assert pt2.get_pte(BASE) & (RW | DIRTY | ACC) == RW
    assert pt2.rss_shmem == 1 and frames.refcount(pfn) == 3
    frames.put(pfn)


def test_fork_markers(pt, pt2):
    pt.install_guards(BASE, BASE + P)
    pt.set_marker(BASE + P, _core.PTE_MARKER_POISONED)
    pt.set_marker(BASE + 2 * P, _core.PTE_MARKER_UFFD_WP)
    pt.set_marker(BASE + 3 * P, _core.PTE_MARKER_UFFD_WP | _core.PTE_MARKER_GUARD)
    assert pt.copy_range(pt2, BASE, BASE + 4 * P, COW) == 3
    assert kinds(pt2, BASE, 3) == "GX."
    assert pt2.lookup(BASE + 3 * P)[1] == _core.PTE_MARKER_GUARD
    pt2.zap(BASE, BASE + 4 * P, _core.ZAP_DROP_MARKERS)
    assert pt.copy_range(pt2, BASE, BASE + 4 * P, COW | UFFD) == 4
    assert kinds(pt2, BASE, 3) == "GXU"
    # a REMOVE in the child leaves the parent alone
    pt2.remove_guards(BASE, BASE + 4 * P)
    assert kinds(pt, BASE, 3) == "GXU"


def test_fork_clears_pte_uffd_bit_unless_registered(pt, pt2, frames):
    anon_page(pt, frames, BASE, PTE_RW_PAGE | _core.PTE_UFFD_WP)
    pt.copy_range(pt2, BASE, BASE + P)
    assert not pt2.get_pte(BASE) & _core.PTE_UFFD_WP
    pt2.zap(BASE, BASE + P)
    pt.copy_range(pt2, BASE, BASE + P, UFFD)
    assert pt2.get_pte(BASE) & _core.PTE_UFFD_WP


def test_fork_zero_page_and_swap(pt, pt2, frames):
    pt.map_page(BASE, frames.zero_pfn, PROT_PRIVATE | _core.PTE_SPECIAL)
    pt.set_swap(BASE + P, 2, 9, _core.SWP_UFFD_WP)
    assert pt.copy_range(pt2, BASE, BASE + 2 * P, COW) == 2
    assert pt2.lookup(BASE)[:2] == (_core.ENTRY_PRESENT, frames.zero_pfn)
    assert pt2.rss_anon == 0 and pt2.swap_ents == 1
    assert pt2.get_pte(BASE + P) == _core.make_swap_pte(2, 9)


def test_fork_allocates_child_tables_where_the_parent_has_them(pt, pt2):
    # Parent has tables (emptied) over [BASE, BASE+2M) and [BASE+1G, +2M).
    pt.install_guards(BASE, BASE + P)
    pt.install_guards(BASE + PUD, BASE + PUD + P)
    pt.zap(BASE, BASE + 2 * PUD, _core.ZAP_DROP_MARKERS)
    assert pt.copy_range(pt2, BASE, BASE + 2 * PUD) == 0
    assert (pt2.nr_pud_tables, pt2.nr_pmd_tables, pt2.nr_pte_tables) == (1, 2, 2)


def test_fork_huge_pmd(pt, pt2, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    assert pt.copy_range(pt2, BASE, BASE + PMD, COW) == 512
    assert pt2.rss_anon == 512 and pt2.nr_pte_tables == 1     # deposit
    assert frames.refcount(head + 100) == 2
    assert not pt.get_pmd(BASE) & RW and not pt2.get_pmd(BASE) & RW
    # file THPs are left to refault in the child
    fhead = frames.alloc_huge(_core.FRAME_FILE)
    pt.map_huge_pmd(BASE + PMD, fhead, PROT_PRIVATE)
    assert pt.copy_range(pt2, BASE + PMD, BASE + 2 * PMD) == 0
    assert pt2.get_pmd(BASE + PMD) == 0
    pt.zap(BASE + PMD, BASE + 2 * PMD)
    frames.put_huge(fhead)


def test_fork_refuses_bad_targets(pt, pt2, frames):
    pt.install_guards(BASE, BASE + P)
    pt2.install_guards(BASE, BASE + P)
    with pytest.raises(ValueError):
        pt.copy_range(pt2, BASE, BASE + P)          # child range not empty
    with pytest.raises(ValueError):
        pt.copy_range(pt, BASE, BASE + P)
    with pytest.raises(ValueError):
        pt.copy_range(_core.PageTables(_core.Frames()), BASE, BASE + P)
    with pytest.raises(TypeError):
        pt.copy_range(object(), BASE, BASE + P)
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE + PMD, head, PTE_RW_PAGE)
    frames.put_huge(head)
    with pytest.raises(ValueError):
        pt.copy_range(pt2, BASE + PMD + P, BASE + 2 * PMD)   # straddles a huge PMD


# --- move_range ------------------------------------------------------------------------
def test_move_whole_pte_table(pt, frames):
    pfn = anon_page(pt, frames, BASE + 3 * P)
    pt.install_guards(BASE + 5 * P, BASE + 6 * P)
    pmd_before = pt.get_pmd(BASE)
    tables = pt.pgtables_bytes
    assert pt.move_range(BASE, BASE + 4 * PMD, PMD) == PMD
    assert pt.get_pmd(BASE) == 0
    assert pt.get_pmd(BASE + 4 * PMD) == pmd_before          # the same table moved
    assert pt.pgtables_bytes == tables
    # moved as a table: entries are untouched (no soft-dirty added)
    assert pt.get_pte(BASE + 4 * PMD + 5 * P) == _core.GUARD_PTE
    assert pt.lookup(BASE + 4 * PMD + 3 * P)[1] == pfn and pt.rss_anon == 1


def test_move_whole_pmd_table(pt, frames):
    anon_page(pt, frames, BASE + PMD + 3 * P)
    pud_table_entry = pt.get_pmd(BASE + PMD)     # PTE table pointer, moves along
    assert pt.move_range(BASE, BASE + 3 * PUD, PUD) == PUD
    assert pt.get_pmd(BASE + 3 * PUD + PMD) == pud_table_entry
    assert (pt.nr_pud_tables, pt.nr_pmd_tables, pt.nr_pte_tables) == (1, 1, 1)
    assert pt.count(BASE, BASE + PUD)["present"] == 0
    assert pt.count(BASE + 3 * PUD, BASE + 4 * PUD)["present"] == 1


def test_move_unaligned_moves_entries(pt, frames):
    pfn = anon_page(pt, frames, BASE)
    pt.install_guards(BASE + P, BASE + 2 * P)
    pt.move_range(BASE, BASE + PMD + 7 * P, 2 * P)
    assert pt.get_pte(BASE) == 0 and pt.get_pte(BASE + P) == 0
    moved = pt.get_pte(BASE + PMD + 7 * P)
    assert moved >> 12 & ((1 << 40) - 1) == pfn and moved & _core.PTE_SOFT_DIRTY
    assert pt.get_pte(BASE + PMD + 8 * P) == _core.GUARD_PTE | _core.SWP_SOFT_DIRTY
    assert pt.nr_pte_tables == 2                 # source table stays for free_pgtables


def test_move_aligned_but_destination_has_a_table(pt, frames):
    anon_page(pt, frames, BASE)
    pt.install_guards(BASE + 4 * PMD, BASE + 4 * PMD + P)
    pt.zap(BASE + 4 * PMD, BASE + 5 * PMD, _core.ZAP_DROP_MARKERS)   # empty table remains
    assert pt.get_pmd(BASE + 4 * PMD) != 0
    src_table = pt.get_pmd(BASE)
    pt.move_range(BASE, BASE + 4 * PMD, PMD)
    assert pt.get_pmd(BASE) == src_table                    # moved PTE by PTE instead:
    assert pt.get_pmd(BASE + 4 * PMD) != src_table          # the source table stays
    assert pt.nr_pte_tables == 2
    assert pt.lookup(BASE + 4 * PMD)[0] == _core.ENTRY_PRESENT


def test_move_huge_pmd_and_partial_split(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    pt.move_range(BASE, BASE + 2 * PMD, PMD)
    assert pt.get_pmd(BASE + 2 * PMD) == (head << 12) | PTE_RW_PAGE | _core.PTE_PSE | \
        _core.PTE_SOFT_DIRTY
    pt.move_range(BASE + 2 * PMD, BASE + 6 * PMD + P, 4 * P)   # splits, moves 4 PTEs
    assert pt.lookup(BASE + 6 * PMD + 4 * P)[:2] == (_core.ENTRY_PRESENT, head + 3)
    assert pt.count(BASE + 2 * PMD, BASE + 3 * PMD)["present"] == 508
    assert pt.rss_anon == 512


def test_move_refuses_overlap_and_busy_destination(pt):
    pt.install_guards(BASE, BASE + 4 * P)
    with pytest.raises(ValueError):
        pt.move_range(BASE, BASE + 2 * P, 4 * P)
    with pytest.raises(ValueError):
        pt.move_range(BASE + 2 * P, BASE + 8 * P, 8 * P)   # destination holds guards


# --- fault_anon ------------------------------------------------------------------------
def test_read_fault_maps_zero_page_then_write_replaces_it(pt, frames):
    assert pt.fault_anon(BASE, BASE + 4 * P, False, PROT_PRIVATE) == BASE + 4 * P
    z = pt.get_pte(BASE)
    assert z == (frames.zero_pfn << 12) | PROT_PRIVATE | _core.PTE_SPECIAL
    assert pt.rss_anon == 0 and frames.nr_used == 0
    assert pt.fault_anon(BASE, BASE + 2 * P, True, PROT_PRIVATE) == BASE + 2 * P
    e = pt.get_pte(BASE)
    assert e & ~_core.PTE_PFN_MASK == PROT_PRIVATE | RW | DIRTY | ACC | _core.PTE_SOFT_DIRTY
    assert pt.rss_anon == 2 and frames.nr_used == 2
    assert kinds(pt, BASE, 4) == "ppzz"


def test_write_fault_after_fork_stops_for_cow_and_reuses_exclusive(pt, pt2, frames):
    pt.fault_anon(BASE, BASE + 2 * P, True, PROT_PRIVATE)
    pt.copy_range(pt2, BASE, BASE + 2 * P, COW)
    assert pt.fault_anon(BASE, BASE + 2 * P, True, PROT_PRIVATE) == BASE     # shared
    assert pt.fault_anon(BASE, BASE + 2 * P, False, PROT_PRIVATE) == BASE + 2 * P
    pt2.zap(BASE, BASE + P)                         # the child lets go of page 0
    assert pt.fault_anon(BASE, BASE + 2 * P, True, PROT_PRIVATE) == BASE + P
    assert pt.get_pte(BASE) & RW                    # reused in place


@pytest.mark.parametrize("setup", ["guard", "protnone", "file", "swap"])
def test_fault_stops_where_python_must_decide(pt, frames, setup):
    at = BASE + 2 * P
    if setup == "guard":
        pt.install_guards(at, at + P)
    elif setup == "protnone":
        anon_page(pt, frames, at, _core.PTE_PROTNONE | _core.PTE_USER)
    elif setup == "swap":
        pt.set_swap(at, 0, 1)
    else:
        pfn = frames.alloc(_core.FRAME_FILE)
        pt.map_page(at, pfn, PROT_PRIVATE)
        frames.put(pfn)
    assert pt.fault_anon(BASE, BASE + 4 * P, True, PROT_PRIVATE) == at
    assert pt.count(BASE, at)["present"] == 2 and pt.get_pte(at + P) == 0


def test_fault_touch_marks_accessed_and_dirty(pt, pt2, frames):
    pt.fault_anon(BASE, BASE + P, True, PROT_PRIVATE)
    pt.copy_range(pt2, BASE, BASE + P)              # no COW: child keeps RW, made old
    assert not pt2.get_pte(BASE) & ACC
    pt2.fault_anon(BASE, BASE + P, False, PROT_PRIVATE)
    assert not pt2.get_pte(BASE) & ACC
    pt2.fault_anon(BASE, BASE + P, False, PROT_PRIVATE, touch=True)
    assert pt2.get_pte(BASE) & ACC


def test_fault_on_huge_pmd(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PROT_PRIVATE)       # read-only, exclusive
    frames.put_huge(head)
    assert pt.fault_anon(BASE, BASE + PMD + P, False, PROT_PRIVATE) == BASE + PMD + P
    assert pt.fault_anon(BASE, BASE + PMD, True, PROT_PRIVATE) == BASE + PMD
    assert pt.get_pmd(BASE) & RW


# --- change_prot -----------------------------------------------------------------------
def test_change_prot_write_protect_and_prot_none(pt, frames):
    anon_page(pt, frames, BASE)
    pt.install_guards(BASE + P, BASE + 2 * P)
    assert pt.change_prot(BASE, BASE + 2 * P, 0, RW) == 1
    assert not pt.get_pte(BASE) & RW
    assert pt.get_pte(BASE + P) == _core.GUARD_PTE            # markers untouched
    pp = _core.PTE_PRESENT | _core.PTE_PROTNONE
    assert pt.change_prot(BASE, BASE + 2 * P, _core.PTE_PROTNONE, pp) == 1
    assert pt.lookup(BASE)[0] == _core.ENTRY_PROTNONE
    assert pt.change_prot(BASE, BASE + 2 * P, _core.PTE_PRESENT | RW, pp | RW) == 1
    assert pt.lookup(BASE)[0] == _core.ENTRY_PRESENT and pt.get_pte(BASE) & RW
    assert pt.change_prot(BASE, BASE + 2 * P, _core.PTE_PRESENT | RW, pp | RW) == 0


def test_change_prot_rejects_bad_masks(pt):
    with pytest.raises(ValueError):
        pt.change_prot(BASE, BASE + P, 0, _core.PTE_PFN_MASK)
    with pytest.raises(ValueError):
        pt.change_prot(BASE, BASE + P, 0, _core.PTE_PRESENT)       # would make swap junk
    with pytest.raises(ValueError):
        pt.change_prot(BASE, BASE + P, 0, _core.PTE_PRESENT | _core.PTE_PROTNONE)


def test_change_prot_splits_partly_covered_huge_pmd(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    assert pt.change_prot(BASE, BASE + 3 * P, _core.PTE_NX * 0, RW) == 3
    assert pt.count(BASE, BASE + PMD)["present"] == 512
    assert not pt.get_pte(BASE + 2 * P) & RW and pt.get_pte(BASE + 3 * P) & RW
    assert pt.change_prot(BASE + PMD, BASE + 2 * PMD, 0, RW) == 0
