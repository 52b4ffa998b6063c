# cython: language_level=3
"""entry.pxd's encoding for Python (include/linux/swapops.h, arch/x86/include/asm/pgtable_types.h).

The Python-visible copies of the encoding (and of the frame kinds and walker flags), and
the encoders tests use: make_swap_pte, decode_swap_pte, make_marker.
"""
from libc.stdint cimport uint64_t

from ptengine.core.args cimport _u64
from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.walkers cimport *


# lookup() kinds
ENTRY_NONE = "none"
ENTRY_PRESENT = "present"
ENTRY_PROTNONE = "protnone"
ENTRY_MARKER = "marker"
ENTRY_SWAP = "swap"
ENTRY_HUGE = "huge"

globals().update({
    # entry bits
    "PTE_PRESENT": PTE_PRESENT, "PTE_RW": PTE_RW, "PTE_USER": PTE_USER,
    "PTE_PWT": PTE_PWT, "PTE_PCD": PTE_PCD, "PTE_ACCESSED": PTE_ACCESSED,
    "PTE_DIRTY": PTE_DIRTY, "PTE_PSE": PTE_PSE, "PTE_GLOBAL": PTE_GLOBAL,
    "PTE_PROTNONE": PTE_PROTNONE, "PTE_SPECIAL": PTE_SPECIAL, "PTE_UFFD_WP": PTE_UFFD_WP,
    "PTE_SOFT_DIRTY": PTE_SOFT_DIRTY, "PTE_NX": PTE_NX, "PTE_PFN_MASK": PTE_PFN_MASK,
    "PTE_TABLE": PTE_TABLE, "PMD_SHARED_TABLE": PMD_SHARED_TABLE,
    "SWP_SOFT_DIRTY": SWP_SOFT_DIRTY, "SWP_UFFD_WP": SWP_UFFD_WP,
    "SWP_EXCLUSIVE": SWP_EXCLUSIVE, "SWP_TYPE_PTE_MARKER": SWP_TYPE_PTE_MARKER,
    "PTE_MARKER_UFFD_WP": PTE_MARKER_UFFD_WP, "PTE_MARKER_POISONED": PTE_MARKER_POISONED,
    "PTE_MARKER_GUARD": PTE_MARKER_GUARD, "PTE_MARKER_MASK": PTE_MARKER_MASK,
    "GUARD_PTE": GUARD_PTE, "POISON_PTE": POISON_PTE, "UFFD_WP_PTE": UFFD_WP_PTE,
    # frames
    "FRAME_ANON": FRAME_ANON, "FRAME_FILE": FRAME_FILE, "FRAME_SHMEM": FRAME_SHMEM,
    "FRAME_ZERO": FRAME_ZERO, "FRAME_DIRTY": FRAME_DIRTY, "FRAME_LAZYFREE": FRAME_LAZYFREE,
    "FRAME_RECLAIM": FRAME_RECLAIM,
    # walker flags
    "ZAP_DROP_MARKERS": ZAP_DROP_MARKERS, "ZAP_KEEP_UFFD_WP": ZAP_KEEP_UFFD_WP,
    "ZAP_RECLAIM_PT": ZAP_RECLAIM_PT, "ZAP_KEEP_COWS": ZAP_KEEP_COWS,
    "COPY_COW": COPY_COW, "COPY_UFFD_WP": COPY_UFFD_WP, "COPY_SHARED": COPY_SHARED,
    "HPAGE_NR": PT_HPAGE_NR, "USER_END": USER_END,
})


def make_swap_pte(swp_type_, offset):
    """The raw swap-format entry for (type, offset): type in 0..31, offset < 2**50."""
    t = _u64(swp_type_, "type", 31)
    o = _u64(offset, "offset", SWP_OFFSET_MASK)
    if make_swp_pte(t, o) == 0:
        raise ValueError("type 0 with an all-ones offset encodes as a none entry")
    return make_swp_pte(t, o)


def decode_swap_pte(raw):
    """(type, offset, flag bits 1..3) of a swap-format entry."""
    cdef uint64_t e = _u64(raw, "raw", 0xFFFFFFFFFFFFFFFF)
    if not pte_is_swap(e):
        raise ValueError(f"{e:#x} is not a swap-format entry")
    return swp_type(e), swp_offset(e), e & SWP_FLAGS_MASK


def make_marker(bits):
    """The raw PTE marker carrying `bits` (one or more PTE_MARKER_*)."""
    cdef uint64_t m = _u64(bits, "bits", PTE_MARKER_MASK)
    if m == 0:
        raise ValueError("a marker needs at least one bit")
    return make_marker_pte(m)
