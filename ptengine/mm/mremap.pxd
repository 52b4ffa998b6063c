# mremap (mremap.pyx), for the batch executor.
from .mm_struct cimport mm_struct
from .mm_types cimport u64

cdef long long sys_mremap(mm_struct mm, u64 old, u64 old_size, u64 new_size, u64 flags,
                          u64 new_addr) except? -1
