# cython: language_level=3
"""The generic page-table walk: mm/pagewalk.c (walk_page_range, walk_pgd_range ..
walk_pte_range): descends PGD -> PUD -> PMD -> PTE and calls a walker's ops.
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int64_t, uint64_t

from ptengine.core.entry cimport *
from ptengine.core.tables cimport pt_alloc_table, pt_mm, pt_pmd_entry


# ---------------------------------------------------------------------------------------
# The generic walk
# ---------------------------------------------------------------------------------------
cdef int pt_run_walk(pt_walk *w, pt_mm *mm, const pt_walk_ops *ops, uint64_t start,
                     uint64_t end, uint64_t arg, uint64_t arg2, void *priv) noexcept nogil:
    w.mm = mm
    w.ops = ops
    w.start = start
    w.stop = end
    w.count = 0
    w.arg = arg
    w.arg2 = arg2
    w.priv = priv
    return pt_walk_range(w, start, end)


cdef int _walk_table(pt_walk *w, uint64_t *table, int shift, uint64_t addr,
                     uint64_t end) noexcept nogil:
    """One level of the walk: the entries of `table` (a PGD, PUD or PMD table, by shift)
    over [addr, end)."""
    cdef const pt_walk_ops *ops = w.ops
    cdef uint64_t next
    cdef uint64_t *e
    cdef int r
    while True:
        next = pt_addr_end(addr, end, shift)
        e = table + pt_index(addr, shift)
        r = 0
        if shift == PT_PMD_SHIFT and pmd_is_huge(e[0]):
            r = ops.huge_pmd(w, e, addr, next) if ops.huge_pmd != NULL else WALK_NEXT
            if r == WALK_DESCEND:
                r = 0
            elif r != 0:
                return r
            else:
                addr = next
                if addr == end:
                    return 0
                continue
        if e[0] == 0:
            if not ops.alloc:
                if ops.hole != NULL:
                    r = ops.hole(w, addr, next)
                    if r:
                        return r
                addr = next
                if addr == end:
                    return 0
                continue
            if pt_alloc_table(w.mm, e, shift) < 0:
                return -ENOMEM
        if shift == PT_PMD_SHIFT:
            r = ops.pte_range(w, e, addr, next)
        else:
            r = _walk_table(w, entry_table(e[0]), shift - 9, addr, next)
        if r:
            return r
        addr = next
        if addr == end:
            return 0


cdef int pt_walk_range(pt_walk *w, uint64_t start, uint64_t end) noexcept nogil:
    if start >= end:
        return 0
    if (start ^ (end - 1)) >> PT_PMD_SHIFT == 0:
        return _walk_in_pmd(w, start, end)
    return _walk_table(w, w.mm.pgd, PT_PGDIR_SHIFT, start, end)


cdef int _walk_in_pmd(pt_walk *w, uint64_t start, uint64_t end) noexcept nogil:
    """A range inside one PMD span (a one-page madvise, mprotect or zap) goes straight to
    what the level-by-level walk would reach: its PTE table, or one hole [start, end) at
    whichever level a table is missing. Allocating walks and huge PMDs take the walk."""
    cdef uint64_t *pmd = pt_pmd_entry(w.mm, start, False)
    cdef uint64_t e = pmd[0] if pmd != NULL else 0
    if e == 0 and not w.ops.alloc:
        return w.ops.hole(w, start, end) if w.ops.hole != NULL else 0
    if e != 0 and not pmd_is_huge(e):
        return w.ops.pte_range(w, pmd, start, end)
    return _walk_table(w, w.mm.pgd, PT_PGDIR_SHIFT, start, end)


cdef int _stop_here(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    w.stop = addr
    return WALK_STOP
