# brk (brk.pyx), for the batch executor.
from .mm_struct cimport mm_struct
from .mm_types cimport u64

cdef long long sys_brk(mm_struct mm, u64 addr) except? -1
