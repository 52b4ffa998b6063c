# cython: language_level=3
"""x86-64 page-table entries bit by bit: arch/x86/include/asm/pgtable_types.h (PTE bits),
arch/x86/include/asm/pgtable_64.h (swap-entry layout), include/linux/swapops.h (PTE markers).

The documented encoding of ptengine's page tables (the cimport contract, with the structs
and entry points of frames.pxd, tables.pxd, walk.pxd and walkers.pxd). Layout modelled:
Linux 6.18 on x86-64 with 4-level paging (the P4D level is folded into the PGD), 47-bit
user space, 4 KiB pages, 2 MiB PMD leaves (THP). Every helper here is a pure inline
function over a raw u64: it inlines into whichever module cimports it.

Everything declared under ptengine/core is C that runs without the GIL and never raises;
the Python-facing validation lives in pagetables.pyx (its ``def`` methods check every
argument, then call these). Return conventions of the nogil entry points: ``>= 0`` is a
result, ``< 0`` is ``-errno`` (only ``-ENOMEM`` today). Callers pass validated,
page-aligned ranges inside user space. Nothing here locks, and nothing is process-global
but the two canonical shared PTE tables (read-only): a Frames holds the free list and
counts of its frames and the pool its PageTables take their tables from. So the walkers of
PageTables over *different* Frames (two Systems) may run at the same time in different
threads without the GIL; all PageTables over *one* Frames share its state, and a C caller
that releases the GIL must serialise them itself (the Python methods simply keep the GIL).
An extension that writes PTEs calls tables.pxd's pte_table_unshare() first: a PMD entry
with PMD_SHARED_TABLE names a table shared by every mm (read it like any other).
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
    #define PTENG_PAGE_SIZE       (1ULL << 12)
    #define PTENG_PMD_SIZE        (1ULL << 21)
    #define PTENG_PUD_SIZE        (1ULL << 30)
    #define PTENG_PMD_MASK        (~((1ULL << 21) - 1))
    #define PTENG_PUD_MASK        (~((1ULL << 30) - 1))
    #define PTENG_PGDIR_MASK      (~((1ULL << 39) - 1))
    #define PTENG_USER_END        (1ULL << 47)
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
    # Sizes and masks of the levels as u64 (geometry above), and the end of user space.
    const uint64_t PAGE_SIZE_ "PTENG_PAGE_SIZE"
    const uint64_t PMD_SIZE_ "PTENG_PMD_SIZE"
    const uint64_t PUD_SIZE_ "PTENG_PUD_SIZE"
    const uint64_t PMD_MASK_ "PTENG_PMD_MASK"
    const uint64_t PUD_MASK_ "PTENG_PUD_MASK"
    const uint64_t PGDIR_MASK_ "PTENG_PGDIR_MASK"
    const uint64_t USER_END "PTENG_USER_END"              # user addresses are below this

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
