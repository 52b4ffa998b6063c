"""Table allocation, the VmPTE counters, and free_pgtables() reproducing the kernel's
free_pgd_range() rounding (mm/memory.c) case by case.

Addresses: BASE = 0x7f0000000000 is 512 GiB aligned, so it begins a PUD table's span
(512 GiB), a PMD table's span (1 GiB) and a PTE table's span (2 MiB)."""
import pytest

from ptengine import core as _core
from .conftest import BASE, PAGE, PGDIR, PMD, PUD

DROP = _core.ZAP_DROP_MARKERS


def tables(pt):
    return pt.nr_pud_tables, pt.nr_pmd_tables, pt.nr_pte_tables


def test_fresh_tables_count_nothing(pt):
    # The PGD is always there and is not part of mm_pgtables_bytes.
    assert pt.pgtables_bytes == 0 and tables(pt) == (0, 0, 0)


def test_one_guard_costs_three_tables(pt):
    assert pt.install_guards(BASE, BASE + PAGE) == BASE + PAGE
    assert tables(pt) == (1, 1, 1)
    assert pt.pgtables_bytes == 12 * 1024


@pytest.mark.parametrize("second, expect", [
    (BASE + 511 * PAGE, (1, 1, 1)),      # same PTE table
    (BASE + PMD, (1, 1, 2)),             # next PMD entry: a second PTE table
    (BASE + PUD, (1, 2, 2)),             # next PUD entry: a PMD table and a PTE table
    (BASE + PGDIR, (2, 2, 2)),           # next PGD entry: one of each
])
def test_table_sharing(pt, second, expect):
    pt.install_guards(BASE, BASE + PAGE)
    pt.install_guards(second, second + PAGE)
    assert tables(pt) == expect
    assert pt.pgtables_bytes == 4096 * sum(expect)


def test_range_across_boundaries_allocates_every_table(pt):
    start, end = BASE + PUD - PMD - PAGE, BASE + PUD + PAGE
    pt.install_guards(start, end)
    # PTE tables for [PUD-2M-4K, PUD-2M), [PUD-2M, PUD), [PUD, PUD+4K); two PMD tables.
    assert tables(pt) == (1, 2, 3)
    assert pt.count(start, end)["guard"] == (end - start) // PAGE


def test_remove_never_allocates(pt):
    assert pt.remove_guards(BASE, BASE + PUD) == 0
    assert tables(pt) == (0, 0, 0)


def guard_and_drop(pt, start, end):
    """A VMA [start, end) that had guards and was unmapped: tables left, entries none."""
    pt.install_guards(start, end)
    pt.zap(start, end, DROP)


# free_pgd_range(addr, end, floor, ceiling) cases. X = BASE; the VMA is [start, end);
# floor is the previous VMA's end (0: none), ceiling the next VMA's start (0: none).
FREE_CASES = [
    # id, (start, end), floor, ceiling, tables left (pud, pmd, pte)
    ("alone: everything goes", (BASE, BASE + PAGE), 0, 0, (0, 0, 0)),
    ("floor in the same PMD keeps the PTE table: addr rounds up past end",
     (BASE + PAGE, BASE + 2 * PAGE), BASE + PAGE, 0, (1, 1, 1)),
    ("ceiling in the same PMD keeps it: end rounds down below addr",
     (BASE, BASE + PAGE), 0, BASE + 2 * PAGE, (1, 1, 1)),
    ("ceiling in the next PMD: PTE table goes, PMD table (1 GiB) stays",
     (BASE, BASE + PAGE), 0, BASE + PMD + PAGE, (1, 1, 0)),
    ("ceiling in the next PUD entry: PTE and PMD tables go, PUD table stays",
     (BASE, BASE + PAGE), 0, BASE + PUD, (1, 0, 0)),
    ("ceiling 512 GiB on: all go", (BASE, BASE + PAGE), 0, BASE + PGDIR, (0, 0, 0)),
    ("floor in an earlier PMD of the same 1 GiB: PMD table stays",
     (BASE + PMD, BASE + PMD + PAGE), BASE + PAGE, 0, (1, 1, 0)),
    ("floor exactly at the PMD-table span start: the PMD table goes too",
     (BASE + PMD, BASE + PMD + PAGE), BASE, 0, (0, 0, 0)),
]


@pytest.mark.parametrize("name, rng, floor, ceiling, left", FREE_CASES,
                         ids=[c[0] for c in FREE_CASES])
def test_free_pgtables_rounding(pt, name, rng, floor, ceiling, left):
    guard_and_drop(pt, *rng)
    pt.free_pgtables(rng[0], rng[1], floor, ceiling)
    assert tables(pt) == left


def test_floor_inside_first_pmd_frees_only_later_pte_tables(pt):
    # VMA [X+4K, X+4M) after a VMA ending at X+4K: the first PTE table is shared.
    guard_and_drop(pt, BASE + PAGE, BASE + 2 * PMD)
    assert tables(pt) == (1, 1, 2)
    pt.free_pgtables(BASE + PAGE, BASE + 2 * PMD, BASE + PAGE, 0)
    assert tables(pt) == (1, 1, 1)
    assert pt.get_pmd(BASE) & _core.PTE_PRESENT and pt.get_pmd(BASE + PMD) == 0


def test_end_rounded_down_by_ceiling(pt):
    # VMA [X, X+2M+4K) before a VMA at X+2M+8K: the last PTE table is the next VMA's too.
    guard_and_drop(pt, BASE, BASE + PMD + PAGE)
    pt.free_pgtables(BASE, BASE + PMD + PAGE, 0, BASE + PMD + 2 * PAGE)
    assert tables(pt) == (1, 1, 1)
    assert pt.get_pmd(BASE) == 0 and pt.get_pmd(BASE + PMD) & _core.PTE_PRESENT


def test_several_pte_tables_and_unrelated_tables(pt):
    guard_and_drop(pt, BASE, BASE + 2 * PMD + PAGE)          # three PTE tables
    pt.install_guards(BASE + PUD, BASE + PUD + PAGE)           # another 1 GiB: stays
    assert tables(pt) == (1, 2, 4)
    pt.free_pgtables(BASE, BASE + 2 * PMD + PAGE, 0, BASE + PUD)
    assert tables(pt) == (1, 1, 1)
    assert pt.count(BASE + PUD, BASE + PUD + PAGE)["guard"] == 1


def test_leftover_entry_is_refused_and_nothing_freed(pt):
    pt.install_guards(BASE, BASE + 2 * PAGE)
    pt.zap(BASE, BASE + PAGE, DROP)
    with pytest.raises(ValueError, match=hex(BASE + PAGE)):
        pt.free_pgtables(BASE, BASE + PAGE, 0, 0)
    assert tables(pt) == (1, 1, 1)
    # A leftover outside the freed PTE tables but inside a freed PMD table also counts.
    pt.install_guards(BASE + PMD, BASE + PMD + PAGE)
    pt.zap(BASE, BASE + 2 * PAGE, DROP)
    with pytest.raises(ValueError):
        pt.free_pgtables(BASE, BASE + PAGE, 0, 0)
    assert tables(pt) == (1, 1, 2)
    pt.free_pgtables(BASE, BASE + PAGE, 0, BASE + PMD)        # PTE table only: fine
    assert tables(pt) == (1, 1, 1)


def test_free_pgtables_refuses_a_huge_pmd(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, _core.PTE_PRESENT | _core.PTE_USER)
    frames.put_huge(head)
    with pytest.raises(ValueError):
        pt.free_pgtables(BASE, BASE + PMD, 0, 0)
    pt.zap(BASE, BASE + PMD, DROP)
    pt.free_pgtables(BASE, BASE + PMD, 0, 0)
    assert pt.pgtables_bytes == 0
