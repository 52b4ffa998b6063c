# madvise, process_madvise and anonymous VMA names (madvise.pyx), for the batch executor
# and simulators that cimport ptengine.
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64

cpdef bint is_valid_guard_vma(VMA vma, bint allow_locked)
# __x: trusts its caller (see vma.pxd)
cdef VMA __madvise_vma_behavior(mm_struct mm, VMA vma, u64 start, u64 end, int advice)
cdef int __madvise_guard_install(mm_struct mm, VMA vma, u64 start, u64 end) except -1
cdef int __madvise_guard_remove(mm_struct mm, VMA vma, u64 start, u64 end) except -1
cdef bint retract_pte_table(mm_struct mm, u64 haddr) except -1
# The typed entry points: 0 or the call's result, OSError on failure.
cdef long long sys_madvise(mm_struct mm, u64 addr, u64 length, int advice) except? -1
cdef long long sys_process_madvise(mm_struct mm, object iovecs, int advice,
                                   u64 flags) except? -1
cdef long long sys_set_anon_name(mm_struct mm, u64 addr, u64 length, object name) except? -1
