"""Rules 15-20 (§1.E): the other madvise() advice on guarded ranges."""
import pytest

from ptengine.constants import (MADV_COLD, MADV_COLLAPSE, MADV_DODUMP, MADV_DOFORK,
                                MADV_DONTDUMP, MADV_DONTFORK, MADV_DONTNEED,
                                MADV_DONTNEED_LOCKED, MADV_FREE, MADV_GUARD_INSTALL,
                                MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_KEEPONFORK,
                                MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_NORMAL, MADV_PAGEOUT,
                                MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL, MADV_WILLNEED,
                                MADV_WIPEONFORK, MAP_SHARED, MLOCK_ONFAULT, PMD_SIZE,
                                PROT_READ, SEGV_MAPERR)

from .conftest import (ANON, CACHE, EACCES, EINVAL, ENOMEM, GUARD, NONE, P, POISON, ZERO,
                       Delta, errno_of, page_byte, pattern)

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
HP = PMD_SIZE // P


def madv(s, addr, npages, advice):
    assert s.mm.madvise(addr, npages * P, advice) in (0, None)


# --- rule 15: DONTNEED and DONTNEED_LOCKED ------------------------------------------------
@pytest.mark.kinds("anon", "shared_anon", "shmem", "file", "file_private")
@pytest.mark.parametrize("advice", [MADV_DONTNEED, MADV_DONTNEED_LOCKED])
def test_rule_15_dontneed_zaps_pages_keeps_markers(s, kind, advice):
    p = s.map(kind, 6, at=0)
    s.mm.write(p, b"W" * (6 * P))
    madv(s, p + P, 1, INSTALL)
    madv(s, p + 4 * P, 1, INSTALL)
    with Delta(s) as d:
        madv(s, p, 6, advice)
    assert s.pm(p, 6) == [NONE, GUARD, NONE, NONE, GUARD, NONE]
    assert d["RssAnon"] + d["RssFile"] + d["RssShmem"] == -16
    assert d["VmPTE"] == 0
    # Anon reads zeroes, a private file mapping the file again, shared ones their data.
    expect = {"anon": b"\0", "file_private": page_byte(0)}.get(kind, b"W")
    assert s.mm.read(p, 1) == expect
    assert s.fault(p + P) is not None and s.fault(p + 4 * P) is not None


@pytest.mark.kinds("anon", "shared_anon", "file")
def test_rule_15_a_marker_keeps_its_pte_table(s, kind):
    """PT_RECLAIM: DONTNEED over a whole 2 MiB table frees it only if it ends up empty."""
    p = s.map(kind, HP, at=0)
    s.mm.write(p, b"x")
    with Delta(s) as d:
        madv(s, p, HP, MADV_DONTNEED)
    assert d["VmPTE"] == -4
    s.mm.write(p, b"x")
    madv(s, p + 7 * P, 1, INSTALL)
    with Delta(s) as d:
        madv(s, p, HP, MADV_DONTNEED)
    assert d["VmPTE"] == 0
    assert s.pm(p + 6 * P, 2) == [NONE, GUARD]
    # REMOVE leaves the table; a DONTNEED afterwards can reclaim it.
    madv(s, p + 7 * P, 1, REMOVE)
    with Delta(s) as d:
        madv(s, p, HP, MADV_DONTNEED)
    assert d["VmPTE"] == -4


def test_rule_15_dontneed_locked_on_a_locked_vma_keeps_markers(s):
    p = s.map("anon", 4, at=0)
    madv(s, p + P, 1, INSTALL)
    assert s.mm.mlock(p, 4 * P, MLOCK_ONFAULT) in (0, None)
    s.mm.write(p, b"L")
    assert errno_of(s.mm.madvise, p, 4 * P, MADV_DONTNEED) == EINVAL
    madv(s, p, 4, MADV_DONTNEED_LOCKED)
    assert s.pm(p, 4) == [NONE, GUARD, NONE, NONE]
    assert s.mm.read(p, 1) == b"\0"


def test_rule_15_dontneed_of_part_of_a_thp_keeps_the_rest(s):
    p = s.map("anon", HP, at=0)
    madv(s, p, HP, MADV_HUGEPAGE)
    s.mm.write(p, b"T")
    s.mm.write(p + 9 * P, b"U")
    madv(s, p + 8 * P, 1, INSTALL)        # splits the THP, guard at 8
    with Delta(s) as d:
        madv(s, p + 9 * P, 1, MADV_DONTNEED)
    assert d["RssAnon"] == -4
    assert s.pm(p + 7 * P, 4) == [ANON, GUARD, NONE, ANON]
    assert s.mm.read(p, 1) == b"T" and s.mm.read(p + 9 * P, 1) == b"\0"


# --- rule 16: FREE, COLD, PAGEOUT, WILLNEED -----------------------------------------------
@pytest.mark.kinds("shared_anon", "shmem", "shmem_private", "file", "file_private")
def test_rule_16_free_is_anonymous_only(s, kind):
    p = s.map(kind, 2)
    madv(s, p, 1, INSTALL)
    assert errno_of(s.mm.madvise, p, 2 * P, MADV_FREE) == EINVAL
    assert s.pm(p, 1) == [GUARD]


def test_rule_16_free_keeps_guards_clears_poison(s):
    p = s.map("anon", 4, at=0)
    s.mm.write(p, b"F")
    madv(s, p + P, 1, INSTALL)
    s.mm.install_poison(p + 2 * P, P)
    with Delta(s) as d:
        madv(s, p, 4, MADV_FREE)
    assert s.pm(p, 4) == [ANON, GUARD, NONE, NONE]
    assert d["RssAnon"] == 0            # no memory pressure: the page stays for now
    assert s.mm.read(p, 1) == b"F"
    assert s.fault(p + P)[1] == SEGV_MAPERR
    assert s.fault(p + 2 * P) is None and s.mm.read(p + 2 * P, 1) == b"\0"


def test_rule_16_free_makes_pages_clean_and_old(s):
    """MADV_FREE clears the dirty and young bits of exclusively mapped pages (they are
    lazily freeable); the next access sets them again, as the MMU does."""
    p = s.map("anon", 8, at=0)
    s.mm.write(p, b"a" * (4 * P))
    s.mm.read(p + 5 * P, 1)                 # the zero page: not a page to free
    madv(s, p + 6 * P, 1, INSTALL)
    sm = s.smaps(p)
    assert (sm["Private_Dirty"], sm["Private_Clean"], sm["Referenced"]) == (16, 0, 16)
    madv(s, p, 8, MADV_FREE)
    sm = s.smaps(p)
    assert (sm["Rss"], sm["Private_Dirty"], sm["Private_Clean"], sm["Referenced"]) == \
        (16, 0, 16, 0)
    assert s.mm.read(p, 2) == b"aa" and s.mm.read(p + P, 1) == b"a"
    sm = s.smaps(p)
    assert (sm["Private_Dirty"], sm["Private_Clean"], sm["Referenced"]) == (0, 16, 8)
    s.mm.write(p + 2 * P, b"b")
    sm = s.smaps(p)
    assert (sm["Private_Dirty"], sm["Private_Clean"], sm["Referenced"]) == (4, 12, 12)
    assert s.pm(p, 8) == [ANON] * 4 + [NONE, ZERO, GUARD, NONE]


def test_rule_16_free_cleans_pages_shared_with_a_child_too(s):
    """A fork-shared anon page whose folio is not PG_dirty (its dirtiness lives in the
    PTE) is cleaned in this process too; the child's view is unchanged."""
    p = s.map("anon", 2, at=0)
    s.mm.write(p, b"s" * (2 * P))
    child = s.mm.fork()
    madv(s, p, 2, MADV_FREE)
    sm = s.smaps(p)
    assert (sm["Shared_Dirty"], sm["Shared_Clean"], sm["Referenced"]) == (0, 8, 0)
    s.mm.write(p + P, b"c")                 # COW: the parent's own copy
    sm = s.smaps(p)
    assert (sm["Shared_Clean"], sm["Private_Dirty"]) == (4, 4)
    madv(s, p, 2, MADV_FREE)
    sm = s.smaps(p)
    assert (sm["Shared_Clean"], sm["Private_Clean"], sm["Private_Dirty"]) == (4, 4, 0)
    assert s.mm.read(p, 2 * P) == b"s" * P + b"c" + b"s" * (P - 1)
    assert child.read(p, 2 * P) == b"s" * (2 * P)
    child.exit()


@pytest.mark.kinds("anon", "shared_anon", "shmem", "file", "file_private")
@pytest.mark.parametrize("advice", [MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED])
def test_rule_16_cold_pageout_willneed_ignore_markers(s, kind, advice):
    p = s.map(kind, 4, at=0)
    s.mm.read(p, 1)
    madv(s, p + P, 2, INSTALL)
    madv(s, p, 4, advice)
    pm = s.pm(p, 4)
    assert pm[1:3] == [GUARD, GUARD]
    assert s.fault(p + P)[1] == SEGV_MAPERR
    assert s.mm.read(p + 3 * P, 1) == (b"\0" if kind in ("anon", "shared_anon")
                                       else page_byte(3))


def test_rule_16_pageout_keeps_guards_and_file_data(s):
    """Whether PAGEOUT reclaims a clean file page depends on the kernel's per-CPU LRU
    batches (a page still in one cannot be isolated), so only the outcome that does not
    depend on it is asserted: markers stay and the data reads back."""
    p = s.map("file", 4, PROT_READ, at=0)
    madv(s, p + P, 1, INSTALL)
    s.mm.read(p, 1)
    s.mm.read(p + 2 * P, 1)
    madv(s, p, 4, MADV_PAGEOUT)
    assert s.pm(p, 4)[1] == GUARD
    assert all(e in (NONE, CACHE) for i, e in enumerate(s.pm(p, 4)) if i != 1)
    assert s.mm.read(p + 2 * P, 1) == page_byte(2)
    assert s.mm.read(p + 3 * P, P) == pattern(3, 1)


# --- rule 17: MADV_REMOVE -----------------------------------------------------------------
@pytest.mark.kinds("shmem", "file", "shared_anon")
def test_rule_17_remove_punches_and_keeps_markers(s, kind):
    p = s.map(kind, 6, at=0)
    s.mm.write(p, pattern(0, 6))
    madv(s, p + 2 * P, 2, INSTALL)
    madv(s, p + P, 4, MADV_REMOVE)
    assert s.pm(p + P, 4) == [NONE, GUARD, GUARD, NONE]
    assert s.mm.read(p, P) == pattern(0, 1)
    assert s.mm.read(p + P, 1) == b"\0" and s.mm.read(p + 4 * P, 1) == b"\0"
    madv(s, p, 6, REMOVE)
    assert s.mm.read(p + 2 * P, P) == bytes(P)            # punched under the guard
    assert s.mm.read(p + 5 * P, P) == pattern(5, 1)
    if kind != "shared_anon":
        assert s.file(kind).pread(2 * P, 2) == b"\0\0"


@pytest.mark.kinds("anon", "file_private", "shmem_private")
def test_rule_17_remove_needs_a_shared_writable_file_mapping(s, kind):
    p = s.map(kind, 2)
    madv(s, p, 1, INSTALL)
    want = EINVAL if kind == "anon" else EACCES
    assert errno_of(s.mm.madvise, p, 2 * P, MADV_REMOVE) == want
    assert s.pm(p, 1) == [GUARD]


def test_rule_17_remove_on_readonly_shared_file_and_locked(s):
    ro = s.file("file").reopen(readonly=True)
    p = s.mm.mmap(0, 2 * P, PROT_READ, MAP_SHARED, ro, 0)
    assert errno_of(s.mm.madvise, p, 2 * P, MADV_REMOVE) == EACCES
    q = s.map("shmem", 2)
    madv(s, q, 1, INSTALL)
    s.mm.mlock(q, 2 * P, MLOCK_ONFAULT)
    assert errno_of(s.mm.madvise, q, 2 * P, MADV_REMOVE) == EINVAL
    r = s.map("file", 2, PROT_READ)
    madv(s, r, 2, MADV_REMOVE)              # O_RDWR file, PROT_READ shared: allowed


# --- rule 18: WIPEONFORK / KEEPONFORK -----------------------------------------------------
@pytest.mark.kinds("shared_anon", "shmem", "shmem_private", "file", "file_private")
def test_rule_18_wipeonfork_is_private_anon_only(s, kind):
    p = s.map(kind, 2)
    madv(s, p, 1, INSTALL)
    assert errno_of(s.mm.madvise, p, 2 * P, MADV_WIPEONFORK) == EINVAL
    assert "wf" not in s.vmflags(p)
    madv(s, p, 2, MADV_KEEPONFORK)


def test_rule_18_wipeonfork_on_guarded_anon(s):
    p = s.map("anon", 4, at=0)
    madv(s, p + P, 1, INSTALL)
    madv(s, p + 2 * P, 2, MADV_WIPEONFORK)     # splits; markers stay
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 2 * P), (p + 2 * P, p + 4 * P)]
    assert "wf" in s.vmflags(p + 2 * P) and "gu" in s.vmflags(p + 2 * P)
    assert s.pm(p, 4) == [NONE, GUARD, NONE, NONE]
    madv(s, p, 4, MADV_KEEPONFORK)
    assert s.vmas_in(p, p + 4 * P) == [(p, p + 4 * P)]


# --- rule 19: COLLAPSE --------------------------------------------------------------------
def collapse_range(s, kind, hugepage=True):
    """A 2 MiB-aligned PMD with two pages written (without THP faults). MADV_HUGEPAGE is
    given only when asked: khugepaged may collapse an unguarded VM_HUGEPAGE range at any
    moment, and MADV_COLLAPSE does not need the flag."""
    if kind != "anon":
        s.file(kind).truncate(HP * P)       # the whole PMD inside the file
    p = s.map(kind, HP, at=0)
    if hugepage:
        madv(s, p, HP, MADV_NOHUGEPAGE)
    s.mm.write(p, b"c")
    s.mm.write(p + 30 * P, b"d")            # inside the 100-page file
    if hugepage:
        madv(s, p, HP, MADV_HUGEPAGE)
    return p


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_19_collapse_fails_over_a_guard_and_keeps_it(s, kind):
    p = collapse_range(s, kind)
    madv(s, p + 5 * P, 1, INSTALL)
    with Delta(s) as d:
        assert errno_of(s.mm.madvise, p, HP * P, MADV_COLLAPSE) == EINVAL
    # shmem: the page cache is collapsed first (collapse_file()), which unmaps the small
    # pages from every mapping; only mapping the PMD here fails.
    assert d.d == dict.fromkeys(d.d, 0) | ({"RssShmem": -8} if kind == "shmem" else {})
    assert s.pm(p + 4 * P, 2)[1] == GUARD
    assert s.smaps(p)["AnonHugePages"] == 0
    assert s.mm.read(p, 1) == b"c" and s.mm.read(p + 30 * P, 1) == b"d"


def test_rule_19_collapse_without_guards_makes_a_thp(s):
    p = collapse_range(s, "anon", hugepage=False)
    with Delta(s) as d:
        madv(s, p, HP, MADV_COLLAPSE)
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert d["RssAnon"] == 2048 - 8
    assert d["VmPTE"] == 0                  # the PTE table is deposited
    assert s.mm.read(p, 1) == b"c" and s.mm.read(p + 30 * P, 1) == b"d"
    assert s.mm.read(p + 7 * P, P) == bytes(P)
    assert s.pm(p, 2) == [ANON, ANON]
    # A guard can still be installed: it splits the THP.
    madv(s, p + 7 * P, 1, INSTALL)
    assert s.smaps(p)["AnonHugePages"] == 0
    assert s.mm.read(p + 30 * P, 1) == b"d"


def test_rule_19_collapse_after_guard_remove(s):
    p = collapse_range(s, "anon", hugepage=False)
    madv(s, p + 5 * P, 1, INSTALL)
    madv(s, p + 5 * P, 1, REMOVE)
    madv(s, p, HP, MADV_COLLAPSE)
    assert s.smaps(p)["AnonHugePages"] == 2048


def test_rule_19_collapse_stops_at_a_guarded_pmd(s):
    """Three PMDs, a guard in the middle one: the first collapses, the walk stops."""
    p = s.map("anon", 3 * HP, at=0)
    for i in range(3):
        s.mm.write(p + i * HP * P + P, b"y")
    madv(s, p + HP * P + 5 * P, 1, INSTALL)
    assert errno_of(s.mm.madvise, p, 3 * HP * P, MADV_COLLAPSE) == EINVAL
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert s.pm(p + HP * P + 5 * P, 1) == [GUARD]
    assert s.pm(p + 2 * HP * P, 2) == [NONE, ANON]          # not collapsed
    assert s.mm.read(p + 2 * HP * P + P, 1) == b"y"


def test_rule_19_collapse_refuses_poison_ro_and_empty_pmds(s):
    p = s.map("anon", HP, at=0)
    s.mm.write(p, b"z")
    s.mm.install_poison(p + 9 * P, P)
    assert errno_of(s.mm.madvise, p, HP * P, MADV_COLLAPSE) == EINVAL
    assert s.pm(p + 9 * P, 1) == [POISON]
    q = s.map("anon", HP, PROT_READ, at=HP * P)
    s.mm.read(q, 1)                          # only the zero page: nothing writable
    assert errno_of(s.mm.madvise, q, HP * P, MADV_COLLAPSE) == EINVAL
    r = s.map("anon", HP, at=4 * HP * P)     # no page table at all
    assert errno_of(s.mm.madvise, r, HP * P, MADV_COLLAPSE) == EINVAL
    madv(s, r, HP, MADV_NOHUGEPAGE)
    s.mm.write(r, b"n")
    assert errno_of(s.mm.madvise, r, HP * P, MADV_COLLAPSE) == EINVAL


def test_rule_19_collapse_of_a_partial_range(s):
    """A VMA of a PMD and 8 pages: a range with no whole PMD in it succeeds doing nothing."""
    p = s.map("anon", HP + 8, at=0)
    s.mm.write(p, b"c")
    madv(s, p + HP * P, 8, MADV_COLLAPSE)
    assert s.smaps(p)["AnonHugePages"] == 0
    madv(s, p, HP + 8, MADV_COLLAPSE)
    assert s.smaps(p)["AnonHugePages"] == 2048


def test_rule_19_shmem_collapse_maps_a_pmd(s):
    p = collapse_range(s, "shmem", hugepage=False)
    with Delta(s) as d:
        madv(s, p, HP, MADV_COLLAPSE)
    assert (d["RssShmem"], d["VmPTE"]) == (2048 - 8, -4)   # the PTE table is freed
    assert s.smaps(p)["ShmemPmdMapped"] == 2048
    assert s.pm(p, 1) == [CACHE]
    assert s.mm.read(p, 1) == b"c" and s.mm.read(p + 30 * P, 1) == b"d"
    assert s.file("shmem").pread(7 * P, 1) == page_byte(7)


def test_rule_19_shmem_collapse_with_a_guard_unmaps_every_mapping(s):
    """Two mappings of one memfd; the guarded one cannot take the PMD (EINVAL), the
    other loses its small pages and its empty PTE table."""
    s.file("shmem").truncate(HP * P)
    u = s.map("shmem", HP, at=0)
    v = s.map("shmem", HP, at=HP * P * 4)
    s.mm.write(u, b"a")
    s.mm.write(u + 7 * P, b"b")
    s.mm.read(v, 1)
    madv(s, u + 3 * P, 1, INSTALL)
    mapped = s.smaps(u)["Rss"] + s.smaps(v)["Rss"]
    with Delta(s) as d:
        assert errno_of(s.mm.madvise, u, HP * P, MADV_COLLAPSE) == EINVAL
    assert d["RssShmem"] == -mapped
    assert s.smaps(u)["Rss"] == 0 and s.smaps(v)["Rss"] == 0
    assert d["VmPTE"] == -4
    assert s.pm(u + 3 * P, 1) == [GUARD]
    assert s.mm.read(u, 1) == b"a" and s.mm.read(v + 7 * P, 1) == b"b"


def test_rule_19_collapse_needs_a_whole_aligned_pmd(s):
    p = s.map("anon", 8, at=0)
    s.mm.write(p, b"x")
    assert errno_of(s.mm.madvise, p, 8 * P, MADV_COLLAPSE) == EINVAL


# --- rule 20: flag-only advice ------------------------------------------------------------
@pytest.mark.parametrize("advice,flag", [(MADV_HUGEPAGE, "hg"), (MADV_NOHUGEPAGE, "nh"),
                                         (MADV_SEQUENTIAL, "sr"), (MADV_RANDOM, "rr"),
                                         (MADV_DONTDUMP, "dd"), (MADV_DONTFORK, "dc"),
                                         (MADV_MERGEABLE, "mg")])
@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_20_flag_advice_splits_vmas_markers_stay(s, kind, advice, flag):
    """[0 1 2 3 4 5 6 7 8 9] with guards at 2 and 7; advise [3, 6): three VMAs."""
    p = s.map(kind, 10, at=0)
    madv(s, p + 2 * P, 1, INSTALL)
    madv(s, p + 7 * P, 1, INSTALL)
    count = s.mm.map_count
    madv(s, p + 3 * P, 3, advice)
    if flag == "mg" and kind != "anon":
        assert s.mm.map_count == count          # KSM ignores shared mappings
        return
    assert s.mm.map_count == count + 2
    assert s.vmas_in(p, p + 10 * P) == [(p, p + 3 * P), (p + 3 * P, p + 6 * P),
                                        (p + 6 * P, p + 10 * P)]
    assert flag in s.vmflags(p + 3 * P) and flag not in s.vmflags(p)
    assert all("gu" in s.vmflags(p + i * P) for i in (0, 3, 6))
    expect = [NONE] * 10
    expect[2] = expect[7] = GUARD
    assert s.pm(p, 10) == expect
    undo = {MADV_HUGEPAGE: MADV_NOHUGEPAGE, MADV_SEQUENTIAL: MADV_NORMAL,
            MADV_RANDOM: MADV_NORMAL, MADV_DONTDUMP: MADV_DODUMP, MADV_DONTFORK: MADV_DOFORK,
            MADV_MERGEABLE: 13, MADV_NOHUGEPAGE: None}[advice]
    if undo is not None and advice != MADV_HUGEPAGE:
        madv(s, p + 3 * P, 3, undo)
        assert s.vmas_in(p, p + 10 * P) == [(p, p + 10 * P)]
        assert s.pm(p, 10) == expect


def test_rule_20_flag_advice_over_a_hole_is_enomem_after_applying(s):
    a = s.map("anon", 2, at=0)
    b = s.map("anon", 2, at=3 * P)
    madv(s, a, 1, INSTALL)
    assert errno_of(s.mm.madvise, a, 5 * P, MADV_RANDOM) == ENOMEM
    assert "rr" in s.vmflags(a) and "rr" in s.vmflags(b)
    assert s.pm(a, 1) == [GUARD]


@pytest.mark.parametrize("kind,npages,at,advice,eligible", [
    ("anon", HP, 0, None, 0),
    ("anon", HP, 0, MADV_HUGEPAGE, 1),
    ("anon", HP - 1, 0, MADV_HUGEPAGE, 0),          # no whole PMD in the VMA
    ("anon", HP + 1, P, MADV_HUGEPAGE, 0),
    ("anon", 2 * HP, P, MADV_HUGEPAGE, 1),
    ("anon", HP, 0, MADV_NOHUGEPAGE, 0),
    ("shared_anon", HP, 0, MADV_HUGEPAGE, 0),       # shmem THP is "never" on the host
    ("shmem", HP, 0, MADV_HUGEPAGE, 0),
    ("file", 64, 0, MADV_HUGEPAGE, 0),
])
def test_rule_20_hugepage_and_smaps_thpeligible(s, kind, npages, at, advice, eligible):
    """THPeligible follows MADV_HUGEPAGE on private anonymous VMAs only; a guard changes
    nothing about it."""
    p = s.map(kind, npages, at=at)
    if advice is not None:
        madv(s, p, npages, advice)
    madv(s, p + P, 1, INSTALL)
    assert s.smaps(p)["THPeligible"] == eligible
