"""MADV_COLD and MADV_PAGEOUT on every kind of page, on both backends (issue 11, item 1).

The rule (mm/madvise.c madvise_cold_or_pageout_pte_range(), then for PAGEOUT
mm/vmscan.c reclaim_pages() -> shrink_folio_list() on a host with no swap device):
- a locked VMA is EINVAL for both advice; otherwise the call returns 0;
- only a page whose folio this PTE alone maps is touched, whatever the VMA's protection
  (PROT_NONE too): not the zero page, not an anonymous page shared with a fork child;
- COLD makes such a page old (smaps Referenced drops to 0) and changes nothing else;
- PAGEOUT unmaps a page-cache page (regular file, memfd or shared anonymous memory): its
  data stays in the cache and the next access maps it again; it discards a lazily freed
  anonymous page that was not written since MADV_FREE (the next read finds zeroes); every
  other anonymous page stays, since there is no swap to write it to.

The kernel side drains the per-CPU LRU batches first (LiveMM does, see live/lru.py), so
its answer does not depend on the CPU that faulted each page.
"""
import itertools

import pytest

from ptengine.constants import (MADV_COLD, MADV_COLLAPSE, MADV_DONTNEED, MADV_FREE,
                                MADV_HUGEPAGE, MADV_NORMAL, MADV_PAGEOUT, MADV_POPULATE_READ,
                                MADV_RANDOM, MAP_POPULATE, PM_FILE, PM_MMAP_EXCLUSIVE,
                                PM_PRESENT, PMD_SIZE, PROT_EXEC, PROT_NONE, PROT_READ,
                                PROT_WRITE)

from .conftest import (ANON, CACHE, EINVAL, NONE, ZERO, Delta, P, errno_of, page_byte,
                       smaps_block)

N = 3
RW = PROT_READ | PROT_WRITE
PROTS = {"none": PROT_NONE, "r": PROT_READ, "rw": RW, "rx": PROT_READ | PROT_EXEC}
# How the pages are left before the advice: read ("clean"), written ("dirty"), written
# then MADV_FREE ("lazyfree"), or that plus a write to the middle page ("redirtied").
STATES = ("clean", "dirty", "lazyfree", "redirtied")
RSS_OF = {"anon": "RssAnon", "file": "RssFile", "shmem": "RssShmem"}


def _cases():
    for advice, prot, kind, state, cow, locked in itertools.product(
            ("PAGEOUT", "COLD"), PROTS,
            ("anon", "shared_anon", "file", "file_private", "shmem", "shmem_private"),
            STATES, (False, True), (False, True)):
        if state in ("lazyfree", "redirtied") and kind != "anon":
            continue                    # MADV_FREE is for private anonymous memory only
        yield pytest.param(advice, prot, kind, state, cow, locked,
                           id=f"{advice}-{prot}-{kind}-{state}{'-cow' if cow else ''}"
                              f"{'-locked' if locked else ''}")


def small_folio_file(s, kind):
    """The file a file or memfd kind maps, N pages of the usual pattern written page by
    page: a large pwrite would leave large folios in the kernel's page cache (ext4), which
    reclaim treats otherwise and the simulator does not model."""
    if kind in ("anon", "shared_anon"):
        return None
    if kind.startswith("file"):
        f = s.system.create_file("reclaim_test_file", 0)
    else:
        f = s.system.memfd_create("reclaim_test_memfd", 0)
    f.truncate(N * P)
    for i in range(N):
        f.pwrite(i * P, page_byte(i) * P)
    return f


def expected_page(kind, state, cow, locked, page):
    """What page `page` is before the advice: (backing, exclusive, written), where backing
    is "zero", "anon" or the page cache's RSS class ("file" or "shmem")."""
    if locked and kind in ("anon", "file_private", "shmem_private"):
        # mlock() populates a private writable VMA with write faults: every page is then
        # an anonymous page of this process alone (a COW copy, if shared or the zero page).
        return "anon", True, True
    written = state != "clean" and not (state == "lazyfree" or
                                        state == "redirtied" and page != 1)
    if kind == "anon":
        if state == "clean":
            return "zero", False, False
        # fork() copies an anonymous page's PTE: the child maps the folio too.
        return "anon", not cow, written
    if kind.endswith("_private") and state == "dirty":
        return "anon", not cow, True            # the COW copy of the write
    # A page-cache page: fork() does not copy the PTEs of a VMA without an anon_vma,
    # so the child maps nothing of it until it faults.
    return ("file" if kind.startswith("file") else "shmem"), True, written


def contents(kind, state, page):
    """The byte a page reads before the advice."""
    if state == "clean":
        return b"\0" if kind in ("anon", "shared_anon") else page_byte(page)
    if state == "redirtied" and page == 1:
        return b"z"
    return b"w"


def pm_of(backing, exclusive):
    if backing == "zero":
        return ZERO
    return PM_PRESENT | (PM_FILE if backing != "anon" else 0) | \
        (PM_MMAP_EXCLUSIVE if exclusive else 0)


@pytest.mark.parametrize("advice, prot, kind, state, cow, locked", list(_cases()))
def test_reclaim_advice(s, advice, prot, kind, state, cow, locked):
    mm = s.mm
    p = s.map(kind, N, RW, at=0, fd=small_folio_file(s, kind))
    if state == "clean":
        mm.read(p, N * P)
    else:
        for i in range(N):
            mm.write(p + i * P, b"w")
    if state in ("lazyfree", "redirtied"):
        mm.madvise(p, N * P, MADV_FREE)
    if state == "redirtied":
        mm.write(p + P, b"z")
    child = mm.fork() if cow else None
    if locked:
        mm.mlock(p, N * P)
    mm.mprotect(p, N * P, PROTS[prot])
    pages = [expected_page(kind, state, cow, locked, i) for i in range(N)]
    before = s.pm(p, N)
    assert before == [pm_of(b, x) for b, x, _ in pages]
    # Young pages: all that were touched, but MADV_FREE made its pages old (and mlock's
    # populate touches every page again).
    young = [b != "zero" and (locked or w or state not in ("lazyfree", "redirtied"))
             for b, _, w in pages]
    assert smaps_block(mm.smaps(), p)["Referenced"] == 4 * sum(young)

    with Delta(s) as d:
        err = errno_of(mm.madvise, p, N * P, MADV_PAGEOUT if advice == "PAGEOUT" else MADV_COLD)

    gone = [False] * N
    if locked:
        assert err == EINVAL
    else:
        assert err == 0
        if advice == "PAGEOUT":
            # Page-cache pages are unmapped; a lazyfree page is dropped unless written since.
            lazy = state in ("lazyfree", "redirtied")
            gone = [x and (b in ("file", "shmem") or b == "anon" and lazy and not w)
                    for b, x, w in pages]
    assert s.pm(p, N) == [NONE if g else e for g, e in zip(gone, before)]
    for rss in RSS_OF.values():
        assert d[rss] == -4 * sum(g for g, (b, _, _) in zip(gone, pages) if RSS_OF.get(b) == rss)
    if not locked:
        # COLD makes exclusive pages old; PAGEOUT leaves the young bit of what stays.
        young = [y and not g and not (advice == "COLD" and x)
                 for y, g, (_, x, _) in zip(young, gone, pages)]
    assert smaps_block(mm.smaps(), p)["Referenced"] == 4 * sum(young)

    # Later accesses: reclaimed page-cache pages fault back in with their data; a
    # discarded lazyfree page reads as zeroes (the zero page).
    mm.mprotect(p, N * P, RW)
    for i, (g, (b, _, _)) in enumerate(zip(gone, pages)):
        want = b"\0" if g and b == "anon" else contents(kind, state, i)
        assert mm.read(p + i * P, 1) == want
    after = s.pm(p, N)
    for i, (g, (b, x, _)) in enumerate(zip(gone, pages)):
        assert after[i] == (ZERO if g and b == "anon" else pm_of(b, x))
    if child is not None:
        assert [child.read(p + i * P, 1) for i in range(N)] == \
            [contents(kind, state, i) for i in range(N)]
        child.exit()


@pytest.mark.parametrize("advice", [MADV_PAGEOUT, MADV_COLD])
def test_reclaim_of_a_prot_none_page_of_shared_anon(s, advice):
    """The issue's case: 7 populated shared anonymous pages, the last made PROT_NONE; the
    advice on that page alone. PAGEOUT unmaps it whatever its protection."""
    p = s.map("shared_anon", 7, PROT_READ, at=0, extra=MAP_POPULATE)
    s.mm.mprotect(p + 6 * P, P, PROT_NONE)
    assert s.pm(p, 7) == [CACHE] * 7
    with Delta(s) as d:
        s.mm.madvise(p + 6 * P, P, advice)
    gone = advice == MADV_PAGEOUT
    assert s.pm(p, 7) == [CACHE] * 6 + [NONE if gone else CACHE]
    assert d["RssShmem"] == (-4 if gone else 0)
    assert s.fault(p + 6 * P)[0].name == "SIGSEGV"
    s.mm.mprotect(p + 6 * P, P, PROT_READ)
    assert s.mm.read(p + 6 * P, 1) == b"\0"


# --- what the next fault finds in the page cache -----------------------------------------
FA = 64         # pages mapped, 64 KiB aligned: the fault-around window of page 20 is 16..31


@pytest.mark.parametrize("how", ["read", "populate"])
@pytest.mark.parametrize("span", [(0, FA), (16, 24)], ids=["whole", "part"])
@pytest.mark.parametrize("cache", ["hole", "written"])
@pytest.mark.parametrize("kind", ["shared_anon", "shmem", "shmem_private", "file",
                                  "file_private"])
def test_fault_around_after_pageout(s, kind, cache, span, how):
    """PAGEOUT, then a read fault (or MADV_POPULATE_READ) of page 20 (fault-around window
    16..31). shrink_folio_list() takes a clean shmem page (only ever read, so zeroes: a
    hole read in) out of the page cache, as it needs no writeout, and leaves a dirty
    regular-file page (written, not yet written back) in the cache marked PG_reclaim,
    which is PG_readahead to fault-around: either way fault-around maps none of the
    reclaimed pages and page 20 is mapped alone. A written shmem page stays unmarked (no
    swap: shmem_writeout() redirties it), and a clean file page (a hole read in) is read
    back by the refault's read-around: fault-around maps those over the whole window."""
    mm = s.mm
    if kind == "shared_anon":
        p = s.map(kind, FA, PROT_READ if cache == "hole" else RW, at=0, extra=MAP_POPULATE)
        if cache == "written":
            for i in range(FA):
                mm.write(p + i * P, page_byte(i))
    else:
        if kind.startswith("file"):
            f = s.system.create_file("fault_around_file", 0)
        else:
            f = s.system.memfd_create("fault_around_memfd", 0)
        f.truncate(FA * P)
        if cache == "written":
            for i in range(FA):             # page by page: order-0 folios (see above)
                f.pwrite(i * P, page_byte(i) * P)
        p = s.map(kind, FA, PROT_READ, at=0, extra=MAP_POPULATE, fd=f)
    assert s.pm(p, FA) == [CACHE] * FA
    lo, hi = span
    mm.madvise(p + lo * P, (hi - lo) * P, MADV_PAGEOUT)
    assert s.pm(p, FA) == [NONE if lo <= i < hi else CACHE for i in range(FA)]

    if how == "read":
        got = mm.read(p + 20 * P, 1)
    else:
        mm.madvise(p + 20 * P, P, MADV_POPULATE_READ)
        got = mm.read(p + 20 * P, 1)
    assert got == (b"\0" if cache == "hole" else page_byte(20))
    skipped = (cache == "hole") == (kind in ("shared_anon", "shmem", "shmem_private"))
    mapped = [not lo <= i < hi or i == 20 or not skipped and 16 <= i < 32
              for i in range(FA)]
    assert s.pm(p, FA) == [CACHE if m else NONE for m in mapped]


@pytest.mark.parametrize("how", ["pread", "fault", "random_fault"])
@pytest.mark.parametrize("kind", ["file", "file_private"])
def test_what_clears_the_reclaim_mark(s, kind, how):
    """The mark PAGEOUT leaves on a dirty file page acts as PG_readahead: a read() of the
    page (filemap_read()) or a fault on it (do_async_mmap_readahead()) starts async
    readahead, which clears it, so fault-around maps the page again; a fault in a
    MADV_RANDOM VMA (VM_RAND_READ: no readahead) leaves it. Page 20 is read (and a
    faulted page unmapped again with MADV_DONTNEED), then page 21 faults."""
    f = s.system.create_file("fault_around_file", 0)
    f.truncate(FA * P)
    for i in range(FA):
        f.pwrite(i * P, page_byte(i) * P)
    p = s.map(kind, FA, PROT_READ, at=0, extra=MAP_POPULATE, fd=f)
    s.mm.madvise(p, FA * P, MADV_PAGEOUT)
    if how == "pread":
        assert f.pread(20 * P, 1) == page_byte(20)
    else:
        if how == "random_fault":
            s.mm.madvise(p, FA * P, MADV_RANDOM)
        assert s.mm.read(p + 20 * P, 1) == page_byte(20)
        s.mm.madvise(p, FA * P, MADV_NORMAL)
        s.mm.madvise(p + 20 * P, P, MADV_DONTNEED)
    assert s.mm.read(p + 21 * P, 1) == page_byte(21)
    cleared = how != "random_fault"
    assert s.pm(p, FA) == [CACHE if i == 21 or i == 20 and cleared else NONE
                           for i in range(FA)]


# --- transparent huge pages ----------------------------------------------------------------
H = PMD_SIZE // P


@pytest.mark.parametrize("advice", ["PAGEOUT", "COLD"])
@pytest.mark.parametrize("state", ["dirty", "lazyfree", "redirtied"])
@pytest.mark.parametrize("whole", [True, False], ids=["whole", "part"])
@pytest.mark.parametrize("cow", [False, True], ids=["", "cow"])
def test_reclaim_advice_on_an_anon_thp(s, advice, state, whole, cow):
    """An exclusive anon THP (written at pages 0 and 511; page 1 rewritten after MADV_FREE
    when "redirtied"). Covered in part, it is split first, and its zero-filled subpages go
    to the shared zero page (split_folio() with RMP_USE_SHARED_ZEROPAGE). Covered whole:
    COLD makes it old; PAGEOUT finds no swap for it, so reclaim splits it (zero subpages
    to the zero page too) and keeps its pages, or, lazyfree, splits its PMD and drops it
    all when clean, keeps it as PTEs when written since. One shared with a child is left
    alone."""
    mm = s.mm
    p = s.map("anon", 2 * H, RW, at=0)
    mm.madvise(p, 2 * H * P, MADV_HUGEPAGE)
    mm.write(p, b"x")
    mm.write(p + (H - 1) * P, b"y")
    if smaps_block(mm.smaps(), p)["AnonHugePages"] != 2048:
        pytest.skip("no THP for the first fault here (THP disabled or no huge page free)")
    written = {0: b"x", H - 1: b"y"}
    if state != "dirty":
        mm.madvise(p, H * P, MADV_FREE)
    if state == "redirtied":
        mm.write(p + P, b"z")
        written[1] = b"z"
    child = mm.fork() if cow else None
    n = H if whole else 16
    with Delta(s) as d:
        mm.madvise(p, n * P, MADV_PAGEOUT if advice == "PAGEOUT" else MADV_COLD)

    if cow:
        pm, huge = [PM_PRESENT] * H, True                       # untouched
    elif whole and advice == "COLD":
        pm, huge = [ANON] * H, True
    elif whole and state == "lazyfree":
        pm, huge = [NONE] * H, False                            # dropped
    elif whole and state == "redirtied":
        pm, huge = [ANON] * H, False                            # split PMD, pages kept
    else:
        # Split folio: zero-filled subpages map the zero page; in the range, a clean
        # lazyfree page is dropped under PAGEOUT.
        pm = [ANON if i in written else ZERO for i in range(H)]
        if advice == "PAGEOUT" and state == "lazyfree":
            pm[0] = NONE
        huge = False
    assert s.pm(p, H) == pm
    block = smaps_block(mm.smaps(), p)
    assert block["AnonHugePages"] == (2048 if huge else 0)
    rss = 2048 if cow else 4 * sum(e == ANON for e in pm)     # kB mapped afterwards
    assert (d["RssAnon"], d["VmPTE"]) == (rss - 2048, 0)
    if advice == "COLD" and not cow:
        # Old: the range; young: what lies outside it and was touched since MADV_FREE.
        young = [] if whole or state == "lazyfree" else [H - 1]
        assert block["Referenced"] == 4 * len(young)
    for i in (0, 1, H - 1):
        want = b"\0" if pm[i] == NONE else written.get(i, b"\0")
        assert mm.read(p + i * P, 1) == want
    if child is not None:
        assert child.read(p, 1) == b"x"
        child.exit()


@pytest.mark.parametrize("advice", ["PAGEOUT", "COLD"])
@pytest.mark.parametrize("whole", [True, False], ids=["whole", "part"])
@pytest.mark.parametrize("kind", ["shmem", "shmem_private"])
def test_reclaim_advice_on_a_shmem_thp(s, advice, whole, kind):
    """A memfd PMD collapsed into a THP (MADV_COLLAPSE). PAGEOUT unmaps the PMD whole
    however much of it the range covers; COLD over all of it makes it old, over a part
    splits the PMD, which unmaps it (the pages refault from the cache)."""
    mm = s.mm
    f = s.system.memfd_create("reclaim_thp", 0)
    f.truncate(H * P)
    for i in range(0, H, 64):
        f.pwrite(i * P, page_byte(i))
    p = s.map(kind, H, RW, at=0, fd=f)
    mm.read(p, H * P)
    mm.madvise(p, H * P, MADV_COLLAPSE)
    assert smaps_block(mm.smaps(), p)["ShmemPmdMapped"] == 2048
    with Delta(s) as d:
        mm.madvise(p, (H if whole else 16) * P,
                   MADV_PAGEOUT if advice == "PAGEOUT" else MADV_COLD)
    kept = advice == "COLD" and whole
    assert s.pm(p, H) == [CACHE if kept else NONE] * H
    assert (d["RssShmem"], d["VmPTE"]) == (0 if kept else -2048, 0)
    block = smaps_block(mm.smaps(), p)
    assert (block["ShmemPmdMapped"], block["Referenced"]) == ((2048, 0) if kept else (0, 0))
    assert mm.read(p + 64 * P, 1) == page_byte(64)
