# mseal (mseal.pyx), for the batch executor.
from .mm_struct cimport mm_struct
from .mm_types cimport u64

cdef long long sys_mseal(mm_struct mm, u64 addr, u64 length, u64 flags) except? -1
