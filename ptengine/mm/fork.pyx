# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
"""fork and exit of an address space: kernel/fork.c:dup_mmap(), mm/mmap.c:exit_mmap().

MM.fork() (system.py) builds the child process (a Python class) and hands both address
spaces to dup_mmap(): the loop over every VMA of the parent (1,800 per Android app) runs
without Python attribute lookups or boxed arguments to the page-table copy.
"""
from libc.stdint cimport int64_t, uint64_t
from ..core.walkers cimport COPY_COW, COPY_SHARED, ZAP_DROP_MARKERS, pt_copy_range, pt_zap
from .mm_struct cimport mm_struct, pt_result
from .mm_types cimport VMA
from .vma cimport free_pgd_range

from ..constants import (VM_DONTCOPY, VM_LOCKED_MASK, VM_MAYBE_GUARD, VM_MAYWRITE, VM_MIXEDMAP,
                        VM_PFNMAP, VM_SHARED, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP,
                        VM_WIPEONFORK)
from .mm_types import AnonVma

# Flags a child's VMA does not inherit: locks, and uffd without UFFD_FEATURE_EVENT_FORK.
cdef uint64_t NOT_INHERITED = ~<uint64_t>(VM_LOCKED_MASK | VM_UFFD_MISSING | VM_UFFD_WP |
                                          VM_UFFD_MINOR)
cdef uint64_t c_DONTCOPY = VM_DONTCOPY, c_WIPEONFORK = VM_WIPEONFORK
cdef uint64_t c_SHARED = VM_SHARED, c_MAYWRITE = VM_MAYWRITE
cdef uint64_t USER_END = 1ULL << 47     # the page tables' user half
cdef uint64_t c_RAW_PFNS = VM_PFNMAP | VM_MIXEDMAP, c_MAYBE_GUARD = VM_MAYBE_GUARD


def dup_mmap(mm_struct old not None, mm_struct new not None):
    """Copy old's VMAs into new (fresh, empty) and, where vma_needs_copy() says a fault
    could not refill them, their page-table entries. Returns True when a VM_DONTCOPY VMA
    was left out (the child's layout then differs from the parent's)."""
    cdef VMA vma, child_vma
    cdef bint skipped = False
    cdef int flags
    cdef uint64_t needs_copy = c_RAW_PFNS | (c_MAYBE_GUARD if old.profile.maybe_guard else 0)
    cdef list copies = []
    if old.pt.frames is not new.pt.frames or old.pt is new.pt:
        raise ValueError("dup_mmap needs two address spaces of one System")
    for vma in old.vma_tree:
        if vma.flags & c_DONTCOPY:
            skipped = True
            continue
        # copy(), not piece(): exec/layout.py's SpecialVMA overrides it to keep its name.
        child_vma = vma.copy()
        # Locks are not inherited; without UFFD_FEATURE_EVENT_FORK neither is uffd.
        child_vma.flags &= NOT_INHERITED
        copies.append(child_vma)
        if vma.flags & c_WIPEONFORK:
            child_vma.anon_vma = None
            continue
        if vma.anon_vma is not None:
            child_vma.anon_vma = AnonVma(forked=True)
        elif not vma.flags & needs_copy:
            continue            # vma_needs_copy(): a fault would refill these PTEs
        flags = COPY_SHARED if vma.flags & c_SHARED else (COPY_COW if vma.flags & c_MAYWRITE else 0)
        pt_result(pt_copy_range(&old.pt.mm, &new.pt.mm, vma.start, vma.end, flags))
    new.vma_tree.load(copies)
    return skipped


def exit_mmap(mm_struct mm not None):
    """mm/mmap.c:exit_mmap(): every entry (markers too) and every page table goes, then
    the VMAs; the mm is dead from here on (ESRCH)."""
    if mm.dead:
        return
    pt_result(pt_zap(&mm.pt.mm, 0, USER_END, ZAP_DROP_MARKERS))
    free_pgd_range(mm, 0, USER_END, 0, 0)
    mm.vma_tree.clear()
    mm.dead = True
