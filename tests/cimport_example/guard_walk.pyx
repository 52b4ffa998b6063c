# cython: language_level=3
"""A tiny extension that builds on ptengine's compiled core from C, as another simulator
would: it cimports ptengine.core (entry.pxd, walk.pxd, walkers.pxd, pagetables.pxd), runs
its own nogil callback under the core's generic page-table walk, and uses the documented
entry encoding. The test builds it a second time with every ptengine.core.* cimport read
from the forwarding ptengine/_core.pxd instead."""
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from ptengine.core.entry cimport (GUARD_PTE, PT_PAGE_SHIFT, PTE_MARKER_GUARD, entry_table,
                                  make_marker_pte, pt_index, pte_is_guard)
from ptengine.core.pagetables cimport PageTables
from ptengine.core.walk cimport WALK_NEXT, pt_walk, pt_walk_ops, pt_walk_range
from ptengine.core.walkers cimport ZAP_DROP_MARKERS, pt_free_pgtables, pt_install_guards, pt_zap


cdef int _count_guards(pt_walk *w, uint64_t *pmd, uint64_t addr,
                       uint64_t end) noexcept nogil:
    cdef uint64_t *pte = entry_table(pmd[0]) + pt_index(addr, PT_PAGE_SHIFT)
    cdef Py_ssize_t i
    for i in range(<Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)):
        if pte_is_guard(pte[i]):
            w.count += 1
    return WALK_NEXT


def count_guards(PageTables pt not None, uint64_t start, uint64_t end):
    """Guard markers in [start, end) (page-aligned, start <= end <= 1 << 47)."""
    cdef pt_walk_ops ops
    cdef pt_walk w
    if start > end or end > (<uint64_t>1) << 47 or (start | end) & 0xFFF:
        raise ValueError("bad range")
    ops.pte_range = _count_guards
    ops.huge_pmd = NULL
    ops.hole = NULL
    ops.alloc = False
    memset(&w, 0, sizeof(w))
    w.mm = &pt.mm
    w.ops = &ops
    w.start = start
    with nogil:
        pt_walk_range(&w, start, end)
    return w.count


def churn(PageTables pt not None, uint64_t start, uint64_t end, int rounds):
    """Install guards over [start, end), zap them and free the tables, `rounds` times,
    without the GIL: what the .pxd allows to run beside the same on another System.
    Returns the entries zapped in all (-1 if the walker ran out of memory)."""
    cdef uint64_t stop, bad
    cdef int64_t total = 0
    cdef int i
    if start > end or end > (<uint64_t>1) << 47 or (start | end) & 0xFFF:
        raise ValueError("bad range")
    with nogil:
        for i in range(rounds):
            if pt_install_guards(&pt.mm, start, end, &stop) < 0:
                total = -1
                break
            total += pt_zap(&pt.mm, start, end, ZAP_DROP_MARKERS)
            pt_free_pgtables(&pt.mm, start, end, 0, 0, False, &bad)
    return total


def guard_marker():
    """The guard marker as the .pxd's inline encoder builds it."""
    assert make_marker_pte(PTE_MARKER_GUARD) == GUARD_PTE
    return make_marker_pte(PTE_MARKER_GUARD)


# --- the VMA layer from C ---------------------------------------------------------------
from ptengine.mm.mm_struct cimport mm_struct
from ptengine.mm.mm_types cimport VMA
from ptengine.mm.vmatree cimport VMATree


def guarded_vma_bytes(mm_struct mm not None, uint64_t maybe_guard_flag):
    """Bytes of the VMAs carrying `maybe_guard_flag` (VM_MAYBE_GUARD), read from the VMA
    structs' C fields while walking the mm's tree."""
    cdef VMATree tree = mm.vma_tree
    cdef VMA v
    cdef uint64_t total = 0
    for v in tree:
        if v.flags & maybe_guard_flag:
            total += v.end - v.start
    return total
