# The compiled base of MM, for the syscall classes compiled on top of it (their .pxd files)
# and for simulators that cimport ptengine.
from .vma cimport VMA, VMATree


cdef class AddressSpace:
    cdef public VMATree vma_tree
    cdef public object pt
    cdef public long long max_map_count
    cdef public long long locked_vm      # mm->locked_vm, in pages: what VmLck reports
    cdef public unsigned long long mmap_base, mmap_min_addr    # where placement searches

    cdef VMA _split_at(self, VMA vma, unsigned long long addr)
    cdef int _check_split(self) except -1
    cdef object _arch_area(self, unsigned long long addr, unsigned long long length,
                           bint map_32bit)
    cdef bint _hint_fits(self, unsigned long long addr, unsigned long long length)
