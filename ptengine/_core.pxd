# cython: language_level=3
"""The compiled core of ptengine: x86-64 page tables and physical frames.

This file is the contract of ``ptengine._core``. It ships in the wheel so that another
Cython project can ``cimport ptengine._core`` and drive the walkers directly (see
``tests/cimport_example``).

Layout modelled: Linux 6.18 on x86-64 with 4-level paging (the P4D level is folded into the
PGD), 47-bit user space, 4 KiB pages, 2 MiB PMD leaves (THP). References, by what they
describe: arch/x86/include/asm/pgtable_types.h (PTE bits), arch/x86/include/asm/pgtable_64.h
(swap-entry layout), include/linux/swapops.h (PTE markers), mm/memory.c, mm/mremap.c,
mm/pagewalk.c, mm/pt_reclaim.c, fs/proc/task_mmu.c.

Everything declared here is C that runs without the GIL and never raises; the Python-facing
validation lives in ``_core.pyx`` (its ``def`` methods check every argument, then call
these). Return conventions of the nogil entry points: ``>= 0`` is a result, ``< 0`` is
``-errno`` (only ``-ENOMEM`` today). Callers pass validated, page-aligned ranges inside user
space. Nothing here locks, and nothing is process-global: a Frames holds the free list and
counts of its frames and the pool its PageTables take their tables from. So the walkers of
PageTables over *different* Frames (two Systems) may run at the same time in different
threads without the GIL; all PageTables over *one* Frames share its state, and a C caller
that releases the GIL must serialise them itself (the Python methods simply keep the GIL).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

# ---------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------
cdef enum:
    PT_PAGE_SHIFT = 12          # 4 KiB base pages
    PT_PMD_SHIFT = 21           # one PMD entry (and one PTE table) spans 2 MiB
    PT_PUD_SHIFT = 30           # one PUD entry (and one PMD table) spans 1 GiB
    PT_PGDIR_SHIFT = 39         # one PGD entry (and one PUD table) spans 512 GiB
    PT_PTRS_PER_TABLE = 512     # every table is one 4 KiB page of 512 u64 entries
    PT_HPAGE_NR = 512           # base pages in a PMD-mapped THP
    PT_USER_VA_BITS = 47        # user addresses are [0, 1 << 47)

# ---------------------------------------------------------------------------------------
# A present (or PROT_NONE) page-table entry, bit by bit
# (arch/x86/include/asm/pgtable_types.h, _PAGE_BIT_*)
# ---------------------------------------------------------------------------------------
cdef enum:
    PTE_BIT_PRESENT = 0         # P: the MMU may use the entry
    PTE_BIT_RW = 1              # writes allowed (clear = read-only, e.g. COW after fork)
    PTE_BIT_USER = 2            # user-mode accesses allowed
    PTE_BIT_PWT = 3             # page write-through (cache attribute)
    PTE_BIT_PCD = 4             # page cache disable (cache attribute)
    PTE_BIT_ACCESSED = 5        # A: set by the MMU on any access ("young")
    PTE_BIT_DIRTY = 6           # D: set by the MMU on a write
    PTE_BIT_PSE = 7             # page size: in a PMD entry, a 2 MiB leaf (huge PMD)
    PTE_BIT_GLOBAL = 8          # global TLB entry when P=1; when P=0 the kernel reuses it
                                # as _PAGE_PROTNONE: a mapped PROT_NONE page
                                # (pte_present() is true for P=1 or PROTNONE=1)
    PTE_BIT_SOFTW1 = 9          # software bit 1: _PAGE_SPECIAL (no struct page; zero page)
    PTE_BIT_UFFD_WP = 10        # software bit 2: userfaultfd write-protect
    PTE_BIT_SOFT_DIRTY = 11     # software bit 3: soft-dirty tracking (/proc/pid/clear_refs)
    PTE_BIT_PFN_FIRST = 12      # bits 12..51: page frame number (physical address >> 12)
    PTE_BIT_PFN_LAST = 51
    PTE_BIT_NX = 63             # no-execute

# ---------------------------------------------------------------------------------------
# A swap-format (non-present, P=0 and PROTNONE=0) entry, bit by bit
# (arch/x86/include/asm/pgtable_64.h: __swp_entry and the _PAGE_SWP_* bits)
# ---------------------------------------------------------------------------------------
cdef enum:
    SWP_BIT_SOFT_DIRTY = 1      # _PAGE_SWP_SOFT_DIRTY (shares bit 1 with RW)
    SWP_BIT_UFFD_WP = 2         # _PAGE_SWP_UFFD_WP (shares bit 2 with USER)
    SWP_BIT_EXCLUSIVE = 3       # _PAGE_SWP_EXCLUSIVE: the swapped anon page was exclusive
    SWP_OFFSET_FIRST_BIT = 9    # bits 9..58: the swap offset, stored bitwise-inverted
                                # (L1TF mitigation: a stray P=0 entry never names real RAM)
    SWP_OFFSET_BITS = 50        # width of the offset field (9..58)
    SWP_TYPE_FIRST_BIT = 59     # bits 59..63: the swap type (0..31)
    SWP_TYPE_BITS = 5
    SWP_TYPE_PTE_MARKER = 31    # SWP_PTE_MARKER: the last of the 32 types; offset = marker

# PTE marker bits: the swap offset of a SWP_PTE_MARKER entry (include/linux/swapops.h)
cdef enum:
    PTE_MARKER_UFFD_WP = 1      # uffd-wp state of a none page (file/shmem)
    PTE_MARKER_POISONED = 2     # UFFDIO_POISON / swap-in error: access gives SIGBUS
    PTE_MARKER_GUARD = 4        # MADV_GUARD_INSTALL: access gives SIGSEGV (MAPERR)
    PTE_MARKER_MASK = 7

# The same bits as 64-bit masks, plus the composite values the walkers use.
cdef extern from *:
    """
    #ifndef PTENGINE_CORE_MASKS
    #define PTENGINE_CORE_MASKS
    #define PTENG_PTE_PRESENT     (1ULL << 0)
    #define PTENG_PTE_RW          (1ULL << 1)
    #define PTENG_PTE_USER        (1ULL << 2)
    #define PTENG_PTE_PWT         (1ULL << 3)
    #define PTENG_PTE_PCD         (1ULL << 4)
    #define PTENG_PTE_ACCESSED    (1ULL << 5)
    #define PTENG_PTE_DIRTY       (1ULL << 6)
    #define PTENG_PTE_PSE         (1ULL << 7)
    #define PTENG_PTE_GLOBAL      (1ULL << 8)
    #define PTENG_PTE_PROTNONE    (1ULL << 8)
    #define PTENG_PTE_SPECIAL     (1ULL << 9)
    #define PTENG_PTE_UFFD_WP     (1ULL << 10)
    #define PTENG_PTE_SOFT_DIRTY  (1ULL << 11)
    #define PTENG_PTE_NX          (1ULL << 63)
    #define PTENG_PTE_PFN_MASK    0x000FFFFFFFFFF000ULL
    #define PTENG_PTE_TABLE       0x67ULL
    #define PTENG_SWP_SOFT_DIRTY  (1ULL << 1)
    #define PTENG_SWP_UFFD_WP     (1ULL << 2)
    #define PTENG_SWP_EXCLUSIVE   (1ULL << 3)
    #define PTENG_SWP_FLAGS_MASK  0xEULL
    #define PTENG_SWP_OFFSET_MASK ((1ULL << 50) - 1)
    #define PTENG_GUARD_PTE       0xFFFFFFFFFFFFF600ULL
    #define PTENG_POISON_PTE      0xFFFFFFFFFFFFFA00ULL
    #define PTENG_UFFD_WP_PTE     0xFFFFFFFFFFFFFC00ULL
    #define PTENG_PMD_SHARED_TABLE (1ULL << 9)
    #endif
    """
    const uint64_t PTE_PRESENT "PTENG_PTE_PRESENT"        # bit 0
    const uint64_t PTE_RW "PTENG_PTE_RW"                  # bit 1
    const uint64_t PTE_USER "PTENG_PTE_USER"              # bit 2
    const uint64_t PTE_PWT "PTENG_PTE_PWT"                # bit 3
    const uint64_t PTE_PCD "PTENG_PTE_PCD"                # bit 4
    const uint64_t PTE_ACCESSED "PTENG_PTE_ACCESSED"      # bit 5
    const uint64_t PTE_DIRTY "PTENG_PTE_DIRTY"            # bit 6
    const uint64_t PTE_PSE "PTENG_PTE_PSE"                # bit 7
    const uint64_t PTE_GLOBAL "PTENG_PTE_GLOBAL"          # bit 8 when P=1
    const uint64_t PTE_PROTNONE "PTENG_PTE_PROTNONE"      # bit 8 when P=0
    const uint64_t PTE_SPECIAL "PTENG_PTE_SPECIAL"        # bit 9
    const uint64_t PTE_UFFD_WP "PTENG_PTE_UFFD_WP"        # bit 10
    const uint64_t PTE_SOFT_DIRTY "PTENG_PTE_SOFT_DIRTY"  # bit 11
    const uint64_t PTE_NX "PTENG_PTE_NX"                  # bit 63
    const uint64_t PTE_PFN_MASK "PTENG_PTE_PFN_MASK"      # bits 12..51
    const uint64_t PTE_TABLE "PTENG_PTE_TABLE"            # P|RW|USER|ACCESSED|DIRTY: a
                                                          # PGD/PUD/PMD entry naming a table
    const uint64_t SWP_SOFT_DIRTY "PTENG_SWP_SOFT_DIRTY"  # bit 1 of a swap-format entry
    const uint64_t SWP_UFFD_WP "PTENG_SWP_UFFD_WP"        # bit 2 of a swap-format entry
    const uint64_t SWP_EXCLUSIVE "PTENG_SWP_EXCLUSIVE"    # bit 3 of a swap-format entry
    const uint64_t SWP_FLAGS_MASK "PTENG_SWP_FLAGS_MASK"  # bits 1..3
    const uint64_t SWP_OFFSET_MASK "PTENG_SWP_OFFSET_MASK"  # 50-bit offset field width
    const uint64_t GUARD_PTE "PTENG_GUARD_PTE"            # marker(GUARD) = 0x...F600
    const uint64_t POISON_PTE "PTENG_POISON_PTE"          # marker(POISONED) = 0x...FA00
    const uint64_t UFFD_WP_PTE "PTENG_UFFD_WP_PTE"        # marker(UFFD_WP) = 0x...FC00
    # The kind of the PTE table a PMD table entry names, in a software bit of that entry
    # (x86-64 ignores bits 9-11 of a non-leaf entry: the kernel's _PAGE_SOFTW* bits):
    # clear, a private 4 KiB table of this mm; set, one of the two canonical read-only
    # tables shared by every mm of the interpreter (pt_shared_table(): 512 none entries
    # or 512 guard markers). A walker that writes a PTE table calls pte_table_unshare()
    # first; readers need nothing, a shared table is an ordinary table to read.
    const uint64_t PMD_SHARED_TABLE "PTENG_PMD_SHARED_TABLE"  # bit 9 of a PMD table entry

# ---------------------------------------------------------------------------------------
# Entry helpers (pure functions over a raw u64)
# ---------------------------------------------------------------------------------------
cdef inline bint pte_none(uint64_t e) noexcept nogil:
    return e == 0

cdef inline bint pte_present(uint64_t e) noexcept nogil:
    """Mapped page, accessible or PROT_NONE (the kernel's pte_present())."""
    return (e & (PTE_PRESENT | PTE_PROTNONE)) != 0

cdef inline bint pte_is_swap(uint64_t e) noexcept nogil:
    """Swap-format entry: not none and not present (swap, migration, marker)."""
    return e != 0 and (e & (PTE_PRESENT | PTE_PROTNONE)) == 0

cdef inline uint64_t pte_pfn(uint64_t e) noexcept nogil:
    return (e & PTE_PFN_MASK) >> PT_PAGE_SHIFT

cdef inline uint64_t make_swp_pte(uint64_t swp_type, uint64_t offset) noexcept nogil:
    """Encode (type, offset) as x86-64 does: offset inverted in bits 9..58, type on top."""
    return (((~offset) & SWP_OFFSET_MASK) << SWP_OFFSET_FIRST_BIT) | \
        ((swp_type & 31) << SWP_TYPE_FIRST_BIT)

cdef inline uint64_t swp_type(uint64_t e) noexcept nogil:
    return e >> SWP_TYPE_FIRST_BIT

cdef inline uint64_t swp_offset(uint64_t e) noexcept nogil:
    return ((~e) >> SWP_OFFSET_FIRST_BIT) & SWP_OFFSET_MASK

cdef inline uint64_t make_marker_pte(uint64_t bits) noexcept nogil:
    return make_swp_pte(SWP_TYPE_PTE_MARKER, bits)

cdef inline uint64_t pte_marker_bits(uint64_t e) noexcept nogil:
    """The marker bitmask of a PTE marker, 0 for anything else."""
    if pte_is_swap(e) and swp_type(e) == SWP_TYPE_PTE_MARKER:
        return swp_offset(e)
    return 0

cdef inline bint pte_is_guard(uint64_t e) noexcept nogil:
    """A marker carrying the GUARD bit (soft-dirty and other swap flag bits ignored)."""
    return e == GUARD_PTE or (pte_marker_bits(e) & PTE_MARKER_GUARD) != 0

cdef inline bint pmd_is_huge(uint64_t e) noexcept nogil:
    """A PMD leaf (THP): PSE set, P or PROTNONE set."""
    return (e & PTE_PSE) != 0 and (e & (PTE_PRESENT | PTE_PROTNONE)) != 0

cdef inline bint pmd_is_table(uint64_t e) noexcept nogil:
    return (e & PTE_PRESENT) != 0 and (e & PTE_PSE) == 0

cdef inline bint pmd_is_shared(uint64_t e) noexcept nogil:
    """A PMD entry naming one of the canonical shared PTE tables."""
    return pmd_is_table(e) and (e & PMD_SHARED_TABLE) != 0

cdef inline uint64_t *entry_table(uint64_t e) noexcept nogil:
    """The child table a PGD/PUD/PMD table entry points to (host pointer in bits 12..51)."""
    return <uint64_t *>(e & PTE_PFN_MASK)

cdef inline uint64_t pt_index(uint64_t addr, int shift) noexcept nogil:
    return (addr >> shift) & (PT_PTRS_PER_TABLE - 1)

cdef inline uint64_t pt_addr_end(uint64_t addr, uint64_t end, int shift) noexcept nogil:
    """The kernel's p?d_addr_end(): the next level-boundary after addr, clipped to end."""
    cdef uint64_t size = (<uint64_t>1) << shift
    cdef uint64_t boundary = (addr + size) & ~(size - 1)
    return boundary if boundary - 1 < end - 1 else end

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
                                # skips it, readahead clears it): advice.pyx
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
    char *chunk_end             # chunk: its pages stay untouched (not resident) until used
    void **chunks               # every chunk mapped (nr_chunks of cap_chunks slots)
    int64_t nr_chunks
    int64_t cap_chunks
    int64_t high                # the watermark: pfns from here to capacity were never
                                # used (free, on no list, their entries not initialised:
                                # nothing may read them)

# nogil frame primitives (used by the walkers; callers have validated the pfn)
cdef int64_t fs_alloc(frame_store *fs, int kind) noexcept nogil     # pfn, or -ENOMEM
cdef int64_t fs_alloc_huge(frame_store *fs, int kind) noexcept nogil  # head pfn, or -ENOMEM
cdef void fs_put(frame_store *fs, int64_t pfn) noexcept nogil       # drop one reference
cdef void fs_map(frame_store *fs, int64_t pfn) noexcept nogil       # +1 ref, +1 mapcount
cdef void fs_unmap(frame_store *fs, int64_t pfn) noexcept nogil     # -1 mapcount, -1 ref

cdef inline bint pfn_is_zero(uint64_t pfn) noexcept nogil:
    """The zero page or a frame of the huge zero page: no refcount, mapcount or RSS."""
    return pfn == FRAME_ZERO_PFN or (pfn & ~(<uint64_t>PT_HPAGE_NR - 1)) == FRAME_HUGE_ZERO_PFN

cdef class Frames:
    cdef frame_store fs
    cdef int64_t _pfn(self, object pfn, bint allow_zero) except -1

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

# Flags of pt_zap()
cdef enum:
    ZAP_DROP_MARKERS = 1        # unmap/exit (ZAP_FLAG_DROP_MARKER): drop every marker
    ZAP_KEEP_UFFD_WP = 2        # file/shmem VMA: an ordinary zap keeps uffd-wp markers and
                                # leaves one where a uffd-wp PTE is zapped
    ZAP_RECLAIM_PT = 4          # PT_RECLAIM (madvise DONTNEED): free PTE tables that end
                                # up all none when their whole 2 MiB span was zapped
    ZAP_KEEP_COWS = 8           # even_cows == false (truncation): keep anon pages, swap
                                # entries and poison markers

# Flags of pt_copy_range()
cdef enum:
    COPY_COW = 1                # private writable mapping: write-protect parent and child
    COPY_UFFD_WP = 2            # child VMA is uffd-wp: keep uffd-wp markers and bits
    COPY_SHARED = 4             # VM_SHARED: child PTEs made clean

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

# Hot walkers; all take a validated, page-aligned [start, end) inside user space.
cdef int pt_install_guards(pt_mm *mm, uint64_t start, uint64_t end,
                           uint64_t *stop) noexcept nogil
cdef int64_t pt_remove_guards(pt_mm *mm, uint64_t start, uint64_t end) noexcept nogil
cdef int64_t pt_zap(pt_mm *mm, uint64_t start, uint64_t end, int flags) noexcept nogil
cdef int64_t pt_reclaim(pt_mm *mm, uint64_t start, uint64_t end, bint pageout,
                        bint keep_uffd) noexcept nogil
cdef int64_t pt_copy_range(pt_mm *src, pt_mm *dst, uint64_t start, uint64_t end,
                           int flags) noexcept nogil
cdef int64_t pt_move_range(pt_mm *mm, uint64_t old_start, uint64_t new_start,
                           uint64_t length) noexcept nogil
cdef int pt_fault_anon(pt_mm *mm, uint64_t start, uint64_t end, bint write,
                       uint64_t pte_flags, bint touch, uint64_t *stop) noexcept nogil
cdef int64_t pt_change_prot(pt_mm *mm, uint64_t start, uint64_t end, uint64_t newflags,
                            uint64_t mask) noexcept nogil
cdef int pt_pagemap(pt_mm *mm, uint64_t start, uint64_t end, uint64_t *out,
                    Py_ssize_t stride, bint vma_softdirty) noexcept nogil
cdef int pt_free_pgtables(pt_mm *mm, uint64_t addr, uint64_t end, uint64_t floor,
                          uint64_t ceiling, bint dry_run, uint64_t *bad) noexcept nogil

cdef class PageTables:
    cdef pt_mm mm
    cdef readonly Frames frames
    cdef int _tally(self, int32_t *maps) except -1
    cdef uint64_t *_none_pte(self, uint64_t a) except NULL
    cdef int _partial_huge(self, uint64_t s, uint64_t e) except -1
    cdef int _require_none(self, uint64_t s, uint64_t e) except -1
