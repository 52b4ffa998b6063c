# cython: language_level=3
"""The generic page-table walk: mm/pagewalk.c (walk_page_range in miniature), and the
branch-free table scans the walkers share (inline, so they vectorize where they are used).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

from ptengine.core.entry cimport *
from ptengine.core.tables cimport pt_mm

# Return codes of walk callbacks (negative values are -errno)
cdef enum:
    WALK_NEXT = 0               # go on with the next entry
    WALK_STOP = 1               # stop; pt_walk.stop holds the address
    WALK_DESCEND = 2            # (huge_pmd only) the PMD was split: walk its PTE table

cdef struct pt_walk

ctypedef int (*pt_range_fn)(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil
ctypedef int (*pt_hole_fn)(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil

cdef struct pt_walk_ops:
    pt_range_fn pte_range       # a PTE table covers [addr, end); *pmd points at it
    pt_range_fn huge_pmd        # a huge PMD covers [addr, end); NULL = skip it
    pt_hole_fn hole             # no table covers [addr, end); NULL = skip
    bint alloc                  # allocate missing tables instead of reporting holes

cdef struct pt_walk:
    pt_mm *mm
    const pt_walk_ops *ops
    uint64_t start              # the walked range
    uint64_t stop               # where a callback returned WALK_STOP
    int64_t count               # the operation's result
    uint64_t arg                # operation argument (flags, new bits, ...)
    uint64_t arg2               # second operation argument (mask, pte flags, ...)
    void *priv                  # operation-specific state

# Generic walk (mm/pagewalk.c in miniature): descends PGD -> PUD -> PMD -> PTE over
# [start, end), clipping each step to its entry's span, and calls ops for each PTE table,
# huge PMD and hole. Returns 0, the first non-zero callback result, or -ENOMEM.
cdef int pt_walk_range(pt_walk *w, uint64_t start, uint64_t end) noexcept nogil
# The whole set-up of a walk in one call, as the kernel's walk_page_range(mm, start, end,
# ops, private): fills w (stop = end, count = 0, arg, arg2, priv) and walks [start, end)
# with ops (typically one static pt_walk_ops per walker). w.stop and w.count are the
# results the walker's callbacks leave.
cdef int pt_run_walk(pt_walk *w, pt_mm *mm, const pt_walk_ops *ops, uint64_t start,
                     uint64_t end, uint64_t arg, uint64_t arg2, void *priv) noexcept nogil

# The huge_pmd callback of a walk that stops at the first huge PMD (w.stop = its address).
cdef int _stop_here(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil


cdef inline uint64_t *_ptes(uint64_t *pmd, uint64_t addr) noexcept nogil:
    return entry_table(pmd[0]) + pt_index(addr, PT_PAGE_SHIFT)


# ---------------------------------------------------------------------------------------
# Branch-free table scans, written so that the compiler vectorizes them with x86-64's
# baseline SSE2 (which has no 64-bit compare: only shifts and bitwise operations are used),
# and called with the constant 512 for whole tables so that even -O2's cheapest
# vectorization applies.
# ---------------------------------------------------------------------------------------
cdef inline uint64_t _scan_n(const uint64_t *p, Py_ssize_t n, int64_t *guards) noexcept nogil:
    # With hi/lo the 32-bit halves of e: e is none or exactly GUARD_PTE (whose hi is all
    # ones) <=> hi is 0 or 0xFFFFFFFF, i.e. hi + (hi >> 31) == 0 mod 2**32, and lo equals
    # hi & GUARD_PTE's lo. Only the low 32 bits of each term matter, so the mask is
    # applied once, to the accumulated result. When that holds, bit 63 tells a guard from
    # a none entry.
    cdef uint64_t acc = 0, top = 0, e, low = <uint64_t>0xFFFFFFFF
    cdef uint64_t guard_lo = GUARD_PTE & low
    cdef Py_ssize_t i
    for i in range(n):
        e = p[i]
        acc |= (e ^ ((e >> 32) & guard_lo)) | ((e >> 32) + (e >> 63))
        top += e >> 63
    guards[0] = <int64_t>top
    return acc & low


cdef inline uint64_t _scan(const uint64_t *p, Py_ssize_t n, int64_t *guards) noexcept nogil:
    """Non-zero iff some entry of p[:n] is neither none nor exactly GUARD_PTE; otherwise
    *guards is the number of guard markers."""
    if n == PT_PTRS_PER_TABLE:
        return _scan_n(p, PT_PTRS_PER_TABLE, guards)
    return _scan_n(p, n, guards)


cdef inline void _fill_n(uint64_t *p, Py_ssize_t n, uint64_t v) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        p[i] = v


cdef inline void _fill(uint64_t *p, Py_ssize_t n, uint64_t v) noexcept nogil:
    if n == PT_PTRS_PER_TABLE:
        _fill_n(p, PT_PTRS_PER_TABLE, v)
    else:
        _fill_n(p, n, v)


cdef inline uint64_t _or_table(const uint64_t *p) noexcept nogil:
    """Zero iff all 512 entries of the table are none."""
    cdef uint64_t acc = 0
    cdef Py_ssize_t i
    for i in range(PT_PTRS_PER_TABLE):
        acc |= p[i]
    return acc
