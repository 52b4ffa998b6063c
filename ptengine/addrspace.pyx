# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""The VMA half of an mm_struct and the plumbing every syscall shares (mm/vma.c).

AddressSpace holds the VMA tree, the page tables, map_count's limit and locked_vm, and the
operations the syscalls are built from, each the counterpart of one kernel function:

  split (__split_vma / split_vma), modify a range (vma_modify), map a new range
  (vma_merge_new_range + vma insertion), gather and remove a range
  (vms_gather_munmap_vmas / vms_complete_munmap_vmas with free_pgtables),
  anon_vma_prepare, and the placement of new mappings (get_unmapped_area and the x86-64
  top-down search of arch/x86/kernel/sys_x86_64.c, with THP alignment).

MM (mm.py) is this class plus the syscalls in mixins by concern. Compiled because every
mmap, munmap, mprotect and madvise runs through here; it reads as the Python it was.
"""
from . import constants as C
from libc.stdint cimport uint64_t
from ._core cimport ( ZAP_DROP_MARKERS, pmd_is_huge, pt_free_pgtables, pt_pmd_entry,
                     pt_split_huge_pmd, pt_zap)
from .errors import raise_errno
from .vma cimport (VMA, VMATree, new_vma, AnonVma, anon_vma_compatible, can_merge_after,
                   can_merge_before, vm_start_gap, vma_piece, vma_required)
from .vma import anon_vma_reusable

import errno

from .profile import OVERCOMMIT_GUESS

cdef unsigned long long VM_STICKY = C.VM_STICKY
cdef unsigned long long VM_SEALED = C.VM_SEALED
cdef unsigned long long VM_LOCKED = C.VM_LOCKED
cdef unsigned long long PMD_MASK = C.PMD_SIZE - 1
cdef unsigned long long PMD_SIZE = C.PMD_SIZE
cdef int PAGE_SHIFT = C.PAGE_SHIFT
cdef unsigned long long PAGE_SIZE = C.PAGE_SIZE
cdef unsigned long long PAGE_MASK = C.PAGE_MASK & 0xFFFFFFFFFFFFFFFF   # ~(PAGE_SIZE - 1)
cdef unsigned long long TASK_SIZE = C.TASK_SIZE
cdef unsigned long long TASK_UNMAPPED_BASE = C.TASK_UNMAPPED_BASE
cdef unsigned long long MAX_ERRNO = 4095
cdef unsigned long long USER_END = 1ULL << 47      # the page tables' user half
# find_start_end(): the window of MAP_32BIT mappings on x86-64 (not randomised).
cdef unsigned long long MAP_32BIT_BASE = 0x40000000, MAP_32BIT_END = 0x80000000

# The THP sysfs `enabled` modes (profile.THP_MODES) as mm_profile.thp_enabled holds them.
THP_MODE = {"never": THP_NEVER, "madvise": THP_MADVISE, "always": THP_ALWAYS}

# modify_range()'s "leave the anon name as it is".
KEEP = object()


# auto_pickle=False (above, and in the syscall classes built on this one): an mm is not
# picklable (its page tables are host memory), and a generated __setstate__ would
# overwrite its fields behind its back.
cdef class AddressSpace:
    """The VMAs and page tables of one mm, and the mm/vma.c operations on them (fields in
    addrspace.pxd)."""

    def __cinit__(self):
        self.dead = True            # nothing to run syscalls on until __init__ is done

    def __init__(self, system, long long max_map_count):
        if self.pt is not None:
            raise ValueError("an address space is initialised once")
        self.system = system
        self.frames = system.frames
        self.pt = PageTables(self.frames)
        self.vma_tree = VMATree()
        self.max_map_count = max_map_count
        self.locked_vm = 0
        profile = system.profile
        self.profile.maybe_guard = profile.maybe_guard
        self.profile.anon_vma_name = profile.anon_vma_name
        self.profile.memory_failure = profile.memory_failure
        self.profile.soft_dirty = profile.soft_dirty
        self.profile.thp_enabled = THP_MODE[profile.thp_enabled]
        self.profile.overcommit = profile.overcommit_memory
        self.profile.commit_pages = profile.totalram_pages + profile.total_swap_pages
        self.profile.new_vma_flags = system.new_vma_flags
        self.dead = False

    cdef int check_alive(self) except -1:
        """Every syscall on an exited process is ESRCH (its mm is gone)."""
        if self.dead:
            raise_errno(errno.ESRCH)
        return 0

    def _alive(self):
        """check_alive() for the Python mixins (fault.py, lifecycle.py)."""
        self.check_alive()

    cdef int vm_enough_memory(self, long long pages) except -1:
        """mm/util.c:__vm_enough_memory(): under OVERCOMMIT_ALWAYS anything goes; under
        OVERCOMMIT_GUESS nothing is tracked, but one request for more than RAM + swap is
        ENOMEM (System refuses the strict mode)."""
        if self.profile.overcommit == OVERCOMMIT_GUESS and pages > self.profile.commit_pages:
            raise_errno(errno.ENOMEM)
        return 0

    @property
    def map_count(self):
        return len(self.vma_tree)

    cdef int check_piece(self, VMA vma, unsigned long long start,
                         unsigned long long end) except -1:
        """The typed per-VMA steps (modify, mprotect_fixup, advice) take a VMA of this mm
        and a page-aligned piece of it: anything else is refused before a change."""
        cdef Py_ssize_t k
        vma_piece(vma, start, end)
        self.vma_tree._position(vma, &k)
        return 0

    # --- split and modify ----------------------------------------------------------------
    cdef VMA _split_at(self, VMA vma, unsigned long long addr):
        """__split_vma(): cut vma at addr, keeping it as the lower part; returns the upper.
        A huge PMD straddling the cut is split first (vma_adjust_trans_huge())."""
        if addr & PMD_MASK:
            self.split_huge_at(addr)
        cdef VMA upper = vma.piece(addr, vma.end)
        self.vma_tree.set_end(vma, addr)
        self.vma_tree.insert(upper)
        return upper

    cdef int _check_split(self) except -1:
        """split_vma() refuses with ENOMEM once map_count has reached max_map_count."""
        if self.vma_tree._count >= self.max_map_count:
            raise_errno(errno.ENOMEM)
        return 0

    cpdef VMA modify_range(self, VMA vma, unsigned long long start, unsigned long long end,
                           flags=None, anon_name=KEEP):
        """vma_modify(): give [start, end) (inside vma) new flags and/or anon name, merging
        into a neighbour where the merge rules allow, else splitting. Returns the VMA now
        covering [start, end). ENOMEM if a needed split would pass max_map_count."""
        self.check_piece(vma, start, end)
        cdef unsigned long long nflags = vma.flags if flags is None else flags
        cdef object nname = vma.anon_name if anon_name is KEEP else anon_name
        cdef VMA prev, nxt
        cdef VMATree tree = self.vma_tree
        if nflags == vma.flags and (nname is vma.anon_name or nname == vma.anon_name):
            return vma
        prev, nxt = tree._neighbours(vma)
        cdef unsigned long long pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
        cdef unsigned long long npages = (end - start) >> PAGE_SHIFT
        cdef bint left = start == vma.start, right = end == vma.end
        cdef bint merge_left = left and can_merge_after(prev, start, nflags, pgoff, vma.file,
                                                       vma.anon_vma, nname)
        cdef bint merge_right = right and can_merge_before(nxt, end, nflags, pgoff, npages,
                                                          vma.file, vma.anon_vma, nname)
        if merge_left and merge_right and not anon_vma_compatible(prev.anon_vma, nxt.anon_vma):
            merge_right = False
        cdef unsigned long long sticky = vma.flags & VM_STICKY
        if merge_left:
            prev.anon_vma = prev.anon_vma or vma.anon_vma
            prev.flags |= sticky
            if merge_right:
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
                prev.flags |= nxt.flags & VM_STICKY
                tree.remove(vma, True)
                tree.remove(nxt, True)
                tree.set_end(prev, nxt.end)
            elif right:
                tree.remove(vma, True)
                tree.set_end(prev, end)
            else:
                tree.set_start(vma, end)
                tree.set_end(prev, end)
            return prev
        if merge_right:
            nxt.anon_vma = nxt.anon_vma or vma.anon_vma
            nxt.flags |= sticky
            if left:
                tree.remove(vma, True)
            else:
                tree.set_end(vma, start)
            tree.set_start(nxt, start)
            return nxt
        if start > vma.start:
            self._check_split()
            vma = self._split_at(vma, start)
        if end < vma.end:
            self._check_split()
            self._split_at(vma, end)
        vma.flags = nflags
        vma.anon_name = nname
        return vma

    # --- map -----------------------------------------------------------------------------
    cpdef VMA map_range(self, unsigned long long start, unsigned long long end,
                        unsigned long long flags, unsigned long long pgoff, file,
                        anon_name=None, anon_vma=None):
        """vma_merge_new_range() or a new VMA: place [start, end) (already free) into the
        tree, expanding a compatible neighbour where possible. `anon_vma` is that of the
        range's pages (mremap's copy_vma() brings the moved VMA's along): a neighbour with
        another anon_vma is not merged with. Returns the VMA."""
        cdef VMATree tree = self.vma_tree
        cdef VMA prev, nxt, vma
        if start >= end or end > TASK_SIZE or (start | end) & ~PAGE_MASK:
            raise ValueError(f"map_range: bad range [{start:#x}, {end:#x})")
        if not tree._range_is_free(start, end):
            raise ValueError(f"map_range: [{start:#x}, {end:#x}) is not free")
        prev, nxt = tree._prev_next(start, end)
        cdef unsigned long long npages = (end - start) >> PAGE_SHIFT
        cdef bint merge_left = can_merge_after(prev, start, flags, pgoff, file, anon_vma,
                                               anon_name)
        cdef bint merge_right = can_merge_before(nxt, end, flags, pgoff, npages, file,
                                                 anon_vma, anon_name)
        if merge_left and merge_right and not anon_vma_compatible(prev.anon_vma, nxt.anon_vma):
            merge_right = False
        if merge_left:
            prev.flags |= flags & VM_STICKY
            prev.anon_vma = prev.anon_vma or anon_vma
            if merge_right:
                tree.remove(nxt, True)
                tree.set_end(prev, nxt.end)
                prev.flags |= nxt.flags & VM_STICKY
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
            else:
                tree.set_end(prev, end)
            return prev
        if merge_right:
            nxt.flags |= flags & VM_STICKY
            nxt.anon_vma = nxt.anon_vma or anon_vma
            tree.set_start(nxt, start)
            return nxt
        vma = new_vma(start, end, flags, pgoff, file, anon_vma, anon_name)
        tree.insert(vma)
        return vma

    # --- unmap ---------------------------------------------------------------------------
    cdef list gather_unmap(self, unsigned long long start, unsigned long long end):
        """mm/vma.c:vms_gather_munmap_vmas(): split the VMAs of [start, end) so that they
        lie inside it and return them, in order, still in the tree. As in the kernel the
        first VMA is split before the others are looked at, so a sealed VMA further on
        (EPERM) leaves that split behind; splitting one VMA in three at max_map_count is
        ENOMEM before anything changes (a two-way split may pass the limit)."""
        cdef list vmas
        cdef VMA first, vma
        cdef Py_ssize_t i
        if start > end or (start | end) & ~PAGE_MASK:
            raise ValueError(f"gather_unmap: bad range [{start:#x}, {end:#x})")
        vmas = self.vma_tree._overlapping(start, end)
        if not vmas:
            return vmas
        first = vmas[0]
        if first.start < start:
            if end < first.end and self.vma_tree._count >= self.max_map_count:
                raise_errno(errno.ENOMEM)
            if first.flags & VM_SEALED:
                raise_errno(errno.EPERM)
            vmas[0] = self._split_at(first, start)
        for i in range(len(vmas)):
            vma = vmas[i]
            if vma.flags & VM_SEALED:
                raise_errno(errno.EPERM)
            if vma.end > end:
                self._split_at(vma, end)
        return vmas

    cpdef remove_vmas(self, list vmas):
        """vms_complete_munmap_vmas(): take gathered VMAs out of the tree, uncharge their
        mlocked pages, zap their entries (markers too) and free the page tables no
        remaining VMA needs."""
        _check_vma_list(vmas, self.vma_tree)
        cdef VMA first = vmas[0], last = vmas[-1], vma
        cdef VMA prev = self.vma_tree._neighbours(first)[0]
        cdef VMA nxt = self.vma_tree._neighbours(last)[1]
        for vma in vmas:
            self.vma_tree.remove(vma)
            if vma.flags & VM_LOCKED:
                self.locked_vm -= (vma.end - vma.start) >> PAGE_SHIFT
        pt_result(pt_zap(&self.pt.mm, first.start, last.end, ZAP_DROP_MARKERS))
        self.free_pgtables(vmas, prev.end if prev is not None else 0,
                           nxt.start if nxt is not None else 0)

    cdef unmap_range(self, unsigned long long start, unsigned long long end):
        """do_vmi_munmap(): remove [start, end)."""
        vmas = self.gather_unmap(start, end)
        if vmas:
            self.remove_vmas(vmas)

    cpdef free_pgtables(self, list vmas, unsigned long long floor,
                        unsigned long long ceiling):
        """mm/memory.c:free_pgtables(): free the tables under the removed VMAs, gathering
        VMAs closer than a PMD into one free_pgd_range() call, bounded by the neighbours
        that stay (floor, ceiling; 0 = no ceiling)."""
        _check_vma_list(vmas, None)
        cdef Py_ssize_t i = 0, n = len(vmas)
        cdef unsigned long long addr, top
        while i < n:
            addr = (<VMA>vmas[i]).start
            while i + 1 < n and (<VMA>vmas[i + 1]).start <= (<VMA>vmas[i]).end + PMD_SIZE:
                i += 1
            top = (<VMA>vmas[i]).end
            i += 1
            self.free_pgd_range(addr, top, floor, (<VMA>vmas[i]).start if i < n else ceiling)

    cdef int free_pgd_range(self, unsigned long long addr, unsigned long long end,
                            unsigned long long floor, unsigned long long ceiling) except -1:
        """mm/memory.c:free_pgd_range() (ceiling 0: none). The tables it would free must be
        empty: a dry run first, so a bug that left an entry is a ValueError, not a leak."""
        cdef uint64_t bad = 0
        if floor > USER_END or ceiling > USER_END:
            raise ValueError(f"free_pgtables: floor {floor:#x} or ceiling {ceiling:#x} "
                             f"beyond user space")
        if pt_free_pgtables(&self.pt.mm, addr, end, floor, ceiling, True, &bad):
            raise ValueError(f"free_pgtables: entry at {bad:#x} is not none")
        pt_free_pgtables(&self.pt.mm, addr, end, floor, ceiling, False, &bad)
        return 0

    # --- anon_vma and huge PMDs ------------------------------------------------------------
    cpdef anon_vma_prepare(self, VMA vma):
        """mm/rmap.c:anon_vma_prepare(): give vma an anon_vma, reusing a neighbour's when
        they could merge later (find_mergeable_anon_vma())."""
        vma_required(vma)
        if vma.anon_vma is None:
            prev, nxt = self.vma_tree._neighbours(vma)
            vma.anon_vma = (anon_vma_reusable(vma, nxt) or anon_vma_reusable(vma, prev)
                            or AnonVma())
        return vma.anon_vma

    cdef split_huge_at(self, unsigned long long addr):
        """Split a PMD-mapped huge page covering addr, if there is one."""
        cdef uint64_t *pmd
        if addr > TASK_SIZE:
            raise ValueError(f"split_huge_at: {addr:#x} is not a user address")
        pmd = pt_pmd_entry(&self.pt.mm, addr & PAGE_MASK, False)
        if pmd != NULL and pmd_is_huge(pmd[0]):
            pt_result(pt_split_huge_pmd(&self.pt.mm, pmd))

    # --- placement (arch/x86/kernel/sys_x86_64.c, mm/mmap.c, mm/huge_memory.c) -----------
    cpdef get_unmapped_area(self, unsigned long long addr, unsigned long long length,
                            pgoff, bint fixed, file, bint shared, vm_flags,
                            bint map_32bit=False):
        """__get_unmapped_area(): where a new mapping of `length` goes. ENOMEM if nowhere.
        Anonymous memory is placed as if its pgoff were 0, whatever the caller passed."""
        if length > TASK_SIZE:
            raise_errno(errno.ENOMEM)
        if file is None:
            pgoff = 0
        if fixed:
            # The arch hook hands a fixed address back as it came, and the caller tests it
            # with IS_ERR_VALUE(): one of the top 4095 values reads as an errno (-1: EPERM).
            if addr > ~MAX_ERRNO:
                raise_errno(<int>(-addr))
            result = addr
        elif _thp_aligns(addr, file, shared, length, pgoff):
            result = self._thp_aligned_area(addr, length, pgoff, map_32bit)
        else:
            result = self._arch_area(addr, length, map_32bit)
        if result is None or result > TASK_SIZE - length:
            raise_errno(errno.ENOMEM)
        if result & ~PAGE_MASK:
            raise_errno(errno.EINVAL)
        return result

    cdef object _arch_area(self, unsigned long long addr, unsigned long long length,
                           bint map_32bit):
        """arch_get_unmapped_area_topdown(): MAP_32BIT goes bottom-up in [1 GiB, 2 GiB);
        else a hint is used as is if the range (and a growsdown neighbour's guard gap) is
        free, and otherwise the search runs top-down from mmap_base, then bottom-up."""
        if map_32bit:
            return self._area_32bit(addr, length)
        if addr:
            addr &= PAGE_MASK
            if addr <= TASK_SIZE - length and self._hint_fits(addr, length):
                return addr
        cdef unsigned long long found
        if self.vma_tree._highest_gap(length, max(PAGE_SIZE, self.mmap_min_addr),
                                      self.mmap_base, &found) or \
                self.vma_tree._lowest_gap(length, TASK_UNMAPPED_BASE, TASK_SIZE, &found):
            return found
        return None

    cdef bint _hint_fits(self, unsigned long long addr, unsigned long long length) except -1:
        cdef VMA vma = self.vma_tree._find(addr)
        return vma is None or addr + length <= vm_start_gap(vma)

    def _area_32bit(self, unsigned long long addr, unsigned long long length):
        """arch_get_unmapped_area() with find_start_end()'s MAP_32BIT window (no
        randomisation): the hint is rounded up here, and there is no fallback."""
        if length > MAP_32BIT_END:
            return None
        if addr:
            addr = (addr + PAGE_SIZE - 1) & PAGE_MASK
            if MAP_32BIT_END - length >= addr and self._hint_fits(addr, length):
                return addr
        return self.vma_tree.lowest_gap(length, MAP_32BIT_BASE, MAP_32BIT_END)

    def _thp_aligned_area(self, unsigned long long addr, unsigned long long length, pgoff,
                          bint map_32bit):
        """__thp_get_unmapped_area(): search for length + PMD_SIZE, then align inside it
        to the file offset; a hint honoured for the padded length stands; an aligned result
        takes the upper part (the mm is top-down). Falls back to an unaligned search."""
        padded = self._arch_area(addr, length + PMD_SIZE, map_32bit)
        if padded is None:
            return self._arch_area(addr, length, map_32bit)
        if addr and padded == addr & PAGE_MASK:
            return padded
        off_sub = ((pgoff << PAGE_SHIFT) - padded) & (PMD_SIZE - 1)
        return padded + PMD_SIZE if off_sub == 0 else padded + off_sub


cdef int _check_vma_list(list vmas, VMATree tree) except -1:
    """remove_vmas() and free_pgtables() take a non-empty list of VMAs in address order
    (those of `tree`, if given, all still in it) and read them through unchecked casts:
    anything else is refused before the first change."""
    cdef VMA v, prev = None
    cdef Py_ssize_t k
    if vmas is None or not vmas:
        raise ValueError("expected a non-empty list of VMAs")
    for item in vmas:
        if not isinstance(item, VMA):
            raise TypeError(f"expected VMAs, got {type(item).__name__}")
        v = item
        if prev is not None and prev.end > v.start:
            raise ValueError(f"VMAs out of order: {prev!r}, {v!r}")
        if tree is not None:
            tree._position(v, &k)
        prev = v
    return 0


cdef bint _thp_aligns(unsigned long long addr, object file, bint shared,
                      unsigned long long length, object pgoff) except -1:
    """thp_get_unmapped_area_vmflags() applies to ext4 file mappings covering a whole
    aligned PMD of the file (hint or not), and to anonymous private mappings whose
    length is a multiple of PMD_SIZE when there is no hint; shmem (memfd, shared anon)
    is not aligned with shmem_enabled=never. (Python integers: a file offset plus a
    length may pass 2**64.)"""
    if file is not None:
        if file.inode.is_shmem:
            return False
    elif shared or addr or length % PMD_SIZE:
        return False
    off = pgoff << PAGE_SHIFT
    off_align = (off + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    return off + length > off_align and off + length - off_align >= PMD_SIZE
