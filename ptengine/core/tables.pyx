# cython: language_level=3
"""Page-table pages and the PMD level: mm/pgtable-generic.c, include/linux/pgalloc,
mm/huge_memory.c (split_huge_pmd, zap_huge_pmd).

The table pool, the two canonical shared PTE tables, table allocation and the PMD/PTE
lookups the walkers and the Python layer share (the inline helpers are in tables.pxd).
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset
from posix.mman cimport (MAP_ANONYMOUS, MAP_FAILED, MAP_POPULATE, MAP_PRIVATE, PROT_READ,
                         PROT_WRITE, mmap, mprotect, munmap)

from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.walk cimport _fill


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------
# Table pages come from a pool per Frames (per System): chunks of TABLE_CHUNK pages mapped
# with mmap(), handed out 4 KiB at a time from the newest chunk's untouched tail, and a free
# list threaded through the first word of each freed table. Freed tables are kept for reuse
# while the System lives (like the kernel's page-table caches, they are recycled); the
# chunks are unmapped with the Frames, so the host gets back what a System's tables took.
# mmap() rather than malloc(): the heap would keep freed chunks. MAP_POPULATE: the host
# allocates a chunk's pages in one call instead of one page fault per new table (two
# when a walker reads the fresh table first: a zero page, then a copy on the write); a
# run that makes 100,000 tables spent most of its batch time in those faults (about half
# of glibc_threads n=100,000 under guard markers; notes/performance.md, session 5).
cdef enum:
    TABLE_CHUNK = 128


cdef int _grow_table_pool(frame_store *fs) noexcept nogil:
    cdef void *p
    cdef void **chunks
    cdef int64_t cap
    if fs.nr_chunks == fs.cap_chunks:
        cap = 2 * fs.cap_chunks if fs.cap_chunks else 16
        chunks = <void **>realloc(fs.chunks, cap * sizeof(void *))
        if chunks == NULL:
            return -1
        fs.chunks = chunks
        fs.cap_chunks = cap
    p = mmap(NULL, PAGE_SIZE_ * TABLE_CHUNK, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
    if p == MAP_FAILED:
        return -1
    if (<uint64_t>p + PAGE_SIZE_ * (TABLE_CHUNK - 1)) & ~PTE_PFN_MASK:
        munmap(p, PAGE_SIZE_ * TABLE_CHUNK)  # the host pointer must fit in bits 12..51
        return -1
    fs.chunks[fs.nr_chunks] = p
    fs.nr_chunks += 1
    fs.chunk_next = <char *>p
    fs.chunk_end = <char *>p + PAGE_SIZE_ * TABLE_CHUNK
    return 0


cdef void _free_table_pool(frame_store *fs) noexcept nogil:
    """Unmap every chunk (the Frames is going away, and every PageTables over it is gone)."""
    cdef int64_t i
    for i in range(fs.nr_chunks):
        munmap(fs.chunks[i], PAGE_SIZE_ * TABLE_CHUNK)
    free(fs.chunks)
    fs.chunks = NULL
    fs.nr_chunks = fs.cap_chunks = 0
    fs.table_free = NULL
    fs.chunk_next = fs.chunk_end = NULL


# ---------------------------------------------------------------------------------------
# Shared uniform PTE tables. Most PTE tables of a guard-heavy address space hold one value
# 512 times (a 2 MiB span of guard markers, or nothing left after a remove): such a table
# is not given 4 KiB of its own, its PMD entry names one of two canonical tables, with
# PMD_SHARED_TABLE set. They are mapped read-only once per interpreter, so a walker that
# forgets pte_table_unshare() faults at once instead of corrupting every mm. The kernel
# has one table per PMD whatever it holds, so nr_pte_tables (VmPTE) counts shared tables
# like private ones; nr_shared_pte_tables and nr_host_tables say what the host holds.
# ---------------------------------------------------------------------------------------
cdef uint64_t *NONE_TABLE = NULL
cdef uint64_t *GUARD_TABLE = NULL


cdef int _init_shared_tables() except -1:
    global NONE_TABLE, GUARD_TABLE
    cdef void *p = mmap(NULL, 2 * PAGE_SIZE_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if p == MAP_FAILED or (<uint64_t>p + PAGE_SIZE_) & ~PTE_PFN_MASK:
        raise MemoryError("no memory for the shared page tables")
    NONE_TABLE = <uint64_t *>p
    GUARD_TABLE = <uint64_t *>p + PT_PTRS_PER_TABLE
    _fill(GUARD_TABLE, PT_PTRS_PER_TABLE, GUARD_PTE)
    mprotect(p, 2 * PAGE_SIZE_, PROT_READ)
    return 0


_init_shared_tables()


cdef const uint64_t *pt_shared_table(uint64_t value) noexcept nogil:
    if value == 0:
        return NONE_TABLE
    if value == GUARD_PTE:
        return GUARD_TABLE
    return NULL


cdef void _pmd_share(pt_mm *mm, uint64_t *pmd, uint64_t value) noexcept nogil:
    """Point the PMD entry (none, private or shared) at the canonical table of value (0 or
    GUARD_PTE): a none entry gains a (logical) table, a private table goes to the pool."""
    cdef uint64_t e = pmd[0]
    if e == 0:
        mm.nr_pte_tables += 1
    elif not pmd_is_shared(e):
        _mm_release_table(mm, entry_table(e))
    if not pmd_is_shared(e):
        mm.nr_shared_pte_tables += 1
    pmd[0] = <uint64_t>pt_shared_table(value) | PTE_TABLE | PMD_SHARED_TABLE


cdef int pte_table_unshare(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    cdef uint64_t e = pmd[0]
    cdef uint64_t *t
    if not pmd_is_shared(e):
        return 0
    t = _mm_new_table(mm)
    if t == NULL:
        return -ENOMEM
    memcpy(t, entry_table(e), PAGE_SIZE_)
    pmd[0] = <uint64_t>t | PTE_TABLE
    mm.nr_shared_pte_tables -= 1
    return 0


cdef int _pte_table_private(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """A PTE table of this mm alone under the (non-huge) PMD entry, allocated if none."""
    if pmd[0] == 0:
        return pt_alloc_table(mm, pmd, PT_PMD_SHIFT)
    return pte_table_unshare(mm, pmd)


cdef int pt_alloc_table(pt_mm *mm, uint64_t *entry, int level_shift) noexcept nogil:
    """Fill the none entry (of the level with shift level_shift) with a new zeroed table."""
    cdef uint64_t *t = _mm_new_table(mm)
    if t == NULL:
        return -ENOMEM
    entry[0] = <uint64_t>t | PTE_TABLE
    _count_table(mm, level_shift, 1)
    return 0


cdef uint64_t *pt_pmd_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil:
    """The PMD entry covering addr; NULL if a PGD/PUD entry is none (and not allocating) or
    an allocation failed."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    if e[0] == 0 and (not alloc or pt_alloc_table(mm, e, PT_PGDIR_SHIFT) < 0):
        return NULL
    e = entry_table(e[0]) + pt_index(addr, PT_PUD_SHIFT)
    if e[0] == 0 and (not alloc or pt_alloc_table(mm, e, PT_PUD_SHIFT) < 0):
        return NULL
    return entry_table(e[0]) + pt_index(addr, PT_PMD_SHIFT)


cdef uint64_t *_pte_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil:
    """The PTE covering addr; NULL if its table is missing (and not allocating), under a
    huge PMD, or an allocation failed."""
    cdef uint64_t *pmd = pt_pmd_entry(mm, addr, alloc)
    if pmd == NULL or pmd_is_huge(pmd[0]):
        return NULL
    if pmd[0] == 0 and (not alloc or pt_alloc_table(mm, pmd, PT_PMD_SHIFT) < 0):
        return NULL
    return entry_table(pmd[0]) + pt_index(addr, PT_PAGE_SHIFT)


cdef void _zap_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """zap_huge_pmd(): unmap the whole THP; its deposited table goes with it."""
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    pmd[0] = 0
    if _has_deposit(mm.fs, head):
        mm.nr_pte_tables -= 1
    _unmap_frames(mm, head, PT_HPAGE_NR, (v & PTE_DIRTY) != 0)


cdef int pt_split_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """__split_huge_pmd_locked(): an anon THP becomes 512 PTEs of the same frames, and the
    huge zero page 512 read-only PTEs of the 4 KiB zero page, in the table deposited when
    the PMD was mapped (already counted in nr_pte_tables); a file or shmem THP is simply
    unmapped, its pages refault from the page cache."""
    cdef uint64_t v = pmd[0], head = pte_pfn(v), flags, step = 1
    cdef uint64_t *t
    cdef int64_t i
    if not _has_deposit(mm.fs, head):
        pmd[0] = 0
        _unmap_frames(mm, head, PT_HPAGE_NR, (v & PTE_DIRTY) != 0)
        return 0
    t = _mm_new_table(mm)       # the deposited table, now held in host memory
    if t == NULL:
        return -ENOMEM
    flags = v & ~(PTE_PFN_MASK | PTE_PSE)
    if pfn_is_zero(head):
        head, step = FRAME_ZERO_PFN, 0
        flags = (flags & ~(PTE_RW | PTE_DIRTY)) | PTE_SPECIAL
    for i in range(PT_HPAGE_NR):
        t[i] = ((head + i * step) << PT_PAGE_SHIFT) | flags
    pmd[0] = <uint64_t>t | PTE_TABLE
    return 0
