# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects (as the
# other syscall modules): the bulk first-touch path is C calls into the core.
"""Fault dispatch and user/kernel memory access (mm/memory.c, arch/x86/mm/fault.c, mm/gup.c).

mirrors arch/x86/mm/fault.c:do_user_addr_fault() (VMA lookup, stack expansion,
access_error()), then mm/memory.c:handle_mm_fault() -> handle_pte_fault(): markers
(handle_pte_marker()), anonymous faults (do_anonymous_page()), file faults with fault-around
(do_read_fault(), do_cow_fault(), do_shared_fault()) and write-protect faults (do_wp_page()).
Kernel-mode accesses (GUP, MADV_POPULATE_*, mlock's populate: mm/gup.c) use the same
resolution and turn signals into errno, as mm/gup.c does.

A fault outcome is data inside this module (a small int); it becomes a `Fault` or an
`OSError` only at the surface (raise_for(), or an errno of the populate functions).
"""
import errno

from libc.stdint cimport uint64_t
from .. import core as _core
from ..core.walkers cimport pt_fault_anon
from .mm_struct cimport mm_struct, check_alive, pt_result, THP_NEVER, THP_ALWAYS
from .mm_types cimport VMA, u64
from .vma cimport anon_vma_prepare, split_huge_at
from ..constants import (BUS_ADRERR, BUS_MCEERR_AR, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE,
                         SEGV_ACCERR, SEGV_MAPERR, STACK_GUARD_GAP, VM_ACCESS_FLAGS, VM_EXEC,
                         VM_GROWSDOWN, VM_HUGEPAGE, VM_HUGETLB, VM_IO, VM_UFFD_MISSING,
                         VM_LOCKONFAULT, VM_NOHUGEPAGE, VM_PFNMAP, VM_RAND_READ, VM_READ,
                         VM_SHARED, VM_SPECIAL, VM_WRITE)
from ..errors import BusError, SegmentationFault
from .. import constants as C
from ..args import as_int

# Fault outcomes.
OK = 0
MAPERR = 1          # SIGSEGV, SEGV_MAPERR
ACCERR = 2          # SIGSEGV, SEGV_ACCERR
SIGBUS_ADRERR = 3   # SIGBUS, BUS_ADRERR (beyond EOF, unknown marker)
HWPOISON = 4        # SIGBUS: BUS_MCEERR_AR with CONFIG_MEMORY_FAILURE, else BUS_ADRERR

_SIGNALS = {
    MAPERR: (SegmentationFault, SEGV_MAPERR),
    ACCERR: (SegmentationFault, SEGV_ACCERR),
    SIGBUS_ADRERR: (BusError, BUS_ADRERR),
    HWPOISON: (BusError, BUS_MCEERR_AR),
}

# The signal number of each outcome (what a batch's touch row reports).
SIGNAL_OF = {outcome: int(cls.signal) for outcome, (cls, _) in _SIGNALS.items()}

# The errno GUP reports for a poisoned page (FOLL_HWPOISON); Python's errno lacks it.
EHWPOISON = 133

# Fault-around maps up to fault_around_bytes (64 KiB) of cached pages around a read fault.
FAULT_AROUND_PAGES = 16
# Read-around window of a regular file's mmap fault on a cache miss (ra_pages = 128 KiB).
READ_AROUND_PAGES = 32
# RLIMIT_STACK soft limit of the modelled process (8 MiB).
STACK_RLIMIT = 8 << 20

_PTE_BASE = _core.PTE_PRESENT | _core.PTE_USER | _core.PTE_ACCESSED
_YOUNG_DIRTY = _core.PTE_ACCESSED | _core.PTE_DIRTY
_MAPPED = (_core.ENTRY_PRESENT, _core.ENTRY_HUGE)
cdef u64 c_PTE_BASE = _PTE_BASE, c_PTE_RW_DIRTY = _core.PTE_RW | _core.PTE_DIRTY
cdef u64 c_PTE_NX = _core.PTE_NX
cdef u64 c_VM_EXEC = C.VM_EXEC, c_VM_WRITE = C.VM_WRITE, c_VM_ACCESS = C.VM_ACCESS_FLAGS
cdef u64 c_VM_HUGEPAGE = C.VM_HUGEPAGE
cdef u64 c_NO_THP = C.VM_NOHUGEPAGE | C.VM_SPECIAL | C.VM_HUGETLB
cdef u64 c_PAGE_MASK = C.PAGE_MASK & 0xFFFFFFFFFFFFFFFF, c_PAGE_SIZE = C.PAGE_SIZE
cdef u64 USER_END = 1ULL << 47          # every access from here up is SEGV_MAPERR


cpdef u64 pte_flags_for(u64 vm_flags, bint write):
    """Present-PTE bits for a page mapped by a fault: writable only if the fault was a
    write (later writes to read-only PTEs go through do_wp_page()), NX unless VM_EXEC."""
    cdef u64 flags = c_PTE_BASE
    if write:
        flags |= c_PTE_RW_DIRTY
    if not vm_flags & c_VM_EXEC:
        flags |= c_PTE_NX
    return flags


def thp_fault_allowed(VMA vma, page, int thp_enabled):
    """thp_vma_allowable_order(PMD_ORDER) for a fault: a private anonymous VMA THP may
    back under the THP `enabled` mode, covering the whole PMD-aligned 2 MiB around page."""
    haddr = page & ~(PMD_SIZE - 1)
    return thp_vma(vma, thp_enabled) and vma.start <= haddr and haddr + PMD_SIZE <= vma.end


cpdef bint thp_vma(VMA vma, int thp_enabled):
    """The VMA-flag half of thp_fault_allowed() (vma_thp_disabled() and the sysfs mode of
    __thp_vma_allowable_orders(); thp_enabled as mm_profile holds it): `always` takes every
    anonymous VMA not marked VM_NOHUGEPAGE, `madvise` only VM_HUGEPAGE ones, `never` none."""
    if thp_enabled == THP_NEVER or vma.file is not None or vma.flags & c_NO_THP:
        return False
    return thp_enabled == THP_ALWAYS or vma.flags & c_VM_HUGEPAGE != 0


cpdef bint access_error(VMA vma, bint write):
    """x86 access_error(): a write needs VM_WRITE, anything else any access flag."""
    if write:
        return not vma.flags & c_VM_WRITE
    return not vma.flags & c_VM_ACCESS


# --- the user-mode surface (MM.access, touch, read, write) ----------------------------

def user_access(mm_struct mm, addr, *, write=False, exec=False):
    """MM.access(): one user access; the signal it would get, or None."""
    check_alive(mm)
    outcome = do_user_addr_fault(mm, as_int(addr, "addr"), bool(write), bool(exec))
    return None if outcome == OK else _SIGNALS[outcome][0].signal


def user_touch(mm_struct mm, addr, size=1, *, write=False):
    """MM.touch(): fault in every page of [addr, addr+size) as user accesses would."""
    cdef u64 at
    cdef int outcome
    check_alive(mm)
    addr, size = as_int(addr, "addr"), as_int(size, "size")
    if size <= 0:
        return
    if not 0 <= addr < USER_END:
        raise_for(mm, addr, MAPERR)       # do_user_addr_fault(): no VMA up there
    # Every page from USER_END on faults: the walk need not go past it.
    outcome = touch_range(mm, addr, min(size, USER_END + 1 - addr), write, &at)
    raise_for(mm, at, outcome)


def access_read(mm_struct mm, addr, size):
    check_alive(mm)
    addr, size = as_int(addr, "addr"), as_int(size, "size")
    if size < 0:
        raise ValueError("size must be >= 0")
    out = bytearray()
    pos, end = addr, addr + size
    while pos < end:
        page = pos & PAGE_MASK
        n = min(end, page + PAGE_SIZE) - pos
        raise_for(mm, pos, do_user_addr_fault(mm, pos, False, False))
        out += mm.frames.read(pfn_at(mm, page), pos - page, n)
        pos += n
    return bytes(out)


def access_write(mm_struct mm, addr, data):
    check_alive(mm)
    addr = as_int(addr, "addr")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes-like")
    view = memoryview(data).cast("B")
    pos, end = addr, addr + len(view)
    while pos < end:
        page = pos & PAGE_MASK
        n = min(end, page + PAGE_SIZE) - pos
        raise_for(mm, pos, do_user_addr_fault(mm, pos, True, False))
        mm.frames.write(pfn_at(mm, page), pos - page, bytes(view[pos - addr:pos - addr + n]))
        pos += n


cdef int touch_range(mm_struct mm, u64 addr, u64 size, bint write, u64 *at) except -1:
    """User accesses of every page of [addr, addr + size) (addr below USER_END, the end
    at most USER_END + 1), in order: OK, or the outcome of the first that faults, with
    its address in *at. Private anonymous memory is faulted in VMA by VMA by the core's
    anon-fault walk; the page it stops at (a marker, a COW copy ...) goes through
    user_fault()."""
    cdef u64 page = addr & c_PAGE_MASK, end = addr + size, hi
    cdef uint64_t stop
    cdef VMA vma
    cdef int outcome
    while page < end:
        vma = mm.vma_tree._find(page)
        if vma is not None and vma.start <= page and vma.file is None \
                and not access_error(vma, write) \
                and not thp_vma(vma, mm.profile.thp_enabled):
            hi = min(vma.end, (end + c_PAGE_SIZE - 1) & c_PAGE_MASK)
            if write:
                anon_vma_prepare(mm, vma)
            pt_result(pt_fault_anon(&mm.pt.mm, page, hi, write,
                                    pte_flags_for(vma.flags, write), True, &stop))
            mm.minflt += (stop - page) >> PAGE_SHIFT
            if stop == hi:
                page = hi
                continue
            page = stop
        at[0] = max(addr, page)     # the first page is accessed at addr itself
        outcome = do_user_addr_fault(mm, at[0], write, False)
        if outcome != OK:
            return outcome
        page += c_PAGE_SIZE
    return OK


cdef long long sys_touch(mm_struct mm, u64 addr, u64 length, bint write) except? -1:
    """touch() as the batch takes it: 0, or the signal number of the first access that
    faults (an outcome, not an error)."""
    cdef u64 at
    cdef int outcome
    check_alive(mm)
    if not length:
        return 0
    if addr >= USER_END:
        return SIGNAL_OF[MAPERR]
    outcome = touch_range(mm, addr, min(length, USER_END + 1 - addr), write, &at)
    return 0 if outcome == OK else SIGNAL_OF[outcome]


cdef raise_for(mm_struct mm, addr, outcome):
    if outcome != OK:
        cls, code = _SIGNALS[outcome]
        if outcome == HWPOISON and not mm.profile.memory_failure:
            # arch/x86/mm/fault.c:do_sigbus(): the BUS_MCEERR_AR branch exists only
            # with CONFIG_MEMORY_FAILURE; without it VM_FAULT_HWPOISON is a plain
            # SIGBUS with BUS_ADRERR (the reference profile).
            code = BUS_ADRERR
        raise cls(code, addr)


cdef pfn_at(mm_struct mm, page):
    kind, pfn, _ = mm.pt.lookup(page)
    assert kind in (_core.ENTRY_PRESENT, _core.ENTRY_HUGE), \
        "a resolved fault leaves a present PTE or huge PMD"
    return pfn


# --- fault dispatch ------------------------------------------------------------------

cdef do_user_addr_fault(mm_struct mm, addr, write, exec):
    """do_user_addr_fault(): the outcome of one user access at addr."""
    if addr < 0 or addr >= 1 << 47:
        return MAPERR
    vma = mm.vma_tree.lookup(addr)
    if vma is None:
        vma = expand_stack(mm, addr)
        if vma is None:
            return MAPERR
    if access_error(vma, write):
        return ACCERR
    kind, _, raw = mm.pt.lookup(addr & PAGE_MASK)
    if kind in _MAPPED and (not write or raw & _core.PTE_RW):
        # No fault: the MMU only sets the accessed (and, on a write, dirty) bit.
        want = _YOUNG_DIRTY if write else _core.PTE_ACCESSED
        if raw & want != want:
            lo = addr & (PAGE_MASK if kind == _core.ENTRY_PRESENT else ~(PMD_SIZE - 1))
            hi = lo + (PAGE_SIZE if kind == _core.ENTRY_PRESENT else PMD_SIZE)
            mm.pt.change_prot(lo, hi, want, want)
        outcome = OK
    else:
        outcome = handle_mm_fault(mm, vma, addr & PAGE_MASK, write)
    if outcome == OK and exec and not vma.flags & VM_EXEC:
        return ACCERR           # NX page: the refetch faults with PF_PROT|PF_INSTR
    return outcome


cdef expand_stack(mm_struct mm, addr):
    """expand_stack_locked(): a VM_GROWSDOWN VMA above addr grows down to it, keeping
    stack_guard_gap from an accessible VMA below and within RLIMIT_STACK."""
    vma = mm.vma_tree.find(addr)
    if vma is None or not vma.flags & VM_GROWSDOWN:
        return None
    new_start = addr & PAGE_MASK
    if new_start < mm.mmap_min_addr or vma.end - new_start > STACK_RLIMIT:
        return None
    prev = mm.vma_tree.neighbours(vma)[0]
    if prev is not None and not prev.flags & VM_GROWSDOWN and prev.flags & VM_ACCESS_FLAGS \
            and new_start - prev.end < STACK_GUARD_GAP:
        return None
    if prev is not None and prev.end > new_start:
        return None
    mm.vma_tree.set_start(vma, new_start)
    return vma


cdef handle_mm_fault(mm_struct mm, vma, page, write):
    """handle_mm_fault() for one page of vma: make the access possible or say why not."""
    pt = mm.pt
    kind, val, raw = pt.lookup(page)
    if kind == _core.ENTRY_HUGE:
        if not write or raw & _core.PTE_RW:
            return OK
        haddr = page & ~(PMD_SIZE - 1)
        if val - ((page - haddr) >> PAGE_SHIFT) == mm.frames.huge_zero_pfn:
            # do_huge_zero_wp_pmd(): a write to the huge zero page gets a new THP.
            pt.zap(haddr, haddr + PMD_SIZE, 0)
            _map_new_thp(mm, vma, haddr)
            return OK
        split_huge_at(mm, page)
        kind, val, raw = pt.lookup(page)
    if kind == _core.ENTRY_MARKER:
        if val & _core.PTE_MARKER_POISONED:
            return HWPOISON
        if val & _core.PTE_MARKER_GUARD:
            return MAPERR
        if val & _core.PTE_MARKER_UFFD_WP:
            # Not uffd-wp registered: the stale marker is dropped and the fault proceeds.
            pt.zap(page, page + PAGE_SIZE, _core.ZAP_DROP_MARKERS)
            kind = _core.ENTRY_NONE
        else:
            return SIGBUS_ADRERR
    if kind == _core.ENTRY_NONE:
        if vma.flags & VM_UFFD_MISSING and _uffd_missing(vma, page):
            # handle_userfault() with UFFD_FEATURE_SIGBUS (no handler to wait for).
            # do_anonymous_page() has allocated the PTE table by then; a file read
            # fault has done its fault-around first.
            fault_tables(mm, page, vma.is_anonymous)
            if not vma.is_anonymous and not write:
                _fault_around(mm, vma, page)
            return SIGBUS_ADRERR
        return _fault_none(mm, vma, page, write)
    if kind == _core.ENTRY_PRESENT:
        if write and not raw & _core.PTE_RW:
            return _wp_fault(mm, vma, page, val)
        return OK
    return SIGBUS_ADRERR


cdef int fault_tables(mm_struct mm, u64 page, bint pte_table) except -1:
    """__handle_mm_fault() allocates the PUD and PMD tables of the address before the
    fault is handled, so they stay even when it fails (SIGBUS beyond EOF, a
    userfault): VmPTE counts them. pte_table: the PTE table too."""
    pt = mm.pt
    if pt.get_pmd(page) != 0:
        return 0
    # The core allocates tables only with an entry: write a marker, drop it, and
    # (unless wanted) free the PTE table it needed, within this PMD only.
    pt.set_marker(page, _core.PTE_MARKER_GUARD)
    pt.zap(page, page + PAGE_SIZE, _core.ZAP_DROP_MARKERS)
    if not pte_table:
        pmd = page & ~(PMD_SIZE - 1)
        pt.free_pgtables(pmd, pmd + PMD_SIZE, pmd, pmd + PMD_SIZE)
    return 0


cdef _uffd_missing(vma, page):
    """Is this a userfaultfd MISSING fault? Anonymous memory: always (do_anonymous_page());
    shmem: only when the page cache has no page there (shmem_get_folio_gfp())."""
    return vma.is_anonymous or vma.file.inode.find_page(vma.pgoff_at(page)) is None


cdef _fault_none(mm_struct mm, vma, page, write):
    if vma.is_anonymous:
        if _huge_anonymous_fault(mm, vma, page, write):
            return OK
        # do_anonymous_page(): the zero page on read, a fresh zeroed page on write.
        if write:
            anon_vma_prepare(mm, vma)
        mm.pt.fault_anon(page, page + PAGE_SIZE, write, pte_flags_for(vma.flags, write))
        mm.minflt += 1
        return OK
    inode = vma.file.inode
    index = vma.pgoff_at(page)
    if index >= inode.nr_pages:
        # Beyond EOF: SIGBUS, after the upper tables were allocated. A read fault has
        # done its fault-around first (do_read_fault() maps the cached pages of the
        # window below i_size before filemap_fault() finds the page past it). ext4 with large
        # folios maps none of a folio that straddles the VMA; the simulator's page
        # cache has order-0 pages only, as a file written page by page has.
        fault_tables(mm, page, False)
        if write and not vma.flags & VM_SHARED:
            # do_cow_fault() prepares the anon_vma before it asks for the page.
            anon_vma_prepare(mm, vma)
        if not write:
            _fault_around(mm, vma, page)
        return SIGBUS_ADRERR
    if not write:
        return _read_fault(mm, vma, page, index)
    if vma.flags & VM_SHARED:
        # do_shared_fault(): map the page cache page writable and dirty it.
        pfn = _cache_page(mm, vma, inode, index)
        mm.frames.set_dirty(pfn)
        mm.pt.map_page(page, pfn, pte_flags_for(vma.flags, True))
        return OK
    # do_cow_fault(): a private anonymous copy of the file page.
    anon_vma_prepare(mm, vma)
    src = _cache_page(mm, vma, inode, index)
    _map_copy(mm, vma, page, src)
    return OK


cdef _huge_anonymous_fault(mm_struct mm, vma, page, write):
    """do_huge_pmd_anonymous_page(): where THP is allowed and the PMD is still none (no
    PTE table: a marker, an earlier 4 KiB fault or an empty table left by DONTNEED all
    prevent it), a write maps a new zeroed PMD-sized folio and a read the huge zero
    page (use_zero_page=1). Either deposits a PTE table for a later split, counted in
    VmPTE. Returns whether it mapped anything."""
    if not thp_fault_allowed(vma, page, mm.profile.thp_enabled) or \
            mm.pt.get_pmd(page) != 0:
        return False
    haddr = page & ~(PMD_SIZE - 1)
    if write:
        _map_new_thp(mm, vma, haddr)
    else:
        mm.pt.map_huge_pmd(haddr, mm.frames.huge_zero_pfn,
                             pte_flags_for(vma.flags, False))
        mm.minflt += 1
    return True


cdef _map_new_thp(mm_struct mm, vma, haddr):
    anon_vma_prepare(mm, vma)
    head = mm.frames.alloc_huge(_core.FRAME_ANON)
    mm.pt.map_huge_pmd(haddr, head, pte_flags_for(vma.flags, True))
    mm.frames.put_huge(head)
    mm.minflt += 1


cdef _read_fault(mm_struct mm, vma, page, index):
    """do_read_fault(): fault-around maps the cached pages of the 64 KiB window into
    none entries (never over a marker), then the faulting page itself."""
    inode = vma.file.inode
    if inode.find_page(index) is None:
        mm.majflt += 0 if inode.is_shmem else 1
        if not inode.is_shmem:
            _read_around(mm, vma, inode, index)
    else:
        mm.minflt += 1
    _fault_around(mm, vma, page, fault_page=True)
    return OK


cdef _fault_around(mm_struct mm, vma, page, fault_page=False):
    """do_fault_around() + filemap_map_pages(): map the cached pages of the 64 KiB
    window into none entries (never over a marker); with fault_page, the faulting
    page itself too (reading it into the cache)."""
    inode = vma.file.inode
    flags = pte_flags_for(vma.flags, False)
    if inode.is_shmem and vma.flags & VM_SHARED and vma.flags & VM_WRITE:
        flags |= _core.PTE_RW   # shmem needs no write-notify
    window = FAULT_AROUND_PAGES << PAGE_SHIFT
    # do_fault_around(): start at the aligned window clamped to the VMA, then take a
    # whole window's worth from there, within the VMA and the PTE table.
    lo = max(vma.start, page & ~(window - 1), page & ~(PMD_SIZE - 1))
    hi = min(vma.end, lo + window, (page & ~(PMD_SIZE - 1)) + PMD_SIZE)
    if not fault_page and not inode.is_shmem and mm.pt.get_pmd(page) == 0:
        # Measured on ext4 (fault past EOF): with no PTE table yet, a window whose first
        # mappable page is i_size's last page maps nothing; with a table it maps that
        # page, and shmem always does. Consistent with filemap_map_pages() installing
        # the table only when its first folio ends before i_size's last page (6.18
        # keeps a PMD mapping from crossing EOF; shmem is exempt).
        first = next((i for i in range(vma.pgoff_at(lo), vma.pgoff_at(hi))
                      if _mappable(mm, inode, i)), None)
        if first == inode.nr_pages - 1:
            return
    for addr in range(lo, hi, PAGE_SIZE):
        i = vma.pgoff_at(addr)
        here = fault_page and addr == page
        if not here and not _mappable(mm, inode, i):
            continue
        if mm.pt.lookup(addr)[0] != _core.ENTRY_NONE:
            continue
        pfn = _filemap_fault_page(mm, vma, inode, i) if here else inode.find_page(i)
        mm.pt.map_page(addr, pfn, flags)


cdef _mappable(mm_struct mm, inode, index):
    """next_uptodate_folio(): fault-around maps a cached page below i_size, but not
    one marked as PG_readahead (reclaim's mark: see madvise.pyx
    _reclaimed_cache_pages())."""
    if index >= inode.nr_pages:
        return False
    pfn = inode.find_page(index)
    return pfn is not None and not mm.frames.is_reclaim(pfn)


cdef _read_around(mm_struct mm, vma, inode, index):
    """A regular file's first fault reads a window around the page into the cache
    (do_sync_mmap_readahead() read-around; none for VM_RAND_READ)."""
    if vma.flags & VM_RAND_READ:
        inode.get_page(index)
        return
    lo = max(0, index - READ_AROUND_PAGES // 2)
    for i in range(lo, min(lo + READ_AROUND_PAGES, inode.nr_pages)):
        inode.get_page(i)


cdef _cache_page(mm_struct mm, vma, inode, index):
    if inode.find_page(index) is None and not inode.is_shmem:
        mm.majflt += 1
    else:
        mm.minflt += 1
    return _filemap_fault_page(mm, vma, inode, index)


cdef _filemap_fault_page(mm_struct mm, vma, inode, index):
    """filemap_fault()'s page: found in (or read into) the cache; a PG_readahead mark
    on it starts async readahead (do_async_mmap_readahead(), not for VM_RAND_READ),
    which clears the mark."""
    pfn = inode.get_page(index)
    if not vma.flags & VM_RAND_READ:
        mm.frames.clear_reclaim(pfn)
    return pfn


cdef _map_copy(mm_struct mm, vma, page, src_pfn):
    """Map a new anonymous page holding a copy of src_pfn (the zero page: zeroes)."""
    frames = mm.frames
    new = frames.alloc(_core.FRAME_ANON)
    if src_pfn != frames.zero_pfn:
        frames.copy_data(src_pfn, new)
    kind = mm.pt.lookup(page)[0]
    if kind != _core.ENTRY_NONE:
        mm.pt.zap(page, page + PAGE_SIZE, 0)
    mm.pt.map_page(page, new, pte_flags_for(vma.flags, True))
    frames.put(new)


cdef _wp_fault(mm_struct mm, vma, page, pfn):
    """do_wp_page(): shared mappings become writable in place; a private page that
    only this PTE maps is reused; anything else is copied (COW)."""
    mm.minflt += 1
    frames = mm.frames
    dirty_rw = _core.PTE_RW | _core.PTE_DIRTY
    if vma.flags & VM_SHARED:
        frames.set_dirty(pfn)
        mm.pt.change_prot(page, page + PAGE_SIZE, dirty_rw, dirty_rw)
        return OK
    anon_vma_prepare(mm, vma)
    if pfn != frames.zero_pfn and frames.kind(pfn) == _core.FRAME_ANON \
            and frames.mapcount(pfn) == 1 and frames.refcount(pfn) == 1:
        mm.pt.change_prot(page, page + PAGE_SIZE, dirty_rw, dirty_rw)
        return OK
    _map_copy(mm, vma, page, pfn)
    return OK


# --- kernel-mode access (mm/gup.c) ---------------------------------------------------

cdef gup_fault(mm_struct mm, vma, page, write, hwpoison=False):
    """faultin_page(): 0, or the errno GUP reports for a fault it cannot resolve
    (vm_fault_to_errno(): a poisoned page is EHWPOISON only with FOLL_HWPOISON, which
    MADV_POPULATE_* pass and __mm_populate() does not)."""
    kind, _, raw = mm.pt.lookup(page)
    if kind == _core.ENTRY_PRESENT and (not write or raw & _core.PTE_RW):
        # FOLL_TOUCH (follow_page_pte()): the page is marked accessed, and dirty for a
        # write (which ends a lazyfree state); the PTE's bits stand for the folio's.
        want = _YOUNG_DIRTY if write else _core.PTE_ACCESSED
        if raw & want != want:
            mm.pt.change_prot(page, page + PAGE_SIZE, want, want)
        return 0
    outcome = handle_mm_fault(mm, vma, page, write)
    if outcome == OK:
        return 0
    return EHWPOISON if outcome == HWPOISON and hwpoison else errno.EFAULT


cdef populate_vma(mm_struct mm, vma, start, end, write, hwpoison=False):
    """Fault in [start, end) of one VMA; 0 or the errno of the first failure."""
    bulk = vma.is_anonymous and not thp_vma(vma, mm.profile.thp_enabled)
    page = start
    if bulk:
        if write:
            anon_vma_prepare(mm, vma)
        page = mm.pt.fault_anon(start, end, write, pte_flags_for(vma.flags, write),
                                  touch=True)
    while page < end:
        err = gup_fault(mm, vma, page, write, hwpoison)
        if err:
            return err
        page += PAGE_SIZE
        if bulk and page < end:
            page = mm.pt.fault_anon(page, end, write, pte_flags_for(vma.flags, write),
                                      touch=True)
    return 0


cdef int mm_populate(mm_struct mm, u64 start, u64 end, bint ignore_errors) except -1:
    """__mm_populate() (mmap MAP_POPULATE/MAP_LOCKED, mlock, mlockall): per VMA, a write
    fault for private writable mappings, else a read; PROT_NONE fails with EFAULT;
    VM_LOCKONFAULT, VM_IO and VM_PFNMAP VMAs are skipped. Returns 0 or an errno."""
    for vma in mm.vma_tree._overlapping(start, end):
        if vma.flags & (VM_IO | VM_PFNMAP) or vma.flags & VM_LOCKONFAULT:
            continue
        lo, hi = max(vma.start, start), min(vma.end, end)
        if not vma.flags & VM_ACCESS_FLAGS:
            err = errno.EFAULT
        else:
            write = vma.flags & (VM_WRITE | VM_SHARED) == VM_WRITE
            err = populate_vma(mm, vma, lo, hi, write)
        if err and not ignore_errors:
            return err
    return 0


cdef int madvise_populate(mm_struct mm, u64 start, u64 end, bint write) except -1:
    """madvise_populate(): ENOMEM at a hole, EINVAL for a VMA that does not allow the
    access, EFAULT at a guard or beyond EOF; pages before the failure stay populated."""
    pos = start
    while pos < end:
        vma = mm.vma_tree.lookup(pos)
        if vma is None:
            return errno.ENOMEM
        if vma.flags & (VM_IO | VM_PFNMAP) or access_error(vma, write) or \
                (not write and not vma.flags & VM_READ and not vma.flags & VM_WRITE
                 and not vma.flags & VM_EXEC):
            return errno.EINVAL
        if not write and not vma.flags & VM_READ:
            return errno.EINVAL
        hi = min(vma.end, end)
        err = populate_vma(mm, vma, pos, hi, write, hwpoison=True)
        if err:
            return err
        pos = hi
    return 0
