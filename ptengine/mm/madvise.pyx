# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""madvise(2), process_madvise(2), guard regions, and anonymous VMA names: mm/madvise.c.

do_madvise() validates and walks the VMAs of the range (madvise_walk_vmas()),
madvise_vma_behavior() dispatches per VMA; guard install is "try optimistically, on the
first populated entry zap and retry" (madvise_guard_install()). prctl(PR_SET_VMA_ANON_NAME)
is madvise_set_anon_name() over the same walk. MADV_COLLAPSE (mm/khugepaged.c) is here
too, on its cold path.
"""
import errno

import re

from .. import core as _core
from .. import constants as C
from libc.stdint cimport uint64_t
from ..core.walkers cimport ZAP_KEEP_UFFD_WP, pt_install_guards, pt_remove_guards, pt_zap
from .memory cimport madvise_populate, pte_flags_for
from .mm_struct cimport mm_struct, check_alive, pt_result
from .mm_types cimport VMA, u64, vma_required
from .mprotect cimport vma_visitor
from .vma cimport check_piece, split_huge_at, __vma_modify, anon_vma_prepare
from ..constants import (ANON_VMA_NAME_MAX_LEN, MADV_COLD, MADV_COLLAPSE, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP,
                        MADV_DONTFORK, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE,
                        MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_HWPOISON,
                        MADV_KEEPONFORK, MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_NORMAL,
                        MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_RANDOM,
                        MADV_REMOVE, MADV_SEQUENTIAL, MADV_SOFT_OFFLINE, MADV_UNMERGEABLE,
                        MADV_WILLNEED, MADV_WIPEONFORK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE,
                        VM_DONTCOPY, VM_DONTDUMP, VM_DONTEXPAND, VM_DROPPABLE,
                        VM_HUGEPAGE, VM_HUGETLB, VM_IO, VM_LOCKED, VM_MAYBE_GUARD, VM_MAYSHARE,
                        VM_MAYWRITE, VM_MERGEABLE, VM_MIXEDMAP, VM_NOHUGEPAGE, VM_PFNMAP,
                        VM_RAND_READ, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WIPEONFORK,
                        VM_WRITE)
from ..errors import raise_errno
from ..args import page_range
from ..iov import import_iovec, iterated

VALID_ADVICE = frozenset({
    MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
    MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE,
    MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_COLD,
    MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_DONTNEED_LOCKED,
    MADV_COLLAPSE, MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE})
# Advice that discards memory: refused on sealed read-only anonymous VMAs (mm/mseal.c).
DISCARD_ADVICE = frozenset({MADV_FREE, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_REMOVE,
                            MADV_DONTFORK, MADV_WIPEONFORK, MADV_GUARD_INSTALL})
# Advice that only changes vm_flags; it takes the mmap lock for writing.
FLAG_ADVICE = frozenset({MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTFORK,
                         MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTDUMP,
                         MADV_DODUMP, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE,
                         MADV_NOHUGEPAGE})
MAX_GUARD_RETRIES = 3

# The three sets above as one C table, read by the syscall path for every call (a set
# lookup boxes the advice and hashes it); the sets stay the one definition.
cdef enum:
    N_ADVICE = 128               # every MADV_* is below it (asserted below)
    ADVICE_VALID = 1
    ADVICE_DISCARD = 2
    ADVICE_FLAG = 4
cdef unsigned char ADVICE_KIND[N_ADVICE]
for _kind, _advice_set in ((ADVICE_VALID, VALID_ADVICE), (ADVICE_DISCARD, DISCARD_ADVICE),
                           (ADVICE_FLAG, FLAG_ADVICE)):
    for _advice in _advice_set:
        assert 0 <= _advice < N_ADVICE
        ADVICE_KIND[_advice] |= _kind


cdef inline bint advice_is(int advice, unsigned char kind) noexcept:
    """Whether `advice` is in the set of `kind` (ADVICE_VALID, _DISCARD or _FLAG)."""
    return 0 <= advice < N_ADVICE and ADVICE_KIND[advice] & kind != 0

cdef u64 c_PAGE_OFFSET = C.PAGE_SIZE - 1
# The advice values do_madvise() and madvise_vma_behavior() compare a C int with.
cdef int c_MADV_COLD = MADV_COLD, c_MADV_COLLAPSE = MADV_COLLAPSE
cdef int c_MADV_DONTNEED = MADV_DONTNEED, c_MADV_DONTNEED_LOCKED = MADV_DONTNEED_LOCKED
cdef int c_MADV_FREE = MADV_FREE, c_MADV_GUARD_INSTALL = MADV_GUARD_INSTALL
cdef int c_MADV_GUARD_REMOVE = MADV_GUARD_REMOVE, c_MADV_HWPOISON = MADV_HWPOISON
cdef int c_MADV_PAGEOUT = MADV_PAGEOUT, c_MADV_POPULATE_READ = MADV_POPULATE_READ
cdef int c_MADV_POPULATE_WRITE = MADV_POPULATE_WRITE, c_MADV_REMOVE = MADV_REMOVE
cdef int c_MADV_SOFT_OFFLINE = MADV_SOFT_OFFLINE, c_MADV_WILLNEED = MADV_WILLNEED
cdef u64 c_VM_SEALED = C.VM_SEALED, c_VM_MAYBE_GUARD = C.VM_MAYBE_GUARD
cdef u64 c_VM_SPECIAL = C.VM_SPECIAL, c_VM_HUGETLB = C.VM_HUGETLB, c_VM_LOCKED = C.VM_LOCKED
# Per-PMD outcomes of MADV_COLLAPSE.
_DONE, _SKIP, _STOP = 0, 1, 2


cpdef bint is_valid_guard_vma(VMA vma, bint allow_locked):
    """mm/madvise.c:is_valid_guard_vma()."""
    vma_required(vma)
    cdef u64 disallowed = c_VM_SPECIAL | c_VM_HUGETLB | (0 if allow_locked else c_VM_LOCKED)
    return not vma.flags & disallowed


cdef object advise_vma(mm_struct mm, VMA vma, u64 start, u64 end, object advice):
    """madvise_walk_vmas()'s step: the advice on one VMA piece."""
    return __madvise_vma_behavior(mm, vma, start, end, advice)


def is_ro_anon(vma):
    return vma.file is None and not vma.flags & VM_SHARED and not vma.flags & VM_WRITE


def new_behaviour_flags(vma, advice):
    """The vm_flags a flag-only advice gives a VMA (madvise_vma_behavior()); EINVAL where
    the kernel refuses."""
    f = vma.flags
    if advice == MADV_NORMAL:
        return f & ~(VM_RAND_READ | VM_SEQ_READ)
    if advice == MADV_SEQUENTIAL:
        return (f & ~VM_RAND_READ) | VM_SEQ_READ
    if advice == MADV_RANDOM:
        return (f & ~VM_SEQ_READ) | VM_RAND_READ
    if advice == MADV_DONTFORK:
        return f | VM_DONTCOPY
    if advice == MADV_DOFORK:
        if f & VM_IO:
            raise_errno(errno.EINVAL)
        return f & ~VM_DONTCOPY
    if advice == MADV_WIPEONFORK:
        if vma.file is not None or f & VM_SHARED:
            raise_errno(errno.EINVAL)
        return f | VM_WIPEONFORK
    if advice == MADV_KEEPONFORK:
        if f & VM_DROPPABLE:
            raise_errno(errno.EINVAL)
        return f & ~VM_WIPEONFORK
    if advice == MADV_DONTDUMP:
        return f | VM_DONTDUMP
    if advice == MADV_DODUMP:
        if (not f & VM_HUGETLB and f & VM_SPECIAL) or f & VM_DROPPABLE:
            raise_errno(errno.EINVAL)
        return f & ~VM_DONTDUMP
    if advice == MADV_HUGEPAGE:
        return (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
    if advice == MADV_NOHUGEPAGE:
        return (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
    if advice == MADV_MERGEABLE:
        if f & (VM_MERGEABLE | VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND
                | VM_HUGETLB | VM_MIXEDMAP | VM_DROPPABLE):
            return f
        return f | VM_MERGEABLE
    if advice == MADV_UNMERGEABLE:
        return f & ~VM_MERGEABLE
    raise ValueError(f"unknown advice {advice!r}")


# mirrors mm/madvise.c:do_madvise()
cdef long long sys_madvise(mm_struct mm, u64 addr, u64 length, int advice) except? -1:
    """do_madvise() on converted arguments: the checks, then the walk."""
    cdef u64 end
    check_alive(mm)
    if not advice_is(advice, ADVICE_VALID):
        raise_errno(errno.EINVAL)
    # start page aligned; start + PAGE_ALIGN(length) may not reach 2**64.
    if addr & c_PAGE_OFFSET or length > ~c_PAGE_OFFSET:
        raise_errno(errno.EINVAL)
    length = (length + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
    if length > ~addr:
        raise_errno(errno.EINVAL)
    end = addr + length
    if end == addr:
        return 0
    if advice == c_MADV_HWPOISON or advice == c_MADV_SOFT_OFFLINE:
        raise_errno(errno.EPERM)
    if advice == c_MADV_POPULATE_READ or advice == c_MADV_POPULATE_WRITE:
        err = madvise_populate(mm, addr, end, advice == c_MADV_POPULATE_WRITE)
        if err:
            raise_errno(err)
        return 0
    madvise_walk_vmas(mm, addr, end, advise_vma, advice)
    return 0


def madvise_vma_behavior(mm_struct mm, VMA vma, u64 start, u64 end, int advice):
    """__madvise_vma_behavior() for Python callers: vma must be this mm's and [start, end)
    a page-aligned piece of it."""
    check_piece(mm, vma, start, end)
    return __madvise_vma_behavior(mm, vma, start, end, advice)


cdef VMA __madvise_vma_behavior(mm_struct mm, VMA vma, u64 start, u64 end, int advice):
    """madvise_vma_behavior(): returns the VMA covering [start, end) afterwards (vma.pxd:
    a walk's piece, trusted)."""
    if vma.flags & c_VM_SEALED and advice_is(advice, ADVICE_DISCARD) and is_ro_anon(vma):
        raise_errno(errno.EPERM)
    if advice_is(advice, ADVICE_FLAG):
        try:
            return __vma_modify(mm, vma, start, end, new_behaviour_flags(vma, advice),
                                vma.anon_name)
        except OSError as e:
            # madvise_update_vma() reports a failed split as EAGAIN.
            if e.errno == errno.ENOMEM:
                raise_errno(errno.EAGAIN)
            raise
    # madvise_vma_behavior()'s switch over the advice that works on the page tables.
    if advice == c_MADV_GUARD_INSTALL:
        __madvise_guard_install(mm, vma, start, end)
    elif advice == c_MADV_GUARD_REMOVE:
        __madvise_guard_remove(mm, vma, start, end)
    elif advice == c_MADV_DONTNEED:
        _dontneed(mm, vma, start, end)
    elif advice == c_MADV_DONTNEED_LOCKED:
        _dontneed(mm, vma, start, end, locked_ok=True)
    elif advice == c_MADV_FREE:
        _free(mm, vma, start, end)
    elif advice == c_MADV_REMOVE:
        _remove(mm, vma, start, end)
    elif advice == c_MADV_WILLNEED:
        _willneed(mm, vma, start, end)
    elif advice == c_MADV_COLD:
        _cold(mm, vma, start, end)
    elif advice == c_MADV_PAGEOUT:
        _pageout(mm, vma, start, end)
    elif advice == c_MADV_COLLAPSE:
        _collapse(mm, vma, start, end)
    else:
        raise ValueError(f"unknown advice {advice!r}")
    return vma


# --- guard regions -------------------------------------------------------------------

def madvise_guard_install(mm_struct mm, VMA vma, u64 start, u64 end):
    """__madvise_guard_install() for Python callers (checked as madvise_vma_behavior())."""
    check_piece(mm, vma, start, end)
    __madvise_guard_install(mm, vma, start, end)


cdef int __madvise_guard_install(mm_struct mm, VMA vma, u64 start, u64 end) except -1:
    """madvise_guard_install(): flag the VMA (VM_MAYBE_GUARD, no split), prepare its
    anon_vma, then install markers; populated entries are zapped and the walk retried."""
    if not is_valid_guard_vma(vma, False):
        raise_errno(errno.EINVAL)
    if mm.profile.maybe_guard:
        vma.flags |= c_VM_MAYBE_GUARD
        if vma.file is None and vma.anon_vma is None:
            anon_vma_prepare(mm, vma)
    elif vma.anon_vma is None:
        anon_vma_prepare(mm, vma)
    cdef int zap_flags = 0 if vma.file is None else ZAP_KEEP_UFFD_WP
    cdef uint64_t stop
    cdef int attempt
    for attempt in range(MAX_GUARD_RETRIES):
        pt_result(pt_install_guards(&mm.pt.mm, start, end, &stop))
        if stop == end:
            return 0
        pt_result(pt_zap(&mm.pt.mm, start, end, zap_flags))
    # The kernel restarts the syscall; only a marker an ordinary zap keeps (uffd-wp in
    # a file VMA) can get here, and this simulator never creates one.
    raise RuntimeError("guard install would restart forever")


def madvise_guard_remove(mm_struct mm, VMA vma, u64 start, u64 end):
    """__madvise_guard_remove() for Python callers (checked as madvise_vma_behavior())."""
    check_piece(mm, vma, start, end)
    __madvise_guard_remove(mm, vma, start, end)


cdef int __madvise_guard_remove(mm_struct mm, VMA vma, u64 start, u64 end) except -1:
    """madvise_guard_remove(): drop the guard markers of the piece."""
    if not is_valid_guard_vma(vma, True):
        raise_errno(errno.EINVAL)
    pt_remove_guards(&mm.pt.mm, start, end)
    return 0


# --- discarding advice ---------------------------------------------------------------

def _dontneed(mm_struct mm, vma, start, end, locked_ok=False):
    forbidden = VM_PFNMAP | (0 if locked_ok else VM_LOCKED)
    if vma.flags & VM_HUGETLB or vma.flags & forbidden:
        raise_errno(errno.EINVAL)
    flags = _core.ZAP_RECLAIM_PT | (0 if vma.is_anonymous else _core.ZAP_KEEP_UFFD_WP)
    split_huge_edges(mm, start, end)
    mm.pt.zap(start, end, flags)


def _free(mm_struct mm, vma, start, end):
    """madvise_free_single_vma() / madvise_free_pte_range(): anonymous only. Swap
    entries and poison markers are cleared, guard markers kept. Mapped anonymous
    pages stay (there is no memory pressure to reclaim them) but become lazily
    freeable: clean and old in the PTE, PG_dirty cleared, marked lazyfree. A page
    whose folio is dirty and mapped more than once is skipped. A huge PMD wholly in
    the range is handled whole (madvise_free_huge_pmd()), else split."""
    if vma.flags & (VM_PFNMAP | VM_LOCKED | VM_HUGETLB):
        raise_errno(errno.EINVAL)
    if not vma.is_anonymous:
        raise_errno(errno.EINVAL)
    split_huge_edges(mm, start, end)
    frames, pt = mm.frames, mm.pt
    counts = pt.count(start, end)
    if not (counts["present"] - counts["zero_page"] or counts["huge_pmd"]
            or counts["poison"] or counts["swap"]):
        return
    addr = start
    while addr < end:
        kind, val, raw = pt.lookup(addr)
        if kind == _core.ENTRY_HUGE:
            if val != frames.huge_zero_pfn:
                _mark_lazyfree(mm, addr, addr + PMD_SIZE, val, _core.HPAGE_NR)
            addr += PMD_SIZE
            continue
        if kind == _core.ENTRY_SWAP or \
                kind == _core.ENTRY_MARKER and val & _core.PTE_MARKER_POISONED:
            pt.zap(addr, addr + PAGE_SIZE, 0)
        elif kind == _core.ENTRY_PRESENT and val != frames.zero_pfn \
                and frames.kind(val) == _core.FRAME_ANON:
            _mark_lazyfree(mm, addr, addr + PAGE_SIZE, val, 1)
        addr += PAGE_SIZE


def _mark_lazyfree(mm_struct mm, start, end, pfn, nr):
    """One folio of MADV_FREE: clear its PTE's young and dirty bits, its PG_dirty
    (unless it is dirty and shared, then nothing), and mark it lazyfree."""
    frames = mm.frames
    if frames.is_dirty(pfn):
        if frames.mapcount(pfn) != 1:
            return
        for i in range(pfn, pfn + nr):
            frames.clear_dirty(i)
    mm.pt.change_prot(start, end, 0, _core.PTE_ACCESSED | _core.PTE_DIRTY)
    for i in range(pfn, pfn + nr):
        frames.set_lazyfree(i)


def _remove(mm_struct mm, vma, start, end):
    """MADV_REMOVE: punch the file range behind a shared writable mapping."""
    if vma.flags & VM_LOCKED:
        raise_errno(errno.EINVAL)
    if vma.file is None:
        raise_errno(errno.EINVAL)
    if not (vma.flags & VM_SHARED and vma.flags & VM_MAYWRITE):
        raise_errno(errno.EACCES)
    offset = vma.pgoff_at(start) << PAGE_SHIFT
    vma.file.inode.punch(offset, end - start)


def _willneed(mm_struct mm, vma, start, end):
    """Read-ahead into the page cache for files; nothing to swap in for anon."""
    if vma.file is not None and not vma.file.inode.is_shmem:
        inode = vma.file.inode
        for index in range(vma.pgoff_at(start), min(vma.pgoff_at(end), inode.nr_pages)):
            inode.get_page(index)


def _cold(mm_struct mm, vma, start, end):
    """madvise_cold(): exclusive pages in the range become old (cleared young bits)."""
    _reclaim(mm, vma, start, end, False)


def _pageout(mm_struct mm, vma, start, end):
    """madvise_pageout(), then shrink_folio_list() as on a host with no swap device:
    page-cache pages (file or shmem) that only this PTE maps are unmapped whatever
    their protection, clean lazily freed anonymous pages are discarded, other
    anonymous pages stay. Markers are untouched. Whether the kernel's per-CPU LRU
    batches were drained is not modelled: every page counts as on the LRU."""
    _reclaim(mm, vma, start, end, True)


def _reclaim(mm_struct mm, vma, start, end, pageout):
    """madvise_cold_or_pageout_pte_range() over one VMA: EINVAL on a locked, PFN-map
    or hugetlb VMA (can_madv_lru_vma())."""
    if vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
        raise_errno(errno.EINVAL)
    cache = pageout and vma.file is not None
    mapped = _mapped_pfns(mm, start, end) if cache else None
    mm.pt.reclaim(start, end, pageout, vma.file is not None)
    if cache:
        _reclaimed_cache_pages(mm, vma, mapped)


def _mapped_pfns(mm_struct mm, start, end):
    """{address: pfn} of the PTE-mapped pages of [start, end)."""
    pt = mm.pt
    out = {}
    for addr in pt.dump(start, end):
        kind, pfn, _ = pt.lookup(addr)
        if kind == _core.ENTRY_PRESENT:
            out[addr] = pfn
    return out


def _reclaimed_cache_pages(mm_struct mm, vma, mapped):
    """shrink_folio_list() on the page-cache pages PAGEOUT unmapped from their last
    mapping, with no swap:
    - a clean shmem page (only ever read, so zeroes) needs no writeout:
      __remove_mapping() takes it out of the cache, so fault-around finds nothing
      there and the next fault allocates a new page;
    - a dirty shmem page stays: shmem_writeout() redirties it and pageout() clears the
      PG_reclaim it had set;
    - a dirty regular-file page is not written out by direct reclaim: it stays with a
      mark that acts as PG_readahead (the bit reclaim's PG_reclaim shares):
      next_uptodate_folio() skips it, and a read() or a fault of the page clears it
      by starting async readahead. Measured (tests/rules/test_reclaim.py); the
      kernel's /proc/kpageflags shows no KPF_RECLAIM on such a page, so which flag
      carries the mark in 6.18 is not pinned down;
    - a clean regular-file page leaves the kernel's cache too, but the refault's
      read-around reads the window back before fault-around runs, so the mappings
      agree; the simulator keeps it (its page cache also holds the file's data)."""
    frames = mm.frames
    inode = vma.file.inode
    for addr, pfn in mapped.items():
        if frames.mapcount(pfn) or frames.kind(pfn) == _core.FRAME_ANON:
            continue
        if frames.is_dirty(pfn):
            if not inode.is_shmem:
                frames.set_reclaim(pfn)
        elif inode.is_shmem:
            inode.remove_page(vma.pgoff_at(addr), pfn)


# --- MADV_COLLAPSE (mm/khugepaged.c:madvise_collapse(), 6.18) -------------------------

def _collapse(mm_struct mm, vma, start, end):
    """Collapse every whole PMD of [start, end) into a THP, in address order. A PMD
    that cannot collapse for a "soft" reason (no page table, a uffd-wp entry) is
    skipped and makes the call fail with EINVAL at the end; a marker or swap entry
    (the swap-in step fails on it), a PMD with no writable page, or a file range past
    EOF stops the walk at once (EINVAL), keeping the PMDs collapsed before it."""
    if not _collapse_allowed(vma):
        raise_errno(errno.EINVAL)
    failed = False
    for haddr in range((start + PMD_SIZE - 1) & ~(PMD_SIZE - 1), end & ~(PMD_SIZE - 1),
                       PMD_SIZE):
        if mm.pt.get_pmd(haddr) & _core.PTE_PSE:
            continue                                    # SCAN_PMD_MAPPED
        if vma.is_anonymous:
            result = _collapse_anon(mm, vma, haddr)
        else:
            result = _collapse_shmem(mm, vma, haddr)
        if result == _STOP:
            raise_errno(errno.EINVAL)
        failed |= result == _SKIP
    if failed:
        raise_errno(errno.EINVAL)


def _collapse_allowed(vma):
    """thp_vma_allowable_order(TVA_FORCED_COLLAPSE, PMD_ORDER): not NOHUGEPAGE, special
    or hugetlb; anonymous or shmem (regular files need READ_ONLY_THP_FOR_FS, which the
    reference host lacks); and the VMA holds a whole PMD at a PMD-aligned file offset."""
    if vma.flags & (VM_NOHUGEPAGE | VM_SPECIAL | VM_HUGETLB):
        return False
    if vma.file is not None and not vma.file.inode.is_shmem:
        return False
    if vma.file is not None and ((vma.start >> PAGE_SHIFT) - vma.pgoff) % _core.HPAGE_NR:
        return False
    return ((vma.start + PMD_SIZE - 1) & ~(PMD_SIZE - 1)) + PMD_SIZE <= vma.end


def _collapse_anon(mm_struct mm, vma, haddr):
    """hpage_collapse_scan_pmd() + collapse_huge_page(): copy the PMD's pages into a
    new THP (none and zero-page entries read as zeroes), free the PTE table and map
    the THP (which deposits a PTE table: VmPTE is unchanged)."""
    pt, frames = mm.pt, mm.frames
    end = haddr + PMD_SIZE
    if pt.get_pmd(haddr) == 0:
        return _SKIP                                    # SCAN_PMD_NULL
    counts = pt.count(haddr, end)
    if counts["guard"] or counts["poison"] or counts["swap"]:
        return _STOP                                    # the swap-in fails
    entries = pt.dump(haddr, end)
    if any(raw & _core.PTE_UFFD_WP for raw in entries.values()):
        return _SKIP                                    # SCAN_PTE_UFFD_WP
    if not any(raw & _core.PTE_RW for raw in entries.values()):
        return _STOP                                    # SCAN_PAGE_RO
    head = frames.alloc_huge(_core.FRAME_ANON)
    for addr, raw in entries.items():
        kind, pfn, _ = pt.lookup(addr)
        if pfn != frames.zero_pfn:
            frames.copy_data(pfn, head + ((addr - haddr) >> PAGE_SHIFT))
    pt.zap(haddr, end, 0)
    pt.free_pgtables(haddr, end, haddr, end)
    pt.map_huge_pmd(haddr, head, _collapsed_pmd_flags(vma))
    frames.put_huge(head)
    return _DONE


def _collapse_shmem(mm_struct mm, vma, haddr):
    """collapse_file() + collapse_pte_mapped_thp(): the file's 512 pages become one
    PMD-sized folio in the page cache (holes read as zeroes), which unmaps the small
    pages from every mapping of the file; PTE tables left empty in other mappings
    without an anon_vma or guards are freed (retract_page_tables()). Then this
    mapping gets a PMD, unless its table still holds something (a guard marker, a
    private COW copy): then the call fails, the page cache stays collapsed."""
    inode = vma.file.inode
    index = vma.pgoff_at(haddr)
    if index + _core.HPAGE_NR > inode.nr_pages:
        return _STOP
    _collapse_page_cache(mm, inode, index)
    for owner, other in list(mm.system.mappings_of(inode)):
        if (owner, other) == (mm, vma) or other.anon_vma is not None \
                or other.flags & VM_MAYBE_GUARD:
            continue
        addr = other.start + ((index - other.pgoff) << PAGE_SHIFT)
        if addr & (PMD_SIZE - 1) or addr < other.start or addr + PMD_SIZE > other.end:
            continue
        retract_pte_table(<mm_struct?>owner, addr)
    if not retract_pte_table(mm, haddr):
        return _SKIP
    flags = _collapsed_pmd_flags(vma) & ~(_core.PTE_RW | _core.PTE_DIRTY)
    if vma.flags & VM_SHARED and vma.flags & VM_WRITE:
        flags |= _core.PTE_RW
    mm.pt.map_huge_pmd(haddr, inode.find_page(index), flags)
    return _DONE


def _collapse_page_cache(mm_struct mm, inode, index):
    frames = mm.frames
    if all(inode.find_page(index + i) == inode.find_page(index) + i
           for i in range(_core.HPAGE_NR)) and inode.find_page(index) is not None \
            and not inode.find_page(index) % _core.HPAGE_NR:
        return                                          # already one folio
    mm.system.unmap_mapping_range(inode, index, index + _core.HPAGE_NR, even_cows=False)
    head = frames.alloc_huge(inode.frame_kind)
    for i in range(_core.HPAGE_NR):
        old = inode.pages.get(index + i)
        if old is not None:
            frames.copy_data(old, head + i)
            frames.put(old)
        inode.pages[index + i] = head + i
        frames.set_dirty(head + i)


cdef bint retract_pte_table(mm_struct mm, u64 haddr) except -1:
    """Free the PTE table under the PMD at haddr if it maps nothing; True if the PMD
    is none afterwards."""
    pt = mm.pt
    if pt.get_pmd(haddr) == 0:
        return True
    if pt.get_pmd(haddr) & _core.PTE_PSE or \
            pt.count(haddr, haddr + PMD_SIZE)["none"] != _core.HPAGE_NR:
        return False
    pt.free_pgtables(haddr, haddr + PMD_SIZE, haddr, haddr + PMD_SIZE)
    return True


def _collapsed_pmd_flags(vma):
    flags = pte_flags_for(vma.flags, False) | _core.PTE_DIRTY
    return flags | (_core.PTE_RW if vma.flags & VM_WRITE else 0)


def split_huge_edges(mm_struct mm, start, end):
    for addr in (start, end):
        if addr & (PMD_SIZE - 1):
            split_huge_at(mm, addr)


# --- process_madvise (mm/madvise.c) -----------------------------------------------

cdef long long sys_process_madvise(mm_struct mm, object iovecs, int advice,
                                   u64 flags) except? -1:
    """vector_madvise(): each segment of import_iovec() as madvise() would take it, in
    order, stopping at the first error. The result is the bytes of the segments done
    before the error, or its errno when there are none (a failing segment's partial
    work is kept but not counted). Invalid advice fails at the first segment, so with
    no bytes to advise the call returns 0 whatever the advice."""
    cdef long long done = 0
    check_alive(mm)
    if <unsigned int>flags:
        raise_errno(errno.EINVAL)
    for base, n in iterated(import_iovec(iovecs)):
        try:
            sys_madvise(mm, base, n, advice)
        except OSError:
            if done:
                return done
            raise
        done += n
    return done


# --- anonymous VMA names ------------------------------------------------------------

cdef object name_vma(mm_struct mm, VMA vma, u64 start, u64 end, object name):
    """madvise_vma_anon_name(): files other than shared anonymous memory are EBADF."""
    if vma.file is not None and vma.file.inode.kind != "shmem_anon":
        raise_errno(errno.EBADF)
    return __vma_modify(mm, vma, start, end, vma.flags, name)


# mm/madvise.c:is_valid_name_char(): printable ASCII, and none of \ ` $ [ ].
INVALID_NAME_CHAR = re.compile(r"[^\x20-\x7e]|[\\`$\[\]]")


cdef madvise_walk_vmas(mm_struct mm, u64 start, u64 end, vma_visitor visit, object arg):
    """mm/madvise.c:madvise_walk_vmas(): call visit(mm, vma, lo, hi, arg) for each VMA
    piece of [start, end); visit returns the VMA now covering [lo, hi). A hole makes
    the result ENOMEM after every mapped part was visited; the first error stops."""
    cdef bint unmapped = False
    cdef u64 hi
    cdef VMA vma = mm.vma_tree._find(start), done
    while True:
        if vma is None:
            raise_errno(errno.ENOMEM)
        if start < vma.start:
            unmapped = True
            start = vma.start
            if start >= end:
                break
        hi = min(vma.end, end)
        done = visit(mm, vma, start, hi, arg)
        start = hi
        if done is not None and start < done.end:
            start = done.end
        if start >= end:
            break
        vma = mm.vma_tree._find(start)
    if unmapped:
        raise_errno(errno.ENOMEM)


# mirrors kernel/sys.c:prctl_set_vma() and mm/madvise.c:madvise_set_anon_name()
cdef long long sys_set_anon_name(mm_struct mm, u64 addr, u64 length, object name) except? -1:
    check_alive(mm)
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    if name is not None and not isinstance(name, str):
        raise TypeError("name must be str, bytes or None")
    if not mm.profile.anon_vma_name:
        raise_errno(errno.EINVAL)
    if name is not None:
        if len(name.encode("latin-1", "replace")) >= ANON_VMA_NAME_MAX_LEN:
            raise_errno(errno.EINVAL)
        if INVALID_NAME_CHAR.search(name):
            raise_errno(errno.EINVAL)
    start, end = page_range(addr, length)
    if end == start:
        return 0
    madvise_walk_vmas(mm, start, end, name_vma, name)
    return 0
