"""Guard install/remove and zap, as mm/madvise.c and mm/memory.c decide per entry."""
import pytest

from ptengine import core as _core
from .conftest import BASE, PAGE, PMD, PROT_PRIVATE, PTE_RW_PAGE

DROP, KEEP_UFFD, RECLAIM, KEEP_COWS = (_core.ZAP_DROP_MARKERS, _core.ZAP_KEEP_UFFD_WP,
                                       _core.ZAP_RECLAIM_PT, _core.ZAP_KEEP_COWS)
P = PAGE


def kinds(pt, start, npages):
    """One letter per page: . none, G guard, X poison, U uffd-wp marker, S swap,
    p present, n PROT_NONE, z zero page."""
    out = []
    for i in range(npages):
        kind, val, raw = pt.lookup(start + i * P)
        if kind == _core.ENTRY_MARKER:
            out.append({4: "G", 2: "X", 1: "U"}.get(val, "?"))
        elif kind == _core.ENTRY_PRESENT:
            out.append("z" if val == 1 else "p")
        else:
            out.append({_core.ENTRY_NONE: ".", _core.ENTRY_PROTNONE: "n",
                        _core.ENTRY_SWAP: "S", _core.ENTRY_HUGE: "H"}[kind])
    return "".join(out)


def anon_page(pt, frames, addr, flags=PTE_RW_PAGE):
    pfn = frames.alloc(_core.FRAME_ANON)
    pt.map_page(addr, pfn, flags)
    frames.put(pfn)              # the mapping now holds the only reference
    return pfn


# --- install ---------------------------------------------------------------------------
def test_install_guards_everything_and_is_idempotent(pt):
    assert pt.install_guards(BASE, BASE + 8 * P) == BASE + 8 * P
    assert kinds(pt, BASE, 8) == "GGGGGGGG"
    assert pt.install_guards(BASE + 2 * P, BASE + 10 * P) == BASE + 10 * P
    assert kinds(pt, BASE, 10) == "G" * 10


@pytest.mark.parametrize("blocker", ["present", "zero", "protnone", "swap", "poison", "uffd"])
def test_install_stops_at_first_other_entry(pt, frames, blocker):
    at = BASE + 5 * P
    if blocker == "present":
        anon_page(pt, frames, at)
    elif blocker == "zero":
        pt.map_page(at, frames.zero_pfn, PROT_PRIVATE | _core.PTE_SPECIAL)
    elif blocker == "protnone":
        anon_page(pt, frames, at, _core.PTE_PROTNONE | _core.PTE_USER)
    elif blocker == "swap":
        pt.set_swap(at, 0, 77)
    else:
        pt.set_marker(at, {"poison": 2, "uffd": 1}[blocker])
    before = kinds(pt, at, 1)
    assert pt.install_guards(BASE, BASE + 10 * P) == at
    # markers written before the stop stay; nothing at or after it changes
    assert kinds(pt, BASE, 10) == "GGGGG" + before + "...."


def test_install_counts_guard_with_extra_bits_as_done(pt):
    pt.set_marker(BASE + P, _core.PTE_MARKER_GUARD | _core.PTE_MARKER_POISONED)
    assert pt.install_guards(BASE, BASE + 3 * P) == BASE + 3 * P
    assert pt.lookup(BASE + P)[1] == 6


def test_install_stops_at_huge_pmd(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE + PMD, head, PTE_RW_PAGE)
    frames.put_huge(head)
    assert pt.install_guards(BASE + PMD - 2 * P, BASE + PMD + 2 * P) == BASE + PMD
    assert pt.install_guards(BASE + PMD + 8 * P, BASE + PMD + 9 * P) == BASE + PMD + 8 * P
    assert kinds(pt, BASE + PMD - 2 * P, 2) == "GG"


# --- remove ----------------------------------------------------------------------------
def test_remove_clears_only_guards(pt, frames):
    pt.install_guards(BASE, BASE + 4 * P)
    anon_page(pt, frames, BASE + 4 * P)
    pt.set_marker(BASE + 5 * P, _core.PTE_MARKER_POISONED)
    pt.set_marker(BASE + 6 * P, _core.PTE_MARKER_UFFD_WP)
    pt.set_marker(BASE + 7 * P, _core.PTE_MARKER_GUARD | _core.PTE_MARKER_POISONED)
    tables = pt.pgtables_bytes
    assert pt.remove_guards(BASE, BASE + 8 * P) == 5
    assert kinds(pt, BASE, 8) == "....pXUX"
    assert pt.pgtables_bytes == tables          # empty tables are left in place
    assert pt.remove_guards(BASE, BASE + 8 * P) == 0


def test_remove_skips_huge_pmds_and_holes(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    pt.install_guards(BASE + PMD, BASE + PMD + P)
    assert pt.remove_guards(BASE - PMD, BASE + 4 * PMD) == 1
    assert pt.count(BASE, BASE + PMD)["huge_pmd"] == 1


def test_remove_of_a_moved_guard(pt):
    pt.install_guards(BASE, BASE + P)
    pt.move_range(BASE, BASE + 16 * P, P)
    assert pt.get_pte(BASE + 16 * P) == _core.GUARD_PTE | _core.SWP_SOFT_DIRTY
    assert pt.remove_guards(BASE + 16 * P, BASE + 17 * P) == 1
    assert pt.get_pte(BASE + 16 * P) == 0


# --- zap -------------------------------------------------------------------------------
def populate_mix(pt, frames):
    """G X U p S z . at BASE + 0..6 pages."""
    pt.install_guards(BASE, BASE + P)
    pt.set_marker(BASE + P, _core.PTE_MARKER_POISONED)
    pt.set_marker(BASE + 2 * P, _core.PTE_MARKER_UFFD_WP)
    pfn = anon_page(pt, frames, BASE + 3 * P)
    pt.set_swap(BASE + 4 * P, 1, 5)
    pt.map_page(BASE + 5 * P, frames.zero_pfn, PROT_PRIVATE | _core.PTE_SPECIAL)
    return pfn


@pytest.mark.parametrize("flags, left, cleared", [
    (0, "G......", 5),                       # anon DONTNEED: guards stay
    (KEEP_UFFD, "G.U....", 4),               # file VMA: uffd-wp markers stay too
    (DROP, ".......", 6),                    # munmap/exit: every marker goes
    (DROP | KEEP_UFFD, ".......", 6),
    (KEEP_COWS, "GX.pS..", 2),               # truncation: anon pages, swap, poison stay
])
def test_zap_by_entry_kind(pt, frames, flags, left, cleared):
    pfn = populate_mix(pt, frames)
    assert pt.rss_anon == 1 and pt.swap_ents == 1
    assert pt.zap(BASE, BASE + 7 * P, flags) == cleared
    assert kinds(pt, BASE, 7) == left
    if "p" in left:
        assert (pt.rss_anon, frames.mapcount(pfn)) == (1, 1)
    else:
        assert pt.rss_anon == 0 and frames.nr_used == 0
    assert pt.swap_ents == left.count("S")


def test_zap_of_file_pages_marks_them_dirty_and_keeps_them(pt, frames):
    pfn = frames.alloc(_core.FRAME_FILE)          # the page cache's reference
    pt.map_page(BASE, pfn, PROT_PRIVATE | _core.PTE_DIRTY)
    assert (pt.rss_file, frames.refcount(pfn), frames.mapcount(pfn)) == (1, 2, 1)
    assert pt.zap(BASE, BASE + P) == 1
    assert (pt.rss_file, frames.refcount(pfn), frames.mapcount(pfn)) == (0, 1, 0)
    assert frames.is_dirty(pfn)
    frames.put(pfn)


def test_zap_leaves_uffd_marker_for_wp_file_pte(pt, frames):
    pfn = frames.alloc(_core.FRAME_SHMEM)
    pt.map_page(BASE, pfn, PROT_PRIVATE | _core.PTE_UFFD_WP)
    assert pt.rss_shmem == 1
    pt.zap(BASE, BASE + P, KEEP_UFFD)
    assert pt.get_pte(BASE) == _core.UFFD_WP_PTE and pt.rss_shmem == 0
    frames.put(pfn)


def test_reclaim_frees_only_whole_empty_tables(pt, frames):
    # three PTE tables: [0,2M) pages only, [2M,4M) a guard and pages, [4M,6M) pages
    for base in (BASE, BASE + PMD, BASE + 2 * PMD):
        for i in range(3):
            anon_page(pt, frames, base + 100 * P + i * P)
    pt.install_guards(BASE + PMD + 7 * P, BASE + PMD + 8 * P)
    assert pt.nr_pte_tables == 3
    # the zap covers table 0 and 1 wholly, table 2 only partly
    pt.zap(BASE, BASE + 2 * PMD + 200 * P, RECLAIM)
    assert pt.get_pmd(BASE) == 0                         # empty and covered: freed
    assert pt.get_pmd(BASE + PMD) & _core.PTE_PRESENT    # the guard keeps its table
    assert pt.get_pmd(BASE + 2 * PMD) & _core.PTE_PRESENT  # not wholly covered
    assert pt.nr_pte_tables == 2 and pt.rss_anon == 0
    assert kinds(pt, BASE + PMD + 7 * P, 1) == "G"
    # without RECLAIM_PT nothing is freed even when empty
    pt.zap(BASE + 2 * PMD, BASE + 3 * PMD)
    assert pt.nr_pte_tables == 2
    pt.zap(BASE + 2 * PMD, BASE + 3 * PMD, RECLAIM)
    assert pt.nr_pte_tables == 1


# --- huge PMDs -------------------------------------------------------------------------
@pytest.fixture
def thp(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    return head


def test_huge_pmd_accounting(pt, frames, thp):
    assert pt.rss_anon == 512
    # the PMD table, the PUD table and the deposited PTE table of an anon THP
    assert (pt.nr_pud_tables, pt.nr_pmd_tables, pt.nr_pte_tables) == (1, 1, 1)
    assert all(frames.mapcount(thp + i) == 1 for i in range(512))
    assert pt.lookup(BASE + 3 * P) == (_core.ENTRY_HUGE, thp + 3, pt.get_pmd(BASE))
    assert pt.get_pte(BASE + 3 * P) == pt.get_pmd(BASE)


def test_split_keeps_frames_mapped(pt, frames, thp):
    assert pt.split_huge_pmd(BASE + 7 * P)
    assert not pt.split_huge_pmd(BASE)
    assert pt.rss_anon == 512 and pt.nr_pte_tables == 1
    assert pt.lookup(BASE + 7 * P)[:2] == (_core.ENTRY_PRESENT, thp + 7)
    assert pt.get_pte(BASE + 7 * P) & ~_core.PTE_PFN_MASK == PTE_RW_PAGE
    assert pt.count(BASE, BASE + PMD)["present"] == 512


def test_zap_whole_huge_pmd(pt, frames, thp):
    assert pt.zap(BASE, BASE + PMD) == 512
    assert pt.rss_anon == 0 and frames.nr_used == 0
    assert pt.nr_pte_tables == 0        # the deposited table went with it
    assert pt.get_pmd(BASE) == 0


def test_zap_part_of_huge_pmd_splits_it(pt, frames, thp):
    assert pt.zap(BASE + 10 * P, BASE + 12 * P) == 2
    assert pt.rss_anon == 510 and frames.nr_used == 510
    assert kinds(pt, BASE + 9 * P, 4) == "p..p"
    assert pt.nr_pte_tables == 1


def test_split_of_file_thp_unmaps_it(pt, frames):
    head = frames.alloc_huge(_core.FRAME_FILE)     # the page cache keeps its references
    pt.map_huge_pmd(BASE, head, PROT_PRIVATE | _core.PTE_DIRTY)
    assert pt.rss_file == 512 and pt.nr_pte_tables == 0   # no deposit for file THPs
    pt.split_huge_pmd(BASE)
    assert pt.rss_file == 0 and pt.get_pmd(BASE) == 0
    assert frames.mapcount(head) == 0 and frames.is_dirty(head + 511)
    frames.put_huge(head)


def test_map_huge_pmd_needs_an_empty_pmd(pt, frames):
    pt.install_guards(BASE, BASE + P)
    head = frames.alloc_huge(_core.FRAME_ANON)
    with pytest.raises(ValueError):
        pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    with pytest.raises(ValueError):
        pt.map_huge_pmd(BASE + PMD + P, head, PTE_RW_PAGE)
    with pytest.raises(ValueError):
        pt.map_huge_pmd(BASE + PMD, head + 1, PTE_RW_PAGE)
    frames.put_huge(head)


def test_huge_zero_page(pt, pt2, frames):
    """A read fault in a THP VMA maps the huge zero PMD: no RSS, no references, a
    deposited table (12 KiB of tables in an empty mm); splitting it gives 512 PTEs of the
    4 KiB zero page; a write stops for the Python fault path."""
    hz = frames.huge_zero_pfn
    assert hz % 512 == 0 and frames.kind(hz + 7) == _core.FRAME_ZERO
    pt.map_huge_pmd(BASE, hz, PROT_PRIVATE)
    assert (pt.rss_anon, frames.nr_used, pt.pgtables_bytes) == (0, 0, 12 * 1024)
    assert pt.smaps_stats(BASE, BASE + PMD)["rss"] == 0
    assert pt.fault_anon(BASE, BASE + 2 * P, False, PROT_PRIVATE) == BASE + 2 * P
    assert pt.fault_anon(BASE, BASE + 2 * P, True, PROT_PRIVATE) == BASE
    assert pt.copy_range(pt2, BASE, BASE + PMD, _core.COPY_COW) == 512
    assert pt2.nr_pte_tables == 1 and pt2.lookup(BASE + P)[:2] == (_core.ENTRY_HUGE, hz + 1)
    pt2.zap(BASE, BASE + PMD)
    assert pt2.nr_pte_tables == 0
    pt.split_huge_pmd(BASE)
    assert pt.count(BASE, BASE + PMD)["zero_page"] == 512 and pt.nr_pte_tables == 1
    assert pt.get_pte(BASE + 9 * P) == (frames.zero_pfn << 12) | PROT_PRIVATE | \
        _core.PTE_SPECIAL
    with pytest.raises(ValueError):
        pt.map_page(BASE + PMD, hz + 3, PROT_PRIVATE)
    with pytest.raises(ValueError):
        frames.put_huge(hz)
