# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""mm/vma.c: the merge rules and the operations on the VMAs of one mm.

Each function is the counterpart of one kernel function and takes the mm_struct first:
split (__split_vma()), modify a range (vma_modify()), map a new range
(vma_merge_new_range() or a new VMA), gather and remove a range
(vms_gather_munmap_vmas() / vms_complete_munmap_vmas() with mm/memory.c:free_pgtables()),
and mm/rmap.c:anon_vma_prepare(). The syscalls (mmap.pyx and on) are built from them.
"""
import errno

from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t
from .. import constants as C
from ..core.entry cimport pmd_is_huge
from ..core.tables cimport pt_pmd_entry, pt_split_huge_pmd
from ..core.walkers cimport ZAP_DROP_MARKERS, pt_free_pgtables, pt_zap
from ..errors import raise_errno
from .mm_struct cimport mm_struct, pt_result
from .mm_types cimport VMA, new_vma, u64, vma_piece, vma_required
from .mm_types import AnonVma
from .vmatree cimport VMATree

cdef u64 VM_STICKY = C.VM_STICKY
cdef u64 VM_SPECIAL = C.VM_SPECIAL
cdef u64 VM_SEALED = C.VM_SEALED
cdef u64 VM_LOCKED = C.VM_LOCKED
cdef u64 REUSE_IGNORED = C.VM_ACCESS_FLAGS | C.VM_SOFTDIRTY | C.VM_STICKY
cdef u64 PMD_MASK = C.PMD_SIZE - 1
cdef u64 PMD_SIZE = C.PMD_SIZE
cdef int PAGE_SHIFT = C.PAGE_SHIFT
cdef u64 PAGE_MASK = C.PAGE_MASK & 0xFFFFFFFFFFFFFFFF   # ~(PAGE_SIZE - 1)
cdef u64 TASK_SIZE = C.TASK_SIZE
cdef u64 USER_END = 1ULL << 47      # the page tables' user half

# vma_modify()'s "leave the anon name as it is".
KEEP = object()


# --- merge rules (mm/vma.c) --------------------------------------------------------------

cpdef bint same_file(object a_file, object b_file):
    if a_file is None or b_file is None:
        return a_file is None and b_file is None
    return a_file.inode is b_file.inode


cpdef bint anon_vma_compatible(object a, object b):
    """is_mergeable_anon_vma(): either side has none, or they are the same anon_vma."""
    return a is None or b is None or a is b


cdef inline bint _mergeable_attrs(u64 flags, object file, object anon_name,
                                  VMA other) except -1:
    """is_mergeable_vma(): flags equal apart from the sticky ones, same file, same name."""
    if (flags ^ other.flags) & ~VM_STICKY:
        return False
    if not same_file(file, other.file):
        return False
    return anon_name is other.anon_name or anon_name == other.anon_name


cpdef bint can_merge_after(VMA prev, u64 start, u64 flags,
                           u64 pgoff, object file, object anon_vma,
                           object anon_name):
    """can_vma_merge_after(): may a range starting at prev.end join `prev`?"""
    if prev is None or prev.end != start or (flags | prev.flags) & VM_SPECIAL:
        return False
    if not _mergeable_attrs(flags, file, anon_name, prev):
        return False
    if not anon_vma_compatible(prev.anon_vma, anon_vma):
        return False
    return prev.pgoff + ((prev.end - prev.start) >> PAGE_SHIFT) == pgoff


cpdef bint can_merge_before(VMA nxt, u64 end, u64 flags,
                            u64 pgoff, u64 npages, object file,
                            object anon_vma, object anon_name):
    """can_vma_merge_before(): may a range ending at nxt.start join `nxt`?"""
    if nxt is None or nxt.start != end or (flags | nxt.flags) & VM_SPECIAL:
        return False
    if not _mergeable_attrs(flags, file, anon_name, nxt):
        return False
    if not anon_vma_compatible(nxt.anon_vma, anon_vma):
        return False
    return pgoff + npages == nxt.pgoff


def anon_vma_reusable(VMA vma not None, VMA neighbour):
    """reusable_anon_vma()/anon_vma_compatible() in mm/rmap.c: a neighbour's anon_vma can be
    shared by `vma` when they touch, map contiguous offsets and differ at most in access
    and soft-dirty flags, so that a later mprotect can merge them."""
    if neighbour is None or neighbour.anon_vma is None or neighbour.anon_vma.forked:
        return None
    lo, hi = (neighbour, vma) if neighbour.end == vma.start else (vma, neighbour)
    if lo.end != hi.start:
        return None
    if (lo.flags ^ hi.flags) & ~REUSE_IGNORED or not same_file(lo.file, hi.file):
        return None
    if lo.pgoff + lo.pages != hi.pgoff:
        return None
    return neighbour.anon_vma


# --- operations on the VMAs of an mm -----------------------------------------------------

cdef int check_piece(mm_struct mm, VMA vma, u64 start,
                     u64 end) except -1:
    """The typed per-VMA steps (modify, mprotect_fixup, advice) take a VMA of this mm
    and a page-aligned piece of it: anything else is refused before a change."""
    cdef Py_ssize_t k
    vma_piece(vma, start, end)
    mm.vma_tree._position(vma, &k)
    return 0


# --- split and modify ----------------------------------------------------------------

cdef VMA split_vma(mm_struct mm, VMA vma, u64 addr):
    """__split_vma(): cut vma at addr, keeping it as the lower part; returns the upper.
    A huge PMD straddling the cut is split first (vma_adjust_trans_huge())."""
    if addr & PMD_MASK:
        split_huge_at(mm, addr)
    cdef VMA upper = vma.piece(addr, vma.end)
    mm.vma_tree.set_end(vma, addr)
    mm.vma_tree.insert(upper)
    return upper


cdef int check_split(mm_struct mm) except -1:
    """split_vma() refuses with ENOMEM once map_count has reached max_map_count."""
    if mm.vma_tree._count >= mm.max_map_count:
        raise_errno(errno.ENOMEM)
    return 0


def vma_modify(mm_struct mm, VMA vma, u64 start, u64 end, flags=None, anon_name=KEEP):
    """__vma_modify() for Python callers: vma must be this mm's and [start, end) a
    page-aligned piece of it."""
    check_piece(mm, vma, start, end)
    return __vma_modify(mm, vma, start, end, vma.flags if flags is None else flags,
                        vma.anon_name if anon_name is KEEP else anon_name)


cdef VMA __vma_modify(mm_struct mm, VMA vma, u64 start, u64 end, u64 nflags, object nname):
    """vma_modify(): give [start, end) (inside vma) new flags and/or anon name, merging
    into a neighbour where the merge rules allow, else splitting. Returns the VMA now
    covering [start, end). ENOMEM if a needed split would pass max_map_count. The caller
    found vma in this mm's tree and [start, end) inside it (a walk's piece)."""
    cdef PyObject *p
    cdef PyObject *n
    cdef VMATree tree = mm.vma_tree
    if nflags == vma.flags and (nname is vma.anon_name or nname == vma.anon_name):
        return vma
    tree._neighbours_into(vma, &p, &n)
    cdef VMA prev = <VMA>p, nxt = <VMA>n
    cdef u64 pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
    cdef u64 npages = (end - start) >> PAGE_SHIFT
    cdef bint left = start == vma.start, right = end == vma.end
    cdef bint merge_left = left and can_merge_after(prev, start, nflags, pgoff, vma.file,
                                                   vma.anon_vma, nname)
    cdef bint merge_right = right and can_merge_before(nxt, end, nflags, pgoff, npages,
                                                      vma.file, vma.anon_vma, nname)
    if merge_left and merge_right and not anon_vma_compatible(prev.anon_vma, nxt.anon_vma):
        merge_right = False
    cdef u64 sticky = vma.flags & VM_STICKY
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
        check_split(mm)
        vma = split_vma(mm, vma, start)
    if end < vma.end:
        check_split(mm)
        split_vma(mm, vma, end)
    vma.flags = nflags
    vma.anon_name = nname
    return vma


# --- map -----------------------------------------------------------------------------

cpdef VMA vma_merge_new_range(mm_struct mm, u64 start, u64 end,
                    u64 flags, u64 pgoff, file,
                    anon_name=None, anon_vma=None):
    """vma_merge_new_range() or a new VMA: place [start, end) (already free) into the
    tree, expanding a compatible neighbour where possible. `anon_vma` is that of the
    range's pages (mremap's copy_vma() brings the moved VMA's along): a neighbour with
    another anon_vma is not merged with. Returns the VMA."""
    cdef VMATree tree = mm.vma_tree
    cdef VMA prev, nxt, vma
    if start >= end or end > TASK_SIZE or (start | end) & ~PAGE_MASK:
        raise ValueError(f"map_range: bad range [{start:#x}, {end:#x})")
    if not tree._range_is_free(start, end):
        raise ValueError(f"map_range: [{start:#x}, {end:#x}) is not free")
    cdef PyObject *p
    cdef PyObject *n
    tree._prev_next_into(start, end, &p, &n)
    prev, nxt = <VMA>p, <VMA>n
    cdef u64 npages = (end - start) >> PAGE_SHIFT
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

cdef list gather_munmap_vmas(mm_struct mm, u64 start, u64 end):
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
    vmas = mm.vma_tree._overlapping(start, end)
    if not vmas:
        return vmas
    first = vmas[0]
    if first.start < start:
        if end < first.end and mm.vma_tree._count >= mm.max_map_count:
            raise_errno(errno.ENOMEM)
        if first.flags & VM_SEALED:
            raise_errno(errno.EPERM)
        vmas[0] = split_vma(mm, first, start)
    for i in range(len(vmas)):
        vma = vmas[i]
        if vma.flags & VM_SEALED:
            raise_errno(errno.EPERM)
        if vma.end > end:
            split_vma(mm, vma, end)
    return vmas


def complete_munmap_vmas(mm_struct mm, list vmas):
    """vms_complete_munmap_vmas() for Python callers: the list is checked first (a
    non-empty list of this mm's VMAs in address order)."""
    _check_vma_list(vmas, mm.vma_tree)
    vms_complete_munmap_vmas(mm, vmas)


cdef int vms_complete_munmap_vmas(mm_struct mm, list vmas) except -1:
    """vms_complete_munmap_vmas(): take gathered VMAs (gather_munmap_vmas()'s list) out of
    the tree, uncharge their mlocked pages, zap their entries (markers too) and free the
    page tables no remaining VMA needs."""
    cdef VMA first = vmas[0], last = vmas[-1], vma
    cdef PyObject *p
    cdef PyObject *n
    cdef PyObject *unused
    mm.vma_tree._neighbours_into(first, &p, &unused)
    mm.vma_tree._neighbours_into(last, &unused, &n)
    cdef VMA prev = <VMA>p, nxt = <VMA>n
    for vma in vmas:
        mm.vma_tree.remove(vma)
        if vma.flags & VM_LOCKED:
            mm.locked_vm -= (vma.end - vma.start) >> PAGE_SHIFT
    pt_result(pt_zap(&mm.pt.mm, first.start, last.end, ZAP_DROP_MARKERS))
    free_vma_pgtables(mm, vmas, prev.end if prev is not None else 0,
                      nxt.start if nxt is not None else 0)
    return 0


cdef do_vmi_munmap(mm_struct mm, u64 start, u64 end):
    """do_vmi_munmap(): remove [start, end)."""
    vmas = gather_munmap_vmas(mm, start, end)
    if vmas:
        vms_complete_munmap_vmas(mm, vmas)


def free_pgtables(mm_struct mm, list vmas, u64 floor, u64 ceiling):
    """free_vma_pgtables() for Python callers: the list is checked first (non-empty, VMAs
    in address order)."""
    _check_vma_list(vmas, None)
    free_vma_pgtables(mm, vmas, floor, ceiling)


cdef int free_vma_pgtables(mm_struct mm, list vmas, u64 floor, u64 ceiling) except -1:
    """mm/memory.c:free_pgtables(): free the tables under the removed VMAs, gathering
    VMAs closer than a PMD into one free_pgd_range() call, bounded by the neighbours
    that stay (floor, ceiling; 0 = no ceiling)."""
    cdef Py_ssize_t i = 0, n = len(vmas)
    cdef u64 addr, top
    while i < n:
        addr = (<VMA>vmas[i]).start
        while i + 1 < n and (<VMA>vmas[i + 1]).start <= (<VMA>vmas[i]).end + PMD_SIZE:
            i += 1
        top = (<VMA>vmas[i]).end
        i += 1
        free_pgd_range(mm, addr, top, floor, (<VMA>vmas[i]).start if i < n else ceiling)
    return 0


cdef int free_pgd_range(mm_struct mm, u64 addr, u64 end,
                        u64 floor, u64 ceiling) except -1:
    """mm/memory.c:free_pgd_range() (ceiling 0: none). The tables it would free must be
    empty: a dry run first, so a bug that left an entry is a ValueError, not a leak."""
    cdef uint64_t bad = 0
    if floor > USER_END or ceiling > USER_END:
        raise ValueError(f"free_pgtables: floor {floor:#x} or ceiling {ceiling:#x} "
                         f"beyond user space")
    if pt_free_pgtables(&mm.pt.mm, addr, end, floor, ceiling, True, &bad):
        raise ValueError(f"free_pgtables: entry at {bad:#x} is not none")
    pt_free_pgtables(&mm.pt.mm, addr, end, floor, ceiling, False, &bad)
    return 0


# --- anon_vma and huge PMDs ------------------------------------------------------------

cpdef anon_vma_prepare(mm_struct mm, VMA vma):
    """mm/rmap.c:anon_vma_prepare(): give vma an anon_vma, reusing a neighbour's when
    they could merge later (find_mergeable_anon_vma())."""
    vma_required(vma)
    if vma.anon_vma is None:
        prev, nxt = mm.vma_tree._neighbours(vma)
        vma.anon_vma = (anon_vma_reusable(vma, nxt) or anon_vma_reusable(vma, prev)
                        or AnonVma())
    return vma.anon_vma


cdef split_huge_at(mm_struct mm, u64 addr):
    """Split a PMD-mapped huge page covering addr, if there is one."""
    cdef uint64_t *pmd
    if addr > TASK_SIZE:
        raise ValueError(f"split_huge_at: {addr:#x} is not a user address")
    pmd = pt_pmd_entry(&mm.pt.mm, addr & PAGE_MASK, False)
    if pmd != NULL and pmd_is_huge(pmd[0]):
        pt_result(pt_split_huge_pmd(&mm.pt.mm, pmd))


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
