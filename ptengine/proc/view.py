"""/proc views of an mm (fs/proc/task_mmu.c) and its invariant check (mm/debug.c).

maps, smaps, status, pagemap and PAGEMAP_SCAN mirror show_map_vma(), show_smap(),
task_mem(), pagemap_read() and do_pagemap_scan(); check() is validate_mm(). Functions of an
mm_struct; MM's methods of the same names call them. Plain Python: nothing here is hot.
"""
import errno
import itertools

from .. import core as _core
from ..constants import (PAGE_IS_FILE, PAGE_IS_GUARD, PAGE_IS_HUGE, PAGE_IS_PFNZERO,
                        PAGE_IS_PRESENT, PAGE_IS_SOFT_DIRTY, PAGE_IS_SWAPPED, PAGE_IS_WRITTEN,
                        PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, PM_FILE, PM_GUARD_REGION,
                        PM_PFRAME_MASK, PM_PRESENT, PM_SCAN_CATEGORIES, PM_SOFT_DIRTY, PM_SWAP,
                        PM_UFFD_WP, TASK_SIZE, VM_GROWSDOWN, VM_LOCKED, VM_SHARED, VM_SOFTDIRTY,
                        VM_WRITE)
from ..errors import InvariantError, raise_errno
from . import text as procfs
from ..mm.memory import thp_vma
from ..args import as_ulong


def thp_eligible(vma, thp_enabled):
    """smaps THPeligible: thp_vma_allowable_order(TVA_SMAPS, PMD_ORDER) with shmem THP
    `never`: a private anonymous VMA THP may back (under the profile's `enabled` mode)
    that holds a whole PMD-aligned 2 MiB."""
    first = (vma.start + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    return bool(thp_vma(vma, thp_enabled)) and first + PMD_SIZE <= vma.end


def _heap(mm):
    return (mm.start_brk, mm.brk_end)


def _gate(mm):
    """show_map()/show_smap() go on past the last VMA to get_gate_vma(): [vsyscall]."""
    return () if mm.gate_vma is None else (mm.gate_vma,)


def maps(mm):
    return procfs.render_maps(itertools.chain(mm.vma_tree, _gate(mm)),
                              heap=_heap(mm), stack=mm.start_stack)


def maps_line_count(mm):
    """len(maps().splitlines()) without rendering: one line per VMA, and the gate."""
    return len(mm.vma_tree) + len(_gate(mm))


def smaps(mm):
    heap = _heap(mm)
    profile, thp_mode = mm.system.profile, mm.profile["thp_enabled"]
    # The gate page has no page tables of the mm: its counters are all zero.
    gate = "".join(procfs.render_smaps(v, None, heap=heap, stack=mm.start_stack,
                                       show_soft_dirty=profile.soft_dirty)
                   for v in _gate(mm))
    return "".join(procfs.render_smaps(v, stats, heap=heap, stack=mm.start_stack,
                                       thp_eligible=thp_eligible(v, thp_mode),
                                       locked_bytes=stats["locked"],
                                       show_soft_dirty=profile.soft_dirty)
                   for v, stats in ((v, _smaps_stats(mm, v)) for v in mm.vma_tree)) + gate


def _smaps_stats(mm, vma):
    """smap_gather_stats() for one VMA: the page-table walk, under the names the
    renderer uses, plus Locked (the VMA's Pss when it is VM_LOCKED)."""
    stats = mm.pt.smaps_stats(vma.start, vma.end)
    stats["shmem_thp"] = stats["shmem_pmd_mapped"]
    stats["file_thp"] = stats["file_pmd_mapped"]
    stats["locked"] = stats["pss_x4096"] >> 12 if vma.flags & VM_LOCKED else 0
    return stats


def status(mm):
    """The mm fields of /proc/PID/status, in kB, plus map_count."""
    total = data = stack = 0
    for v in mm.vma_tree:
        size = v.end - v.start
        total += size
        if v.flags & VM_GROWSDOWN:
            stack += size
        elif v.flags & (VM_WRITE | VM_SHARED) == VM_WRITE:
            data += size
    pt = mm.pt
    pages_kb = PAGE_SIZE // 1024
    anon, file, shmem = _rss_kb(mm)
    # VmLck is mm->locked_vm, a counter kept by mlock/munlock/munmap/mremap: after
    # MREMAP_DONTUNMAP the unlocked old VMA's pages still count.
    locked = mm.locked_vm * pages_kb
    return {"VmSize": total >> 10, "VmLck": locked, "VmRSS": anon + file + shmem,
            "RssAnon": anon, "RssFile": file, "RssShmem": shmem, "VmData": data >> 10,
            "VmStk": stack >> 10, "VmPTE": pt.pgtables_bytes >> 10,
            "map_count": mm.map_count}


def _rss_kb(mm):
    """RssAnon, RssFile, RssShmem in kB: the mm's rss_stat counters."""
    pt, pages_kb = mm.pt, PAGE_SIZE // 1024
    return pt.rss_anon * pages_kb, pt.rss_file * pages_kb, pt.rss_shmem * pages_kb


def describe(mm):
    """The mm at a glance, from its counters (nothing is rendered): map_count, VmPTE
    and VmRSS as /proc/PID/status shows them."""
    if mm.dead:
        return f"<{type(mm).__name__} dead>"
    return (f"<{type(mm).__name__} map_count={mm.map_count} "
            f"VmPTE={mm.pt.pgtables_bytes >> 10} kB VmRSS={sum(_rss_kb(mm))} kB>")


def pagemap(mm, addr, size):
    """/proc/PID/pagemap entries for [addr, addr+size), as a privileged reader sees them."""
    addr, size = as_ulong(addr, "addr"), as_ulong(size, "size")
    start = addr & PAGE_MASK
    # fs/proc/task_mmu.c:pagemap_read(): the file ends at TASK_SIZE, so a range
    # reaching past it (or past 2**64) reads only the entries below it.
    end = min((addr + size + PAGE_SIZE - 1) & PAGE_MASK, TASK_SIZE) if size else start
    end = max(start, end)
    np = _numpy()
    out = np.zeros((end - start) >> PAGE_SHIFT, dtype=np.uint64)
    for v in mm.vma_tree.overlapping(start, end):
        lo, hi = max(v.start, start), min(v.end, end)
        i = (lo - start) >> PAGE_SHIFT
        j = (hi - start) >> PAGE_SHIFT
        _pagemap_fill(mm, lo, hi, out[i:j], bool(v.flags & VM_SOFTDIRTY))
    return out


def _pagemap_fill(mm, lo, hi, out, vma_softdirty):
    """The page table's pagemap entries. Without CONFIG_MEM_SOFT_DIRTY the PTE's
    soft-dirty bits are 0 (x86 defines _PAGE_SOFT_DIRTY and _PAGE_SWP_SOFT_DIRTY so),
    and pte_mkdirty() cannot set what the entry lacks: no entry reports bit 55."""
    mm.pt.pagemap(lo, hi, out, vma_softdirty)
    if not mm.system.profile.soft_dirty:
        out &= ~_numpy().uint64(PM_SOFT_DIRTY)


def pagemap_scan(mm, start, end, *, category_mask=0, category_anyof_mask=0,
                 return_mask=0, category_inverted=0, max_pages=0, vec_len=None):
    """The PAGEMAP_SCAN ioctl: coalesced (start, end, categories & return_mask) regions
    of the pages whose categories match the masks."""
    # Every field of struct pm_scan_arg is a __u64.
    start, end = as_ulong(start, "start"), as_ulong(end, "end")
    masks = [as_ulong(m, name) for m, name in (
        (category_mask, "category_mask"), (category_anyof_mask, "category_anyof_mask"),
        (return_mask, "return_mask"), (category_inverted, "category_inverted"))]
    max_pages = as_ulong(max_pages, "max_pages")
    if any(m & ~PM_SCAN_CATEGORIES for m in masks) or start & ~PAGE_MASK:
        raise_errno(errno.EINVAL)
    if end < start or end > TASK_SIZE:
        raise_errno(errno.EFAULT)
    mask, anyof, ret_mask, inverted = masks
    end = (end + PAGE_SIZE - 1) & PAGE_MASK
    regions = []
    budget = max_pages or (1 << 64)
    for v in mm.vma_tree.overlapping(start, end):
        lo, hi = max(v.start, start), min(v.end, end)
        cats = _scan_categories(mm, v, lo, hi)
        test = cats ^ inverted
        hit = (test & mask) == mask
        if anyof:
            hit &= (test & anyof) != 0
        idx = _numpy().flatnonzero(hit)
        for k in idx:
            if budget == 0:
                return regions
            page = lo + (int(k) << PAGE_SHIFT)
            value = int(cats[k]) & ret_mask
            if regions and regions[-1][1] == page and regions[-1][2] == value:
                regions[-1][1] = page + PAGE_SIZE
            else:
                if vec_len is not None and len(regions) == vec_len:
                    return [tuple(r) for r in regions]
                regions.append([page, page + PAGE_SIZE, value])
            budget -= 1
    return [tuple(r) for r in regions]


def _scan_categories(mm, vma, lo, hi):
    """pagemap_page_category() per page, from the pagemap bits of the range."""
    np = _numpy()
    pm = np.zeros((hi - lo) >> PAGE_SHIFT, dtype=np.uint64)
    _pagemap_fill(mm, lo, hi, pm, False)
    present = (pm & np.uint64(PM_PRESENT)) != 0
    swapped = (pm & np.uint64(PM_SWAP)) != 0
    uffd_wp = (pm & np.uint64(PM_UFFD_WP)) != 0
    # Per PMD: a PTE table (its none entries count as written, as
    # pagemap_page_category() has it), a huge leaf (PAGE_IS_HUGE) or nothing (a hole:
    # only the VMA's own category).
    table = np.zeros(pm.shape, dtype=bool)
    huge = np.zeros(pm.shape, dtype=bool)
    addr = lo
    while addr < hi:
        nxt = min(hi, (addr & ~(PMD_SIZE - 1)) + PMD_SIZE)
        pmd = mm.pt.get_pmd(addr)
        i, j = (addr - lo) >> PAGE_SHIFT, (nxt - lo) >> PAGE_SHIFT
        if pmd & _core.PTE_PSE:
            huge[i:j] = True
        elif pmd:
            table[i:j] = True
        addr = nxt
    cats = np.zeros(pm.shape, dtype=np.int64)
    cats |= np.where(present, PAGE_IS_PRESENT, 0)
    cats |= np.where(swapped, PAGE_IS_SWAPPED, 0)
    cats |= np.where((present | swapped | table) & ~uffd_wp, PAGE_IS_WRITTEN, 0)
    cats |= np.where(huge, PAGE_IS_HUGE, 0)
    # The zero page and the huge zero page: PFNZERO, and never FILE (pagemap shows
    # PM_FILE for the huge zero PMD, but the scan asks vm_normal_page_pmd(), which
    # has no page for it).
    frame = pm & np.uint64(PM_PFRAME_MASK)
    huge_zero = np.uint64(mm.frames.huge_zero_pfn)
    zero = present & ((frame == np.uint64(mm.frames.zero_pfn))
                      | ((frame >= huge_zero) & (frame < huge_zero + np.uint64(512))))
    cats |= np.where(present & ~zero & ((pm & np.uint64(PM_FILE)) != 0), PAGE_IS_FILE, 0)
    cats |= np.where(zero, PAGE_IS_PFNZERO, 0)
    cats |= np.where((pm & np.uint64(PM_GUARD_REGION)) != 0, PAGE_IS_GUARD, 0)
    cats |= np.where((pm & np.uint64(PM_SOFT_DIRTY)) != 0, PAGE_IS_SOFT_DIRTY, 0)
    if vma.flags & VM_SOFTDIRTY:
        cats |= PAGE_IS_SOFT_DIRTY
    return cats


# --- invariants ----------------------------------------------------------------------

def check(mm):
    """Verify every internal invariant; raise InvariantError on the first violation."""
    prev_end = 0
    for v in mm.vma_tree:
        if v.start & ~PAGE_MASK or v.end & ~PAGE_MASK or not v.start < v.end <= TASK_SIZE:
            raise InvariantError(f"bad VMA bounds {v!r}")
        if v.start < prev_end:
            raise InvariantError(f"overlapping or unordered VMA {v!r}")
        if prev_end < v.start and _mapped(mm.pt.count(prev_end, v.start)):
            raise InvariantError(f"page-table entries outside any VMA in "
                                 f"[{prev_end:#x}, {v.start:#x})")
        prev_end = v.end
    if prev_end < 1 << 47 and _mapped(mm.pt.count(prev_end, 1 << 47)):
        raise InvariantError(f"page-table entries above the last VMA ({prev_end:#x})")
    try:
        mm.vma_tree.check()
        mm.pt.check()
    except AssertionError as e:
        raise InvariantError(str(e)) from None


def _numpy():
    """numpy, imported on first use: importing it starts OpenBLAS worker threads that
    spin on a CPU the simulation (or the live server beside it) could use, and only the
    pagemap readers need it."""
    import numpy
    return numpy


def _mapped(counts):
    """Entries that are not none in a count() result."""
    return sum(counts[k] for k in ("present", "protnone", "guard", "poison", "uffd_wp", "swap",
                                   "huge_pmd"))
