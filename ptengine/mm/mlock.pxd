# The mlock family (mlock.pyx), for the batch executor.
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64

cdef VMA mlock_fixup(mm_struct mm, VMA vma, u64 start, u64 end, u64 newflags)
cdef long long sys_mlock(mm_struct mm, u64 addr, u64 length, u64 flags) except? -1
cdef long long sys_munlock(mm_struct mm, u64 addr, u64 length) except? -1
cdef long long sys_mlockall(mm_struct mm, u64 flags) except? -1
cdef long long sys_munlockall(mm_struct mm) except? -1
