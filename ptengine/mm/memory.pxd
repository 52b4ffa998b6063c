# Fault handling and populate (memory.pyx: mm/memory.c, arch/x86/mm/fault.c, mm/gup.c), for
# the syscall modules that fault pages in (mmap, mremap, brk, mlock, madvise).
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64

cpdef u64 pte_flags_for(u64 vm_flags, bint write)
cpdef bint thp_vma(VMA vma, int thp_enabled)
cpdef bint access_error(VMA vma, bint write)

cdef int touch_range(mm_struct mm, u64 addr, u64 size, bint write, u64 *at) except -1
cdef int fault_tables(mm_struct mm, u64 page, bint pte_table) except -1
cdef int mm_populate(mm_struct mm, u64 start, u64 end, bint ignore_errors) except -1
cdef int madvise_populate(mm_struct mm, u64 start, u64 end, bint write) except -1
# The typed entry point of touch(): 0 or the signal number of the first access that faults.
cdef long long sys_touch(mm_struct mm, u64 addr, u64 length, bint write) except? -1
