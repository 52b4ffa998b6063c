# Compiles mapping.pyx's syscall class as an extension type: one link of the chain
# AddressSpace <- MappingSyscalls <- ProtectionSyscalls <- AdviceSyscalls that MM ends.
from .addrspace cimport AddressSpace
from .vma cimport VMA, u64

cpdef u64 calc_vm_prot_bits(u64 prot)
cpdef u64 calc_vm_flag_bits(u64 flags)
cpdef bint accountable_mapping(u64 vm_flags)


cdef class MappingSyscalls(AddressSpace):
    cpdef VMA _mmap_region(self, u64 start, u64 length, u64 vm_flags, u64 pgoff, file)
    cpdef do_munmap(self, u64 start, u64 size)
