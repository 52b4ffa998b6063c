"""Rules 12-14 (§1.D): the order of fault checks, kernel-mode accesses (EFAULT, mlock's
ENOMEM), and that fault-around and THP faults never fill a marker's slot."""
import signal

import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE,
                                MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                                MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED,
                                MLOCK_ONFAULT, PMD_SIZE, PROT_EXEC, PROT_NONE, PROT_READ,
                                SEGV_ACCERR, SEGV_MAPERR, BUS_ADRERR)

from .conftest import (ARENA, ANON, CACHE, EFAULT, EINVAL, ENOMEM, GUARD, NONE, P, POISON_CODE, RW, ZERO,
                       Delta, errno_of, page_byte, pattern)

INSTALL, REMOVE = MADV_GUARD_INSTALL, MADV_GUARD_REMOVE
SEGV, BUS = signal.SIGSEGV, signal.SIGBUS
HP = PMD_SIZE // P
PRESENT = 1 << 63
EHWPOISON = 133         # not in Python's errno module
UNMAPPED = 0x500000000000


def madv(s, addr, npages, advice):
    assert s.mm.madvise(addr, npages * P, advice) in (0, None)


# --- rule 12: the order of checks ---------------------------------------------------------
def test_rule_12_no_vma_is_maperr(s):
    assert s.fault(UNMAPPED + 77) == (SEGV, SEGV_MAPERR, UNMAPPED + 77)
    assert s.fault(UNMAPPED + 77, write=True) == (SEGV, SEGV_MAPERR, UNMAPPED + 77)
    p = s.map("anon", 3)
    s.mm.munmap(p + P, P)
    assert s.fault(p + P + 1) == (SEGV, SEGV_MAPERR, p + P + 1)


@pytest.mark.kinds("anon", "shmem", "file", "file_private")
def test_rule_12_guard_is_maperr_at_the_faulting_address(s, kind):
    p = s.map(kind, 3, RW | PROT_EXEC)
    madv(s, p + P, 1, INSTALL)
    with Delta(s) as d:
        for off in (0, 1, 0x7FF, P - 1):
            assert s.fault(p + P + off) == (SEGV, SEGV_MAPERR, p + P + off)
            assert s.fault(p + P + off, write=True) == (SEGV, SEGV_MAPERR, p + P + off)
            assert s.mm.access(p + P + off, exec=True) == SEGV
            assert s.mm.access(p + P + off, write=True) == SEGV
    # A guard fault allocates nothing and maps nothing.
    assert (d["RssAnon"], d["RssFile"], d["RssShmem"], d["VmPTE"]) == (0, 0, 0, 0)
    assert s.pm(p, 3) == [NONE, GUARD, NONE]


def test_rule_12_a_multi_page_access_stops_at_the_guard(s):
    p = s.map("anon", 3)
    madv(s, p + P, 1, INSTALL)
    assert s.fault(p + P - 2, write=False) is None
    with pytest.raises(Exception) as e:
        s.mm.read(p + P - 2, 4)
    assert (e.value.signal, e.value.code, e.value.address) == (SEGV, SEGV_MAPERR, p + P)
    with pytest.raises(Exception) as e:
        s.mm.write(p + P - 2, b"abcd")
    assert (e.value.code, e.value.address) == (SEGV_MAPERR, p + P)
    assert s.mm.read(p + P - 2, 2) == b"ab"      # the bytes before the guard were written
    with pytest.raises(Exception) as e:
        s.mm.touch(p + P + 5, 2 * P)
    assert (e.value.code, e.value.address) == (SEGV_MAPERR, p + P + 5)
    with pytest.raises(Exception) as e:
        s.mm.touch(p, 3 * P, write=True)
    assert (e.value.code, e.value.address) == (SEGV_MAPERR, p + P)


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_12_vma_permissions_are_checked_before_the_marker(s, kind):
    p = s.map(kind, 2, PROT_NONE)
    madv(s, p, 2, INSTALL)
    for write in (False, True):
        assert s.fault(p + 8, write) == (SEGV, SEGV_ACCERR, p + 8)
    assert s.mm.access(p, exec=True) == SEGV
    q = s.map(kind, 2, PROT_READ)
    madv(s, q, 1, INSTALL)
    assert s.fault(q + 3) == (SEGV, SEGV_MAPERR, q + 3)
    assert s.fault(q + 3, write=True) == (SEGV, SEGV_ACCERR, q + 3)
    assert s.fault(q + P + 3, write=True) == (SEGV, SEGV_ACCERR, q + P + 3)


@pytest.mark.host_profile("memory_failure")
@pytest.mark.kinds("anon", "shared_anon", "shmem")
def test_rule_12_poison_is_sigbus(s, kind):
    p = s.map(kind, 3)
    assert s.mm.install_poison(p + P, P) in (0, None)
    with Delta(s) as d:
        assert s.fault(p + P + 5) == (BUS, POISON_CODE, p + P + 5)
        assert s.fault(p + P + 5, write=True) == (BUS, POISON_CODE, p + P + 5)
        assert s.mm.access(p + P) == BUS
    assert d["RssAnon"] == 0 and d["RssShmem"] == 0
    # The neighbours are untouched (INSTALL over poison: rule 7).
    assert s.fault(p) is None and s.fault(p + 2 * P) is None


def test_rule_12_poison_bit_beats_guard_bit(env):
    """handle_pte_marker() checks POISONED before GUARD. No syscall makes a marker with
    both bits (INSTALL replaces poison, rule 7), so this is written into the simulator's
    page table directly."""
    if env.backend == "kernel":
        pytest.skip("no user interface creates a marker with both bits")
    from ptengine import core as _core
    mm = env.mm
    p = mm.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    mm.pt.set_marker(p, _core.PTE_MARKER_POISONED | _core.PTE_MARKER_GUARD)
    with pytest.raises(Exception) as e:
        mm.write(p + 3, b"x")
    assert (e.value.signal, e.value.code, e.value.address) == (BUS, POISON_CODE, p + 3)
    assert int(mm.pagemap(p, P)[0]) & (1 << 58)         # still a guard for pagemap
    mm.check()


def test_rule_12_poison_with_memory_failure_is_mceerr(env):
    """The simulator's CONFIG_MEMORY_FAILURE switch gives the spec's BUS_MCEERR_AR."""
    if env.backend == "kernel":
        pytest.skip("a kernel build option of the simulator")
    import ptengine
    from ptengine.constants import BUS_MCEERR_AR
    mm = ptengine.System(memory_failure=True).spawn()
    p = mm.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    mm.install_poison(p, P)
    with pytest.raises(Exception) as e:
        mm.read(p + 9, 1)
    assert (e.value.signal, e.value.code, e.value.address) == (BUS, BUS_MCEERR_AR, p + 9)


@pytest.mark.kinds("shmem", "file")
def test_rule_12_beyond_eof_is_sigbus_but_a_guard_wins(s, kind):
    f = s.system.memfd_create("short", 0) if kind == "shmem" else \
        s.system.create_file("short", 0)
    f.truncate(2 * P)
    p = s.mm.mmap(0, 5 * P, RW, 1, f, 0)              # MAP_SHARED, 3 pages past EOF
    madv(s, p + 3 * P, 1, INSTALL)
    assert s.fault(p + P) is None
    assert s.fault(p + 2 * P + 4) == (BUS, BUS_ADRERR, p + 2 * P + 4)
    assert s.fault(p + 2 * P, write=True) == (BUS, BUS_ADRERR, p + 2 * P)
    assert s.fault(p + 3 * P + 4) == (SEGV, SEGV_MAPERR, p + 3 * P + 4)
    assert s.fault(p + 3 * P, write=True) == (SEGV, SEGV_MAPERR, p + 3 * P)
    assert s.fault(p + 4 * P) == (BUS, BUS_ADRERR, p + 4 * P)


@pytest.mark.kinds("shmem", "file")
def test_rule_12_sigbus_beyond_eof_leaves_the_upper_tables(s, kind):
    """handle_mm_fault() allocates the PUD and PMD tables before the file says SIGBUS:
    VmPTE grows by 8 kB in an empty slot. The file's two cached pages lie in the
    fault-around window and are mapped first (a PTE table, 4 kB more). The file is written
    page by page: ext4 caches one large pwrite in a large folio, and fault-around maps
    no large folio that reaches i_size (the simulator keeps order-0 pages only)."""
    f = s.system.memfd_create("short", 0) if kind == "shmem" else \
        s.system.create_file("short", 0)
    f.truncate(2 * P)
    for i in range(2):
        f.pwrite(i * P, b"c" * P)
    p = s.mm.mmap(ARENA, 16 * P, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, f, 0)
    with Delta(s) as d:
        assert s.fault(p + 5 * P) == (BUS, BUS_ADRERR, p + 5 * P)
    rss = "RssShmem" if kind == "shmem" else "RssFile"
    assert (d["VmPTE"], d[rss]) == (12, 8)
    assert s.pm(p, 3) == [CACHE, CACHE, NONE]
    assert s.mm.read(p, 1) == b"c"
    assert s.pm(p, 3) == [CACHE, CACHE, NONE]


@pytest.mark.kinds("shmem", "file", "file_private")
@pytest.mark.parametrize("table", [False, True], ids=["no_table", "table"])
@pytest.mark.parametrize("off", [1, 4, 14, 15, 16])
def test_rule_12_fault_around_of_a_read_past_eof(s, kind, off, table):
    """A read fault at the last page of a 64 KiB-aligned VMA window that lies past EOF:
    SIGBUS, after fault-around mapped the window's cached pages below i_size. On a regular
    file with no PTE table there yet, a window whose only cached page below i_size is the
    last one maps nothing (the ptengine verify case: a 64-page file mapped from page 7,
    read at file page 70); with a table (made by a read of VMA page 0, which maps its own
    window 0..15) it maps that page, and shmem always does. File written page by page,
    for order-0 page-cache pages (see above)."""
    f = s.system.memfd_create("short", 0) if kind == "shmem" else \
        s.system.create_file("short", 0)
    f.truncate(64 * P)
    for i in range(64):
        f.pwrite(i * P, page_byte(i) * P)
    p = s.map(kind, 300, PROT_READ, at=0, off=off, fd=f)     # VMA page i = file page i+off
    if table:
        assert s.mm.read(p, 1) == page_byte(off)
    assert s.fault(p + 63 * P) == (BUS, BUS_ADRERR, p + 63 * P)
    # Window: VMA pages 48..63, file pages 48+off..63+off, of which 48+off..63 are cached.
    some = 48 + off < 63 or kind == "shmem" or table
    mapped = range(48, 64 - off) if some else range(0)
    assert s.pm(p, 80) == [CACHE if i in mapped or table and i < 16 else NONE
                           for i in range(80)]


def test_rule_12_private_file_beyond_eof_and_guard(s):
    f = s.system.create_file("short", 0)
    f.truncate(P)
    p = s.mm.mmap(0, 3 * P, RW, MAP_PRIVATE, f, 0)
    madv(s, p + 2 * P, 1, INSTALL)
    assert s.fault(p + P, write=True) == (BUS, BUS_ADRERR, p + P)
    assert s.fault(p + 2 * P, write=True) == (SEGV, SEGV_MAPERR, p + 2 * P)


def test_rule_12_anon_read_maps_zero_page_write_a_new_page(s):
    p = s.map("anon", 4, at=0)
    with Delta(s) as d:
        assert s.mm.read(p, P) == bytes(P)
    assert (d["RssAnon"], d["VmPTE"]) == (0, 12)
    assert s.pm(p, 2) == [ZERO, NONE]
    with Delta(s) as d:
        s.mm.write(p, b"w")                  # write over the zero page: a new page
        s.mm.write(p + P, b"v")              # write to a none PTE: a new page
    assert (d["RssAnon"], d["VmPTE"]) == (8, 0)
    assert s.pm(p, 3) == [ANON, ANON, NONE]


@pytest.mark.kinds("file_private", "shmem_private")
def test_rule_12_private_file_cow(s, kind):
    p = s.map(kind, 4, at=0)
    backing = s.file(kind.split("_")[0])
    assert s.mm.read(p + P, 3) == page_byte(1) * 3
    assert s.pm(p + P, 1) == [CACHE]
    with Delta(s) as d:
        s.mm.write(p + P, b"COW")
    assert d["RssAnon"] == 4
    assert s.pm(p + P, 1) == [ANON]
    assert s.mm.read(p + P, 4) == b"COW" + page_byte(1)
    assert backing.pread(P, 4) == page_byte(1) * 4      # the file is not written
    # A write fault on a none PTE copies the file page directly.
    s.mm.write(p + 3 * P + 10, b"!")
    assert s.mm.read(p + 3 * P + 9, 3) == page_byte(3) + b"!" + page_byte(3)


# --- rule 13: kernel-mode accesses --------------------------------------------------------
@pytest.mark.kinds("anon", "shmem", "file", "file_private")
@pytest.mark.parametrize("advice", [MADV_POPULATE_READ, MADV_POPULATE_WRITE])
def test_rule_13_populate_stops_with_efault_at_the_first_guard(s, kind, advice):
    p = s.map(kind, 8, at=0)
    madv(s, p + 3 * P, 1, INSTALL)
    madv(s, p + 6 * P, 1, INSTALL)
    assert errno_of(s.mm.madvise, p, 8 * P, advice) == EFAULT
    pm = s.pm(p, 8)
    assert [bool(e & PRESENT) for e in pm[:3]] == [True] * 3
    assert pm[3] == GUARD and pm[6] == GUARD
    after = pm[4:6] + pm[7:]
    if advice == MADV_POPULATE_WRITE or kind == "anon":
        assert after == [NONE] * 3
    else:       # a read fault maps cached neighbours by fault-around, but not guards
        assert all(e in (NONE, CACHE) for e in after)
    # Starting after the last guard succeeds.
    assert s.mm.madvise(p + 7 * P, P, advice) in (0, None)


def test_rule_13_populate_over_poison_is_ehwpoison(s):
    p = s.map("anon", 2)
    s.mm.install_poison(p + P, P)
    assert errno_of(s.mm.madvise, p, 2 * P, MADV_POPULATE_READ) == EHWPOISON
    assert s.pm(p, 1) == [ZERO]


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_13_mlock_over_a_guard_is_enomem_but_locks(s, kind):
    p = s.map(kind, 6, at=0)
    madv(s, p + 2 * P, 1, INSTALL)
    with Delta(s) as d:
        assert errno_of(s.mm.mlock, p, 6 * P) == ENOMEM
    assert "lo" in s.vmflags(p)
    assert d["VmLck"] == 24
    pm = s.pm(p, 6)
    assert pm[2] == GUARD
    assert all(e & PRESENT for e in pm[:2])            # populated up to the guard
    if kind == "anon":                                  # and not beyond it (files: only
        assert pm[3:] == [NONE] * 3                     # fault-around's cached pages)
    else:
        assert all(e in (NONE, CACHE) for e in pm[3:])
    assert s.fault(p + 2 * P) == (SEGV, SEGV_MAPERR, p + 2 * P)
    # Pages after the guard fault in normally (they are VM_LOCKED now).
    assert s.fault(p + 4 * P) is None
    assert s.mm.munlock(p, 6 * P) in (0, None)


@pytest.mark.kinds("anon", "shmem", "file")
def test_rule_13_mlock2_onfault_over_a_guard_succeeds(s, kind):
    p = s.map(kind, 4, at=0)
    madv(s, p + P, 1, INSTALL)
    with Delta(s) as d:
        assert s.mm.mlock(p, 4 * P, MLOCK_ONFAULT) in (0, None)
    assert d["VmLck"] == 16
    assert {"lo", "lf"} <= set(s.vmflags(p))
    assert s.pm(p, 4) == [NONE, GUARD, NONE, NONE]
    assert s.fault(p + P) == (SEGV, SEGV_MAPERR, p + P)
    assert s.fault(p) is None
    # INSTALL is refused now (rule 4) but REMOVE works (rule 4, 25).
    assert errno_of(s.mm.madvise, p, P, INSTALL) == EINVAL
    madv(s, p, 4, REMOVE)
    assert s.fault(p + P) is None


# --- rule 14: fault-around and THP never fill a marker's slot -----------------------------
@pytest.mark.kinds("shmem", "file", "file_private", "shmem_private")
def test_rule_14_fault_around_skips_markers(s, kind):
    backing = s.file(kind.split("_")[0])
    assert backing.pread(0, P) == page_byte(0) * P       # all cached
    p = s.map(kind, 16, PROT_READ, at=0)                   # 64 KiB aligned
    for i in range(0, 16, 2):
        madv(s, p + i * P, 1, INSTALL)
    assert s.mm.read(p + 5 * P, 1) == page_byte(5)
    pm = s.pm(p, 16)
    assert pm[0::2] == [GUARD] * 8
    assert pm[5] == CACHE
    # Fault-around mapped the other cached odd pages, never the guarded ones.
    assert all(e in (NONE, CACHE) for e in pm[1::2])
    assert [s.fault(p + i * P) is None for i in range(16)] == [i % 2 == 1 for i in range(16)]


@pytest.mark.kinds("shmem", "file")
def test_rule_14_fault_around_after_pageout(s, kind):
    """guard-regions.c test 22 with pagemap: the read of an odd page maps odd pages only."""
    p = s.map(kind, 10, RW, at=0)
    s.mm.write(p, pattern(0, 10))
    madv(s, p, 10, MADV_PAGEOUT)
    s.mm.munmap(p, 10 * P)
    p = s.map(kind, 10, RW, at=0)
    for i in range(0, 10, 2):
        madv(s, p + i * P, 1, INSTALL)
    for i in range(1, 10, 2):
        assert s.mm.read(p + i * P, P) == pattern(i, 1)
    assert s.pm(p, 10)[0::2] == [GUARD] * 5
    assert s.pm(p, 10)[1::2] == [CACHE] * 5


def hugepage_vma(s, npmds=2):
    p = s.map("anon", npmds * HP, at=0)
    madv(s, p, npmds * HP, MADV_HUGEPAGE)
    return p


def test_rule_14_thp_fault_without_markers(s):
    p = hugepage_vma(s)
    with Delta(s) as d:
        s.mm.write(p + 17 * P + 3, b"T")
    assert (d["RssAnon"], d["VmPTE"]) == (2048, 12)      # PUD + PMD + deposited PTE table
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert s.pm(p, 2) == [ANON, ANON]
    assert s.mm.read(p + 17 * P + 3, 1) == b"T" and s.mm.read(p, 1) == b"\0"
    with Delta(s) as d:
        s.mm.write(p + HP * P, b"U")                        # second PMD: deposit only
    assert (d["RssAnon"], d["VmPTE"]) == (2048, 4)


def test_rule_14_a_marker_prevents_a_thp_fault(s):
    p = hugepage_vma(s)
    madv(s, p + 100 * P, 1, INSTALL)
    with Delta(s) as d:
        s.mm.write(p, b"T")
    assert (d["RssAnon"], d["VmPTE"]) == (4, 0)
    assert s.smaps(p)["AnonHugePages"] == 0
    assert s.pm(p + 99 * P, 3) == [NONE, GUARD, NONE]
    # (Without the marker khugepaged could collapse this PMD at any time, so the test
    # keeps it.) The other PMD is not affected.
    s.mm.write(p + HP * P, b"V")
    assert s.smaps(p)["AnonHugePages"] == 2048


def test_rule_14_thp_needs_a_whole_pmd_inside_the_vma(s):
    p = s.map("anon", HP + 8, at=0)
    madv(s, p, HP + 8, MADV_HUGEPAGE)
    s.mm.write(p + HP * P, b"x")          # that PMD is only partly inside the VMA
    assert s.smaps(p)["AnonHugePages"] == 0
    s.mm.write(p, b"y")
    assert s.smaps(p)["AnonHugePages"] == 2048


def test_rule_14_thp_read_fault_maps_the_huge_zero_page(s):
    """A read fault maps the huge zero PMD (it shows as present + file in pagemap, no RSS)
    and a later write there allocates a THP."""
    p = hugepage_vma(s, 1)
    with Delta(s) as d:
        assert s.mm.read(p + 3 * P, 1) == b"\0"
    assert (d["RssAnon"], d["VmPTE"]) == (0, 12)
    assert s.pm(p, 1) == [(1 << 63) | (1 << 61)]
    assert s.smaps(p)["AnonHugePages"] == 0
    scan = s.mm.pagemap_scan(p, p + HP * P, category_anyof_mask=0x1FF, return_mask=0x1FF)
    assert [tuple(r) for r in scan] == [(p, p + HP * P, 0x6A)]   # PRESENT WRITTEN PFNZERO HUGE
    with Delta(s) as d:
        s.mm.write(p + 5 * P, b"z")
    assert (d["RssAnon"], d["VmPTE"]) == (2048, 0)
    assert s.smaps(p)["AnonHugePages"] == 2048
    assert s.pm(p, 1) == [ANON]
    assert s.mm.read(p + 5 * P, 2) == b"z\0"


def test_rule_14_guard_in_a_huge_zero_pmd(s):
    """INSTALL in part of a huge zero PMD splits it into 4 KiB zero-page PTEs."""
    p = hugepage_vma(s, 1)
    s.mm.read(p, 1)
    with Delta(s) as d:
        madv(s, p + 3 * P, 1, INSTALL)
    assert (d["RssAnon"], d["VmPTE"]) == (0, 0)
    assert s.pm(p + 2 * P, 3) == [ZERO, GUARD, ZERO]
    s.mm.write(p + 4 * P, b"w")
    assert s.pm(p + 4 * P, 2) == [ANON, ZERO]
    assert s.smaps(p)["AnonHugePages"] == 0
