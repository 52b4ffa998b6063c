# The compiled base of MM, for the syscall classes compiled on top of it (their .pxd files)
# and for simulators that cimport ptengine.
from .vma cimport VMA, VMATree


cdef class AddressSpace:
    # Set once by __init__ (exit() empties the tree in place): code that reads them through
    # this mm, compiled or cimported, can rely on their types.
    cdef readonly VMATree vma_tree
    cdef readonly object pt
    cdef public long long max_map_count
    cdef public long long locked_vm      # mm->locked_vm, in pages: what VmLck reports
    cdef public unsigned long long mmap_base, mmap_min_addr    # where placement searches
    cdef public unsigned long long def_flags  # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)

    cpdef VMA modify_range(self, VMA vma, unsigned long long start, unsigned long long end,
                           flags=*, anon_name=*)
    cpdef VMA map_range(self, unsigned long long start, unsigned long long end,
                        unsigned long long flags, unsigned long long pgoff, file,
                        anon_name=*, anon_vma=*)
    cpdef list gather_unmap(self, unsigned long long start, unsigned long long end)
    cpdef remove_vmas(self, list vmas)
    cpdef unmap_range(self, unsigned long long start, unsigned long long end)
    cpdef free_pgtables(self, list vmas, unsigned long long floor, unsigned long long ceiling)
    cpdef anon_vma_prepare(self, VMA vma)
    cpdef split_huge_at(self, unsigned long long addr)
    cpdef get_unmapped_area(self, unsigned long long addr, unsigned long long length,
                            pgoff, bint fixed, file, bint shared, vm_flags, bint map_32bit=*)
    cdef int check_piece(self, VMA vma, unsigned long long start,
                         unsigned long long end) except -1
    cdef VMA _split_at(self, VMA vma, unsigned long long addr)
    cdef int _check_split(self) except -1
    cdef object _arch_area(self, unsigned long long addr, unsigned long long length,
                           bint map_32bit)
    cdef bint _hint_fits(self, unsigned long long addr, unsigned long long length) except -1
