# cython: language_level=3
"""Physical frames: mm/page_alloc.c (the free list, allocation of base pages and 512-page
blocks) and include/linux/mm.h (folio refcount and mapcount).

The frame_store is the machine's memory (one per Frames, i.e. per System); the helpers a
walker calls per page are inline here so that they inline into the walkers.
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free

from ptengine.core.entry cimport PT_HPAGE_NR

# ---------------------------------------------------------------------------------------
# Physical frames
# ---------------------------------------------------------------------------------------
cdef enum:
    FRAME_ANON = 1              # private anonymous page (MM_ANONPAGES)
    FRAME_FILE = 2              # page-cache page of a regular file (MM_FILEPAGES)
    FRAME_SHMEM = 3             # shmem / memfd page (MM_SHMEMPAGES)
    FRAME_ZERO = 4              # the shared zero page (never counted, never freed)
    FRAME_KIND_MASK = 7         # flags bits 0..2: the kind
    FRAME_DIRTY = 8             # flags bit 3: the folio is dirty (PG_dirty)
    FRAME_LAZYFREE = 16         # flags bit 4: anon page after MADV_FREE (!PG_swapbacked)
    FRAME_RECLAIM = 32          # flags bit 5: the mark reclaim leaves on a dirty file page
                                # it could not write out; acts as PG_readahead (fault-around
                                # skips it, readahead clears it): mm/madvise.pyx
                                # _reclaimed_cache_pages()
    FRAME_ZERO_PFN = 1          # the zero page's fixed pfn (pfn 0 is never used)
    FRAME_HUGE_ZERO_PFN = 512   # head of the huge zero page: pfns 512..1023, kind ZERO,
                                # mapped only by whole huge PMDs (read faults in THP VMAs)

cdef struct frame_store:
    int32_t *refcount           # per pfn: references (0 = free)
    int32_t *mapcount           # per pfn: page-table mappings (PTE or PMD) of this frame
    uint8_t *flags              # per pfn: kind | FRAME_DIRTY | FRAME_LAZYFREE | FRAME_RECLAIM
    uint8_t **data              # per pfn: 4 KiB contents, NULL while all zero
    int64_t *free_next          # free list (doubly linked so alloc_huge can unlink)
    int64_t *free_prev
    uint16_t *block_free        # free pfns per 512-aligned block (alloc_huge looks for 512)
    int64_t capacity            # pfns the arrays hold (a multiple of 512)
    int64_t free_head           # first free pfn, -1 if none
    int64_t nr_used             # frames in use, the zero pages excluded
    int64_t nr_data             # frames with a data page allocated
    # The page-table pool of every PageTables over these frames (one System): tables are
    # carved from chunks mapped with mmap(), recycled through a free list, and the chunks
    # are unmapped when the Frames is freed, so a System that is gone returns its tables.
    uint64_t *table_free        # free tables, linked through each one's first word
    char *chunk_next            # the unused tail [chunk_next, chunk_end) of the newest
    char *chunk_end             # chunk (populated when mapped, zero until carved)
    void **chunks               # every chunk mapped (nr_chunks of cap_chunks slots)
    int64_t nr_chunks
    int64_t cap_chunks
    int64_t high                # the watermark: pfns from here to capacity were never
                                # used (free, on no list, their entries not initialised:
                                # nothing may read them)

# The largest pfn a PTE can name (bits 12..51).
cdef extern from *:
    """
    #define PTENG_PFN_LIMIT (1LL << 40)
    """
    const int64_t PFN_LIMIT "PTENG_PFN_LIMIT"


cdef inline bint pfn_is_zero(uint64_t pfn) noexcept nogil:
    """The zero page or a frame of the huge zero page: no refcount, mapcount or RSS."""
    return pfn == FRAME_ZERO_PFN or (pfn & ~(<uint64_t>PT_HPAGE_NR - 1)) == FRAME_HUGE_ZERO_PFN


# Growth of the per-pfn arrays (0, or -ENOMEM), and a 512-aligned block of frames (its
# head pfn, or -ENOMEM): the slow paths, calls. The per-page primitives the walkers use
# (callers have validated the pfn) are inline below, so that they inline into the walkers:
# fs_alloc (a pfn, or -ENOMEM), fs_put (drop one reference), fs_map (+1 ref, +1 mapcount),
# fs_unmap (-1 mapcount, -1 ref).
cdef int _fs_grow(frame_store *fs, int64_t new_cap) noexcept nogil
cdef int64_t fs_alloc_huge(frame_store *fs, int kind) noexcept nogil

# ---------------------------------------------------------------------------------------
cdef inline void _fl_push(frame_store *fs, int64_t pfn) noexcept nogil:
    fs.free_prev[pfn] = -1
    fs.free_next[pfn] = fs.free_head
    if fs.free_head >= 0:
        fs.free_prev[fs.free_head] = pfn
    fs.free_head = pfn
    fs.block_free[pfn >> 9] += 1


cdef inline void _fl_unlink(frame_store *fs, int64_t pfn) noexcept nogil:
    cdef int64_t p = fs.free_prev[pfn]
    cdef int64_t n = fs.free_next[pfn]
    if p >= 0:
        fs.free_next[p] = n
    else:
        fs.free_head = n
    if n >= 0:
        fs.free_prev[n] = p
    fs.block_free[pfn >> 9] -= 1


cdef inline void _fs_free(frame_store *fs, int64_t pfn) noexcept nogil:
    if fs.data[pfn] != NULL:
        free(fs.data[pfn])
        fs.data[pfn] = NULL
        fs.nr_data -= 1
    fs.flags[pfn] = 0
    fs.mapcount[pfn] = 0
    _fl_push(fs, pfn)
    fs.nr_used -= 1



cdef inline void _fs_fresh(frame_store *fs, int64_t pfn) noexcept nogil:
    """Set up a pfn the watermark passes: the state of a free frame."""
    fs.refcount[pfn] = 0
    fs.mapcount[pfn] = 0
    fs.flags[pfn] = 0
    fs.data[pfn] = NULL


cdef inline int64_t _fs_take(frame_store *fs) noexcept nogil:
    """A free pfn, taken off the store (its refcount, mapcount and flags are the caller's
    to set; its data is NULL): the most recently freed one, else the first never used
    (the watermark), growing the store when it is all used; -ENOMEM."""
    cdef int64_t pfn = fs.free_head
    if pfn >= 0:
        _fl_unlink(fs, pfn)
        return pfn
    if fs.high == fs.capacity and _fs_grow(fs, fs.capacity * 2) < 0:
        return -ENOMEM
    pfn = fs.high
    fs.high += 1
    fs.data[pfn] = NULL
    return pfn


cdef inline int64_t fs_alloc(frame_store *fs, int kind) noexcept nogil:
    cdef int64_t pfn = _fs_take(fs)
    if pfn < 0:
        return pfn
    fs.refcount[pfn] = 1
    fs.mapcount[pfn] = 0
    fs.flags[pfn] = <uint8_t>kind
    fs.nr_used += 1
    return pfn


cdef inline void fs_put(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.refcount[pfn] -= 1
    if fs.refcount[pfn] == 0:
        _fs_free(fs, pfn)


cdef inline void fs_map(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.refcount[pfn] += 1
    fs.mapcount[pfn] += 1


cdef inline void fs_unmap(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.mapcount[pfn] -= 1
    fs_put(fs, pfn)


cdef inline int _kind(frame_store *fs, uint64_t pfn) noexcept nogil:
    return fs.flags[pfn] & FRAME_KIND_MASK
