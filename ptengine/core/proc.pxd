# cython: language_level=3
"""What /proc reads from page tables: fs/proc/task_mmu.c (pagemap_pmd_range,
smaps_pte_range), and the entry census and dump of the Python layer's count() and dump().
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

from ptengine.core.tables cimport pt_mm
from ptengine.core.walk cimport pt_walk

cdef struct smaps_acc:
    int64_t rss
    int64_t pss
    int64_t pss_anon
    int64_t pss_file
    int64_t pss_shmem
    int64_t pss_dirty
    int64_t shared_clean
    int64_t shared_dirty
    int64_t private_clean
    int64_t private_dirty
    int64_t referenced
    int64_t anonymous
    int64_t lazyfree
    int64_t anon_huge
    int64_t shmem_huge
    int64_t file_huge
    int64_t swap

cdef struct entry_counts:
    int64_t none
    int64_t present
    int64_t protnone
    int64_t zero_page
    int64_t guard
    int64_t poison
    int64_t uffd_wp
    int64_t swap
    int64_t huge_pmd
    int64_t pte_tables

cdef struct entry_list:
    uint64_t *items         # pairs (address, raw)
    Py_ssize_t n
    Py_ssize_t cap

cdef int pt_pagemap(pt_mm *mm, uint64_t start, uint64_t end, uint64_t *out,
                    Py_ssize_t stride, bint vma_softdirty) noexcept nogil

# One walk of [start, end) accumulating into the struct (0 or -ENOMEM): smaps_stats(),
# count() and dump() of PageTables (dump's list is malloc()ed; the caller frees items).
cdef int pt_smaps(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                  smaps_acc *a) noexcept nogil
cdef int pt_count(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                  entry_counts *c) noexcept nogil
cdef int pt_dump(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                 entry_list *l) noexcept nogil
