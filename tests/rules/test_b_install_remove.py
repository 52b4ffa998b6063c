"""Rules 7-11 (§1.B, §1.C): what INSTALL does to populated entries, what it leaves, that it
is idempotent, and that REMOVE clears guard markers and nothing else."""
import signal

import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE,
                                MAP_PRIVATE, PMD_SIZE, PROT_NONE, PROT_READ)
from ptengine.constants import PM_FILE, PM_PRESENT, SEGV_MAPERR

from .conftest import (ANON, CACHE, GUARD, GUARD_FRAME, NONE, P, POISON, POISON_CODE,
                       SLOT, ZERO, Delta, page_byte, pattern)

SIGBUS = signal.SIGBUS

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
HP = PMD_SIZE // P


def madv(s, addr, npages, advice):
    assert s.mm.madvise(addr, npages * P, advice) in (0, None)


# --- rule 7: the install walk -------------------------------------------------------------
def test_rule_07_install_allocates_tables_in_an_empty_slot(s):
    """A first INSTALL in an empty 512 GiB slot allocates PUD + PMD + PTE tables (12 kB),
    even in a PROT_NONE VMA; the markers occupy no frame."""
    p = s.map("anon", 4, at=0)
    q = s.map("anon", 4, PROT_NONE, at=SLOT)
    with Delta(s) as d:
        madv(s, p + P, 1, INSTALL)
    assert (d["VmPTE"], d["RssAnon"]) == (12, 0)
    with Delta(s) as d:
        madv(s, q, 4, INSTALL)
    assert (d["VmPTE"], d["RssAnon"]) == (12, 0)
    assert s.pm(q, 4) == [GUARD] * 4
    assert s.pm_frames(q, 1) == [GUARD_FRAME]


RSS_OF = {"anon": "RssAnon", "file_private": "RssFile", "shmem_private": "RssShmem",
          "shared_anon": "RssShmem", "shmem": "RssShmem", "file": "RssFile"}


@pytest.mark.kinds("anon", "shmem", "file", "file_private", "shared_anon")
def test_rule_07_install_over_populated_entries(s, kind):
    """[page][none][guard][read page][none]: one INSTALL over all of it leaves five guards
    and frees exactly the pages that were mapped there (fault-around may have mapped
    cached neighbours of the read page: they go too, page 5 outside the range stays)."""
    p = s.map(kind, 6, at=0)
    s.mm.write(p, b"A")
    madv(s, p + 2 * P, 1, INSTALL)
    s.mm.read(p + 3 * P, 1)
    before = s.pm(p, 6)
    assert before[2] == GUARD and before[0] & PM_PRESENT and before[3] & PM_PRESENT
    mapped = [e for i, e in enumerate(before[:5]) if e & PM_PRESENT and e != ZERO]
    anon = sum(1 for e in mapped if not e & PM_FILE)
    with Delta(s) as d:
        madv(s, p, 5, INSTALL)
    assert s.pm(p, 6) == [GUARD] * 5 + before[5:]
    assert d["RssAnon"] == -4 * anon
    if kind != "anon":
        assert d[RSS_OF[kind]] == -4 * (len(mapped) - anon)
    assert d["VmPTE"] == 0


def test_rule_07_install_over_poison_replaces_it(s):
    """A poison marker aborts the walk; the zap removes it and the retry installs a guard."""
    p = s.map("anon", 3, at=0)
    assert s.mm.install_poison(p + P, P) in (0, None)
    assert s.fault(p + P + 9) == (SIGBUS, POISON_CODE, p + P + 9)
    assert s.pm(p, 3) == [NONE, POISON, NONE]
    madv(s, p, 3, INSTALL)
    assert s.pm(p, 3) == [GUARD] * 3
    assert s.fault(p + P + 5)[1:] == (SEGV_MAPERR, p + P + 5)


def test_rule_07_install_only_zaps_its_own_range(s):
    p = s.map("anon", 10, at=0)
    s.mm.write(p, pattern(0, 10))
    with Delta(s) as d:
        madv(s, p + 3 * P, 3, INSTALL)
    assert d["RssAnon"] == -12
    assert s.pm(p, 10) == [ANON] * 3 + [GUARD] * 3 + [ANON] * 4
    for i in (0, 1, 2, 6, 7, 8, 9):
        assert s.mm.read(p + i * P, P) == page_byte(i) * P


def thp_at(s, at):
    """A 2 MiB-aligned anonymous MADV_HUGEPAGE VMA of two PMDs, first PMD THP-faulted."""
    p = s.map("anon", 2 * HP, at=at)
    madv(s, p, 2 * HP, MADV_HUGEPAGE)
    s.mm.write(p, b"T")
    s.mm.write(p + 100 * P, b"U")
    assert s.smaps(p)["AnonHugePages"] == 2048
    return p


def test_rule_07_install_in_part_of_a_thp_splits_it(s):
    p = thp_at(s, 0)
    with Delta(s) as d:
        madv(s, p + 7 * P, 1, INSTALL)
    assert s.smaps(p)["AnonHugePages"] == 0
    assert d["RssAnon"] == -4
    assert d["VmPTE"] == 0          # the deposited PTE table is used by the split
    assert s.pm(p + 6 * P, 3) == [ANON, GUARD, ANON]
    assert s.mm.read(p, 1) == b"T" and s.mm.read(p + 100 * P, 1) == b"U"
    assert s.mm.read(p + 8 * P, 1) == b"\0"


def test_rule_07_install_over_a_whole_thp_frees_it(s):
    p = thp_at(s, 0)
    with Delta(s) as d:
        madv(s, p, HP, INSTALL)
    assert d["RssAnon"] == -2048
    assert s.smaps(p)["AnonHugePages"] == 0
    assert s.pm(p, HP) == [GUARD] * HP
    assert d["VmPTE"] == 0


# --- rule 8: the end state ----------------------------------------------------------------
@pytest.mark.kinds("anon", "shared_anon")
def test_rule_08_anon_data_is_gone(s, kind):
    p = s.map(kind, 4)
    s.mm.write(p, pattern(0, 4))
    madv(s, p + P, 2, INSTALL)
    madv(s, p + P, 2, REMOVE)
    expect = [page_byte(0), b"\0", b"\0", page_byte(3)]
    if kind == "shared_anon":       # shmem pages are page cache: only the PTEs went
        expect = [page_byte(i) for i in range(4)]
    assert [s.mm.read(p + i * P, 1) for i in range(4)] == expect


@pytest.mark.kinds("shmem", "file")
def test_rule_08_page_cache_data_is_kept(s, kind):
    p = s.map(kind, 4)
    s.mm.write(p + P, b"NEW")
    madv(s, p, 4, INSTALL)
    f = s.file(kind)
    assert f.pread(P, 3) == b"NEW"
    assert f.pread(2 * P, 1) == page_byte(2)
    madv(s, p, 4, REMOVE)
    assert s.mm.read(p + P, 3) == b"NEW"
    assert s.mm.read(p + 3 * P, 1) == page_byte(3)


@pytest.mark.kinds("shmem_private", "file_private")
def test_rule_08_private_cow_copies_are_gone(s, kind):
    p = s.map(kind, 4)
    s.mm.write(p + P, b"COW")
    assert s.mm.read(p + P, 3) == b"COW"
    assert s.pm(p + P, 1) == [ANON]
    with Delta(s) as d:
        madv(s, p + P, 1, INSTALL)
    assert d["RssAnon"] == -4
    madv(s, p + P, 1, REMOVE)
    assert s.mm.read(p + P, 3) == page_byte(1) * 3      # the file again (rule 11)
    assert s.file(kind.split("_")[0]).pread(P, 3) == page_byte(1) * 3


# --- rule 9: idempotent -------------------------------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_09_reinstall_is_idempotent(s, kind):
    p = s.map(kind, 4, at=0)
    madv(s, p + P, 2, INSTALL)
    with Delta(s) as d:
        for _ in range(3):
            madv(s, p + P, 2, INSTALL)
        madv(s, p, 4, INSTALL)
    assert s.pm(p, 4) == [GUARD] * 4
    assert all(v == 0 for v in d.d.values())


# --- rule 10: REMOVE ----------------------------------------------------------------------
def test_rule_10_remove_touches_only_guards(s):
    """[anon page][guard][poison][zero page][guard][none]: REMOVE the lot."""
    p = s.map("anon", 6, at=0)
    s.mm.write(p, b"keep")
    madv(s, p + P, 1, INSTALL)
    assert s.mm.install_poison(p + 2 * P, P) in (0, None)
    s.mm.read(p + 3 * P, 1)
    madv(s, p + 4 * P, 1, INSTALL)
    with Delta(s) as d:
        madv(s, p, 6, REMOVE)
    assert s.pm(p, 6) == [ANON, NONE, POISON, ZERO, NONE, NONE]
    assert all(v == 0 for v in d.d.values())      # no page freed, no table freed
    assert s.mm.read(p, 4) == b"keep"
    assert s.fault(p + 2 * P) == (SIGBUS, POISON_CODE, p + 2 * P)


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_10_remove_without_guards_is_a_successful_noop(s, kind):
    p = s.map(kind, 4, at=0)
    s.mm.read(p, 1)
    before = s.pm(p, 4)
    with Delta(s) as d:
        madv(s, p, 4, REMOVE)
        madv(s, p, 4, REMOVE)
    assert s.pm(p, 4) == before
    assert all(v == 0 for v in d.d.values())


def test_rule_10_remove_leaves_empty_tables(s):
    p = s.map("anon", 4, at=0)
    with Delta(s) as d:
        madv(s, p, 4, INSTALL)
        madv(s, p, 4, REMOVE)
    assert d["VmPTE"] == 12
    assert s.pm(p, 4) == [NONE] * 4


def test_rule_10_remove_skips_a_huge_pmd(s):
    p = s.map("anon", 2 * HP, at=0)
    madv(s, p, 2 * HP, MADV_HUGEPAGE)
    madv(s, p + HP * P + 3 * P, 1, INSTALL)       # guard in the second PMD first
    s.mm.write(p, b"T")                            # THP in the first
    assert s.smaps(p)["AnonHugePages"] == 2048
    with Delta(s) as d:
        madv(s, p, 2 * HP, REMOVE)
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert all(v == 0 for v in d.d.values())
    assert s.pm(p + HP * P + 2 * P, 3) == [NONE] * 3
    assert s.mm.read(p, 1) == b"T"


# --- rule 11: the access after REMOVE -----------------------------------------------------
def test_rule_11_anon_zero_page_on_read_new_page_on_write(s):
    p = s.map("anon", 2, at=0)
    s.mm.write(p, b"old")
    madv(s, p, 2, INSTALL)
    madv(s, p, 2, REMOVE)
    with Delta(s) as d:
        assert s.mm.read(p, 3) == b"\0\0\0"
    assert s.pm(p, 1) == [ZERO] and d["RssAnon"] == 0
    with Delta(s) as d:
        s.mm.write(p, b"new")
    assert s.pm(p, 1) == [ANON] and d["RssAnon"] == 4
    assert s.mm.read(p, 3) == b"new"


@pytest.mark.kinds("shmem", "file", "shared_anon")
def test_rule_11_shared_mapping_sees_the_page_cache(s, kind):
    p = s.map(kind, 4, at=0)
    if kind == "shared_anon":
        s.mm.write(p, pattern(0, 4))
    madv(s, p, 4, INSTALL)
    madv(s, p, 4, REMOVE)
    rss = "RssFile" if kind == "file" else "RssShmem"
    with Delta(s) as d:
        assert s.mm.read(p + 2 * P, P) == pattern(2, 1)
    assert d[rss] > 0
    assert s.pm(p + 2 * P, 1) == [CACHE]


@pytest.mark.kinds("file_private", "shmem_private")
def test_rule_11_private_file_mapping_sees_the_file_again(s, kind):
    p = s.map(kind, 4)
    s.mm.write(p, b"X" * (4 * P))
    assert s.pm(p, 4) == [ANON] * 4
    madv(s, p, 4, INSTALL)
    madv(s, p, 4, REMOVE)
    assert s.mm.read(p, 4 * P) == pattern(0, 4)
    assert s.pm(p, 1) == [CACHE]
    # Writing again makes a new COW copy of the file page.
    s.mm.write(p + P, b"Y")
    assert s.mm.read(p + P, 2) == b"Y" + page_byte(1)
    assert s.pm(p + P, 1) == [ANON]


def test_rule_11_private_file_cow_after_remove_on_a_readonly_vma(s):
    """MAP_PRIVATE PROT_READ file: after INSTALL/REMOVE the file page comes back read-only."""
    p = s.mm.mmap(0, 2 * P, PROT_READ, MAP_PRIVATE, s.file("file"), 0)
    madv(s, p, 2, INSTALL)
    madv(s, p, 2, REMOVE)
    assert s.mm.read(p + P, P) == pattern(1, 1)
