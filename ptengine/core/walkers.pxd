# cython: language_level=3
"""The walkers of the syscalls: mm/madvise.c (guard_install/remove_pte_entry,
madvise_cold_or_pageout_pte_range), mm/memory.c (zap_pte_range, free_pgtables,
copy_page_range, do_anonymous_page), mm/mremap.c (move_page_tables), mm/mprotect.c
(change_pte_range), mm/pt_reclaim.c.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

from ptengine.core.tables cimport pt_mm

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
cdef int pt_free_pgtables(pt_mm *mm, uint64_t addr, uint64_t end, uint64_t floor,
                          uint64_t ceiling, bint dry_run, uint64_t *bad) noexcept nogil
