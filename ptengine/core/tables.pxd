# cython: language_level=3
"""Page-table pages and the PMD level: mm/pgtable-generic.c, include/linux/pgalloc (the
table pool), mm/huge_memory.c (split and zap of a PMD leaf), mm/rmap.c (mapping counts).

pt_mm is one address space's tables (the mm_struct's pgd and counters). The helpers every
walker calls per table or page are inline here, so that they inline into the walkers;
pt_new_table's slow path (growing the pool) is a call.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memset

from ptengine.core.entry cimport *
from ptengine.core.frames cimport *

# ---------------------------------------------------------------------------------------
# One address space's page tables (the mm_struct's pgd and counters)
# ---------------------------------------------------------------------------------------
cdef struct pt_mm:
    uint64_t *pgd               # top-level table, always allocated, not counted
    frame_store *fs             # the frames every present entry refers to
    int64_t nr_pte_tables       # mm->pgtables_bytes / 4096, split by level: PTE tables
                                # (including the table deposited with each anon or huge
                                # zero PMD, as pgtable_trans_huge_deposit() counts it)
    int64_t nr_pmd_tables       # PMD tables
    int64_t nr_pud_tables       # PUD tables
    int64_t rss[4]              # indexed by frame kind: [FRAME_ANON], [FRAME_FILE],
                                # [FRAME_SHMEM] in pages; [0] unused
    int64_t swap_ents           # MM_SWAPENTS: genuine swap entries (markers excluded)
    int64_t nr_shared_pte_tables  # of nr_pte_tables, those naming a canonical shared table
                                # (no host memory of their own)
    int64_t nr_host_tables      # 4 KiB tables this mm holds in host memory, pgd included

# The table pool of a frame_store (0, or -1 when mmap() failed), and its release with the
# Frames.
cdef int _grow_table_pool(frame_store *fs) noexcept nogil
cdef void _free_table_pool(frame_store *fs) noexcept nogil

# Table and THP primitives
cdef int pt_alloc_table(pt_mm *mm, uint64_t *entry, int level_shift) noexcept nogil
# The canonical read-only PTE table whose 512 entries are all `value` (0 or GUARD_PTE),
# allocated once per interpreter and never freed or written; NULL for any other value.
cdef const uint64_t *pt_shared_table(uint64_t value) noexcept nogil
# Give the PMD entry's PTE table to this mm alone before writing it: a shared table is
# replaced by a private copy (0, or -ENOMEM); a private one stays.
cdef int pte_table_unshare(pt_mm *mm, uint64_t *pmd) noexcept nogil
cdef uint64_t *pt_pmd_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil
cdef int pt_split_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil
# Internal to the walkers (walkers.pyx, pagetables.pyx): see tables.pyx.
cdef void _pmd_share(pt_mm *mm, uint64_t *pmd, uint64_t value) noexcept nogil
cdef int _pte_table_private(pt_mm *mm, uint64_t *pmd) noexcept nogil
cdef uint64_t *_pte_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil
cdef void _zap_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil


cdef inline uint64_t *_new_table(frame_store *fs) noexcept nogil:
    """A zeroed 4 KiB-aligned table from the pool; NULL if memory ran out."""
    cdef uint64_t *t = fs.table_free
    if t != NULL:
        fs.table_free = <uint64_t *>t[0]
        memset(t, 0, PAGE_SIZE_)
        return t
    if fs.chunk_next == fs.chunk_end and _grow_table_pool(fs) < 0:
        return NULL
    t = <uint64_t *>fs.chunk_next          # fresh from mmap(): already zero
    fs.chunk_next += PAGE_SIZE_
    return t


cdef inline void _release_table(frame_store *fs, uint64_t *t) noexcept nogil:
    """Give a table back to the pool."""
    t[0] = <uint64_t>fs.table_free
    fs.table_free = t


cdef inline uint64_t *_mm_new_table(pt_mm *mm) noexcept nogil:
    """A zeroed table from the pool, counted in the host memory of mm."""
    cdef uint64_t *t = _new_table(mm.fs)
    if t != NULL:
        mm.nr_host_tables += 1
    return t


cdef inline void _mm_release_table(pt_mm *mm, uint64_t *t) noexcept nogil:
    _release_table(mm.fs, t)
    mm.nr_host_tables -= 1


cdef inline void _count_table(pt_mm *mm, int level_shift, int delta) noexcept nogil:
    """level_shift names the level of the entry that points at the table."""
    if level_shift == PT_PGDIR_SHIFT:
        mm.nr_pud_tables += delta
    elif level_shift == PT_PUD_SHIFT:
        mm.nr_pmd_tables += delta
    else:
        mm.nr_pte_tables += delta


cdef inline void _free_table(pt_mm *mm, uint64_t *entry, int level_shift) noexcept nogil:
    """Clear the entry and count its table out; a canonical shared table is not pooled."""
    if pmd_is_shared(entry[0]):
        mm.nr_shared_pte_tables -= 1
    else:
        _mm_release_table(mm, entry_table(entry[0]))
    entry[0] = 0
    _count_table(mm, level_shift, -1)


cdef inline void _map_frames(pt_mm *mm, uint64_t pfn, int64_t nr) noexcept nogil:
    """A new mapping of nr frames from pfn: ref + mapcount each, RSS by kind."""
    cdef int64_t i
    if pfn_is_zero(pfn):
        return
    for i in range(nr):
        fs_map(mm.fs, pfn + i)
    mm.rss[_kind(mm.fs, pfn)] += nr


cdef inline void _unmap_frames(pt_mm *mm, uint64_t pfn, int64_t nr,
                               bint pte_dirty) noexcept nogil:
    """Drop a mapping of nr frames; a dirty PTE of a page-cache page dirties the page."""
    cdef int64_t i
    cdef int kind
    if pfn_is_zero(pfn):
        return
    kind = _kind(mm.fs, pfn)
    mm.rss[kind] -= nr
    for i in range(nr):
        if pte_dirty and kind != FRAME_ANON:
            mm.fs.flags[pfn + i] |= FRAME_DIRTY
        fs_unmap(mm.fs, pfn + i)


cdef inline bint _has_deposit(frame_store *fs, uint64_t head) noexcept nogil:
    """An anon THP or the huge zero page comes with a deposited PTE table (counted in
    nr_pte_tables); file and shmem THPs do not on x86-64."""
    return _kind(fs, head) == FRAME_ANON or pfn_is_zero(head)
