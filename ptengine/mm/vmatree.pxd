# The per-mm VMA set (vmatree.pyx), for the mm functions and simulators that cimport it.
from cpython.ref cimport PyObject
from .mm_types cimport VMA


cdef class VMATree:
    cdef list _blocks               # lists of VMAs in address order, each at most 2*load
    cdef Py_ssize_t _load
    cdef Py_ssize_t _count
    # The hole index. Each hole belongs to the block of the VMA below it; per block: the
    # largest of its holes (an upper bound while clean) and whether it must be measured
    # again, kept in step with _blocks. Over them a max segment tree (dirty blocks count
    # as unbounded), rebuilt lazily after blocks are split, joined or dropped.
    cdef unsigned long long *_gap
    cdef unsigned char *_dirty
    cdef Py_ssize_t _cap
    cdef unsigned long long *_seg
    cdef Py_ssize_t _seg_n             # leaves (a power of two >= 2); 0 while stale
    # The free-area cache (see highest_gap()).
    cdef bint _cache_valid
    cdef unsigned long long _cache_high, _cache_addr, _cache_hole
    cdef VMA _hit_upper               # _hole_below()'s VMA above the hole it found
    # The finger: (block, index) of the VMA last located, tried before any search. A
    # guess, checked on use, so no change to the tree has to keep it right.
    cdef Py_ssize_t _finger_k, _finger_j

    cdef int _reserve(self, Py_ssize_t nblocks) except -1
    cdef int _add_block(self, Py_ssize_t k, list block) except -1
    cdef int _drop_block(self, Py_ssize_t k) except -1
    cdef unsigned long long _block_gap(self, Py_ssize_t k) except? 0xFFFFFFFFFFFFFFFF
    cdef void _mark(self, Py_ssize_t k) noexcept
    cdef int _settle(self, Py_ssize_t k) except -1
    cdef void _seg_set(self, Py_ssize_t k, unsigned long long value) noexcept
    cdef int _seg_build(self) except -1
    cdef Py_ssize_t _seg_rightmost(self, Py_ssize_t k, unsigned long long length) noexcept
    cdef Py_ssize_t _seg_leftmost(self, Py_ssize_t k, unsigned long long length) noexcept
    cdef Py_ssize_t _block_for(self, unsigned long long key) noexcept
    cdef Py_ssize_t _position(self, VMA vma, Py_ssize_t *k) except -1
    cdef Py_ssize_t _search_position(self, VMA vma, Py_ssize_t *k) except -1
    cdef bint _finger_right(self, unsigned long long key, Py_ssize_t *k,
                            Py_ssize_t *j) noexcept
    cdef VMA _item(self, Py_ssize_t k, Py_ssize_t j)
    cdef PyObject *_item_ref(self, Py_ssize_t k, Py_ssize_t j) noexcept
    cdef int _locate_left(self, unsigned long long key, Py_ssize_t *k,
                          Py_ssize_t *j) except -1
    cdef VMA _last(self)
    cdef VMA _find(self, unsigned long long addr)
    cdef tuple _neighbours(self, VMA vma)
    cdef tuple _prev_next(self, unsigned long long start, unsigned long long end)
    # The same without a tuple: borrowed references (None where there is none) through
    # the pointers; a typed local takes its own (`cdef VMA prev = <VMA>p`).
    cdef int _neighbours_into(self, VMA vma, PyObject **prev, PyObject **nxt) except -1
    cdef int _prev_next_into(self, unsigned long long start, unsigned long long end,
                             PyObject **prev, PyObject **nxt) except -1
    cdef list _overlapping(self, unsigned long long start, unsigned long long end)
    cdef bint _range_is_free(self, unsigned long long start, unsigned long long end)
    cdef bint _hole_below(self, unsigned long long top, unsigned long long length,
                          unsigned long long low, unsigned long long high,
                          unsigned long long *hole_end,
                          unsigned long long *passed) except -1
    cdef bint _highest_gap(self, unsigned long long length, unsigned long long low,
                           unsigned long long high, unsigned long long *result) except -1
    cdef bint _lowest_gap(self, unsigned long long length, unsigned long long low,
                          unsigned long long high, unsigned long long *result) except -1
    cpdef insert(self, VMA vma)
    cpdef remove(self, VMA vma, bint range_stays_mapped=*)
    cpdef set_end(self, VMA vma, unsigned long long end)
    cpdef set_start(self, VMA vma, unsigned long long start)
