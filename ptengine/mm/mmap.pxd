# mmap, munmap and placement (mmap.pyx), for mremap, brk, the batch executor and
# simulators that cimport ptengine.
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64

cpdef u64 calc_vm_prot_bits(u64 prot)
cpdef u64 calc_vm_flag_bits(u64 flags)
cpdef bint accountable_mapping(u64 vm_flags)

cpdef VMA mmap_region(mm_struct mm, u64 start, u64 length, u64 vm_flags, u64 pgoff, file)
cdef do_munmap(mm_struct mm, u64 start, u64 size)
cpdef u64 get_unmapped_area(mm_struct mm, u64 addr, u64 length, u64 pgoff, bint fixed, file,
                            bint shared, u64 vm_flags, bint map_32bit=*) except? 0
# The typed entry points: the result, or OSError.
cdef long long sys_mmap(mm_struct mm, u64 addr, u64 length, u64 prot, u64 flags, object file,
                        u64 offset) except? -1
cdef long long sys_munmap(mm_struct mm, u64 addr, u64 length) except? -1
