# cython: language_level=3
"""Physical frames: mm/page_alloc.c and include/linux/mm.h (folio refcount/mapcount).

The nogil frame primitives over frame_store (declared, with the inline helpers, in
frames.pxd). The Python face of a frame_store is pagetables.pyx's Frames.
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport memset

from ptengine.core.entry cimport PT_HPAGE_NR


cdef int _fs_grow(frame_store *fs, int64_t new_cap) noexcept nogil:
    """Grow every per-pfn array to new_cap (a multiple of 512): one realloc each. The new
    pfns are above the watermark (fs.high): free, on no list, and not even initialised
    (nothing reads a pfn above the watermark; _fs_fresh() sets one up when it is first
    handed out), so the host does not fault in memory for pfns never used. A failed
    realloc leaves the store as it was (bigger arrays are harmless)."""
    cdef int64_t old = fs.capacity
    cdef void *p
    if new_cap > PFN_LIMIT:
        return -ENOMEM
    p = realloc(fs.refcount, new_cap * sizeof(int32_t))
    if p == NULL:
        return -ENOMEM
    fs.refcount = <int32_t *>p
    p = realloc(fs.mapcount, new_cap * sizeof(int32_t))
    if p == NULL:
        return -ENOMEM
    fs.mapcount = <int32_t *>p
    p = realloc(fs.flags, new_cap * sizeof(uint8_t))
    if p == NULL:
        return -ENOMEM
    fs.flags = <uint8_t *>p
    p = realloc(fs.data, new_cap * sizeof(uint8_t *))
    if p == NULL:
        return -ENOMEM
    fs.data = <uint8_t **>p
    p = realloc(fs.free_next, new_cap * sizeof(int64_t))
    if p == NULL:
        return -ENOMEM
    fs.free_next = <int64_t *>p
    p = realloc(fs.free_prev, new_cap * sizeof(int64_t))
    if p == NULL:
        return -ENOMEM
    fs.free_prev = <int64_t *>p
    p = realloc(fs.block_free, (new_cap >> 9) * sizeof(uint16_t))
    if p == NULL:
        return -ENOMEM
    fs.block_free = <uint16_t *>p
    memset(fs.block_free + (old >> 9), 0, ((new_cap - old) >> 9) * sizeof(uint16_t))
    fs.capacity = new_cap
    return 0


cdef int64_t fs_alloc_huge(frame_store *fs, int kind) noexcept nogil:
    """A 512-aligned block of free frames: one wholly on the free list, else the first
    whole block above the watermark (the pfns skipped to align it go on the free list)."""
    cdef int64_t b, head, i, nblocks = fs.high >> 9
    cdef bint listed = False
    for b in range(1, nblocks):
        if fs.block_free[b] == PT_HPAGE_NR:
            listed = True
            break
    if listed:
        head = b << 9
    else:
        head = (fs.high + PT_HPAGE_NR - 1) & ~(<int64_t>PT_HPAGE_NR - 1)
        while head + PT_HPAGE_NR > fs.capacity:
            if _fs_grow(fs, fs.capacity * 2) < 0:
                return -ENOMEM
        i = head - 1
        while i >= fs.high:
            _fs_fresh(fs, i)
            _fl_push(fs, i)
            i -= 1
        fs.high = head + PT_HPAGE_NR
    for i in range(head, head + PT_HPAGE_NR):
        if listed:
            _fl_unlink(fs, i)
        else:
            fs.data[i] = NULL
        fs.refcount[i] = 1
        fs.mapcount[i] = 0
        fs.flags[i] = <uint8_t>kind
    fs.nr_used += PT_HPAGE_NR
    return head
