"""pagemap and smaps_stats: the page-table side of /proc/pid/pagemap and smaps
(fs/proc/task_mmu.c pte_to_pagemap_entry, smaps_account)."""
import numpy as np
import pytest

from ptengine import core as _core
from .conftest import BASE, PAGE, PMD, PROT_PRIVATE, PTE_RW_PAGE
from .test_core_guards_zap import anon_page

P = PAGE
PM_PRESENT, PM_SWAP, PM_FILE = 1 << 63, 1 << 62, 1 << 61
PM_GUARD, PM_UFFD, PM_EXCL, PM_SD = 1 << 58, 1 << 57, 1 << 56, 1 << 55


def pagemap(pt, start, n, softdirty=False):
    out = np.full(n, 0xDEAD, np.uint64)
    pt.pagemap(start, start + n * P, out, softdirty)
    return [int(v) for v in out]


def test_pagemap_entry_kinds(pt, pt2, frames):
    anon = anon_page(pt, frames, BASE)                          # exclusive anon
    fpfn = frames.alloc(_core.FRAME_FILE)
    pt.map_page(BASE + P, fpfn, PROT_PRIVATE | _core.PTE_SOFT_DIRTY)
    pt.map_page(BASE + 2 * P, frames.zero_pfn, PROT_PRIVATE | _core.PTE_SPECIAL)
    pt.install_guards(BASE + 3 * P, BASE + 4 * P)
    pt.set_marker(BASE + 4 * P, _core.PTE_MARKER_UFFD_WP)
    pt.set_marker(BASE + 5 * P, _core.PTE_MARKER_POISONED)
    pt.set_swap(BASE + 6 * P, 3, 0x55, _core.SWP_SOFT_DIRTY)
    got = pagemap(pt, BASE, 8)
    assert got[0] == PM_PRESENT | PM_EXCL | anon
    assert got[1] == PM_PRESENT | PM_FILE | PM_EXCL | PM_SD | fpfn
    assert got[2] == PM_PRESENT | frames.zero_pfn           # no page: no FILE, no EXCL
    assert got[3] == PM_SWAP | PM_GUARD | 159                # 31 | (4 << 5)
    assert got[4] == PM_SWAP | PM_UFFD | (31 | 1 << 5)
    assert got[5] == PM_SWAP | (31 | 2 << 5)
    assert got[6] == PM_SWAP | PM_SD | (3 | 0x55 << 5)
    assert got[7] == 0
    # VM_SOFTDIRTY: bit 55 everywhere, holes included
    assert all(v & PM_SD for v in pagemap(pt, BASE, 8, softdirty=True))
    assert pagemap(pt, BASE + PMD, 2, softdirty=True) == [PM_SD, PM_SD]
    # mapped twice: not exclusive
    pt.copy_range(pt2, BASE, BASE + P)
    assert pagemap(pt, BASE, 1)[0] == PM_PRESENT | anon
    frames.put(fpfn)


def test_pagemap_huge_and_strided_output(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE | _core.PTE_SOFT_DIRTY)
    frames.put_huge(head)
    got = pagemap(pt, BASE + PMD - 2 * P, 3)
    assert got[:2] == [PM_PRESENT | PM_EXCL | PM_SD | (head + 510),
                       PM_PRESENT | PM_EXCL | PM_SD | (head + 511)]
    assert got[2] == 0
    buf = np.zeros(8, np.uint64)
    pt.pagemap(BASE, BASE + 4 * P, buf[::2])
    assert [int(v) & 0xFFFFF for v in buf] == [head, 0, head + 1, 0, head + 2, 0, head + 3, 0]


def test_pagemap_validates_its_buffer(pt):
    with pytest.raises(ValueError):
        pt.pagemap(BASE, BASE + 4 * P, np.zeros(3, np.uint64))
    with pytest.raises((ValueError, TypeError)):
        pt.pagemap(BASE, BASE + 4 * P, np.zeros(4, np.int32))
    with pytest.raises(TypeError):
        pt.pagemap(BASE, BASE + 4 * P, None)
    ro = np.zeros(4, np.uint64)
    ro.flags.writeable = False
    with pytest.raises((ValueError, TypeError)):
        pt.pagemap(BASE, BASE + 4 * P, ro)
    pt.pagemap(BASE, BASE, np.zeros(0, np.uint64))


def test_smaps_private_shared_and_pss(pt, pt2, frames):
    pt.fault_anon(BASE, BASE + 3 * P, True, PROT_PRIVATE)   # 3 dirty, young anon pages
    pt.fault_anon(BASE + 3 * P, BASE + 4 * P, False, PROT_PRIVATE)   # zero page: ignored
    s = pt.smaps_stats(BASE, BASE + 4 * P)
    assert s["rss"] == 3 * P and s["private_dirty"] == 3 * P and s["anonymous"] == 3 * P
    assert s["pss_x4096"] == 3 * P << 12 and s["pss_anon_x4096"] == s["pss_x4096"]
    assert s["referenced"] == 3 * P and s["shared_dirty"] == 0
    pt.copy_range(pt2, BASE, BASE + 4 * P, _core.COPY_COW)
    s = pt.smaps_stats(BASE, BASE + 4 * P)
    assert s["shared_dirty"] == 3 * P and s["private_dirty"] == 0
    assert s["pss_x4096"] == (3 * P << 12) // 2 and s["pss_dirty_x4096"] == s["pss_x4096"]
    c = pt2.smaps_stats(BASE, BASE + 4 * P)
    assert c["referenced"] == 0                    # the child's PTEs are old


def test_smaps_file_pages(pt, pt2, frames):
    pfn = frames.alloc(_core.FRAME_FILE)           # refcount 2 once mapped
    pt.map_page(BASE, pfn, PROT_PRIVATE & ~_core.PTE_ACCESSED)
    s = pt.smaps_stats(BASE, BASE + P)
    assert s["private_clean"] == P and s["pss_file_x4096"] == P << 12
    assert s["anonymous"] == 0 and s["referenced"] == 0
    frames.set_dirty(pfn)                          # the folio's dirty bit counts too
    assert pt.smaps_stats(BASE, BASE + P)["private_dirty"] == P
    pt2.map_page(BASE, pfn, PROT_PRIVATE)
    s = pt.smaps_stats(BASE, BASE + P)
    assert s["shared_dirty"] == P and s["pss_x4096"] == (P << 12) // 2
    shm = frames.alloc(_core.FRAME_SHMEM)
    pt.map_page(BASE + P, shm, PROT_PRIVATE)
    assert pt.smaps_stats(BASE + P, BASE + 2 * P)["pss_shmem_x4096"] == P << 12
    frames.put(pfn)
    frames.put(shm)


def test_smaps_huge_and_swap(pt, frames):
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    pt.set_swap(BASE + PMD, 0, 3)
    pt.install_guards(BASE + PMD + P, BASE + PMD + 2 * P)
    s = pt.smaps_stats(BASE, BASE + PMD + 2 * P)
    assert s["anon_huge"] == PMD and s["rss"] == PMD and s["private_dirty"] == PMD
    assert s["swap"] == P                          # the marker is not swap


def test_count_and_dump(pt, frames):
    pt.fault_anon(BASE, BASE + 2 * P, False, PROT_PRIVATE)
    anon_page(pt, frames, BASE + 2 * P)
    pt.install_guards(BASE + 3 * P, BASE + 5 * P)
    pt.set_marker(BASE + 5 * P, 7)
    c = pt.count(BASE - PMD, BASE + PMD)
    assert c == {"none": 1024 - 6, "present": 3, "protnone": 0, "zero_page": 2,
                 "guard": 3, "poison": 1, "uffd_wp": 1, "swap": 0, "huge_pmd": 0,
                 "pte_tables": 1}
    d = pt.dump()
    assert sorted(d) == [BASE + i * P for i in range(6)]
    assert d[BASE + 3 * P] == _core.GUARD_PTE


def test_pagemap_exclusive_is_per_folio_for_a_huge_pmd(pt, pt2, frames):
    """PM_MMAP_EXCLUSIVE of a PMD-mapped THP is decided per folio: after fork, a subpage
    the child no longer maps is still not exclusive in the parent."""
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE, head, PTE_RW_PAGE)
    frames.put_huge(head)
    assert all(v & PM_EXCL for v in pagemap(pt, BASE, 8))
    pt.copy_range(pt2, BASE, BASE + PMD, _core.COPY_COW)
    pt2.zap(BASE + 5 * P, BASE + 6 * P)                 # splits the child's PMD
    assert frames.mapcount(head + 5) == 1
    assert not any(v & PM_EXCL for v in pagemap(pt, BASE, 8))
    pt2.zap(BASE, BASE + PMD)
    assert all(v & PM_EXCL for v in pagemap(pt, BASE, 8))


def test_pagemap_huge_zero_page(pt, frames):
    pt.map_huge_pmd(BASE, frames.huge_zero_pfn, PROT_PRIVATE)
    assert pagemap(pt, BASE + 3 * P, 1) == [PM_PRESENT | PM_FILE | (frames.huge_zero_pfn + 3)]
