# Compiles mapping.pyx's syscall class as an extension type: one link of the chain
# AddressSpace <- MappingSyscalls <- ProtectionSyscalls <- AdviceSyscalls that MM ends.
from .fault cimport FaultHandling
from .vma cimport VMA, u64

cpdef u64 calc_vm_prot_bits(u64 prot)
cpdef u64 calc_vm_flag_bits(u64 flags)
cpdef bint accountable_mapping(u64 vm_flags)


cdef class MappingSyscalls(FaultHandling):
    cpdef VMA _mmap_region(self, u64 start, u64 length, u64 vm_flags, u64 pgoff, file)
    cdef do_munmap(self, u64 start, u64 size)
    # The typed entry points (see advice.pxd)
    cdef long long sys_mmap(self, u64 addr, u64 length, u64 prot, u64 flags, object file,
                            u64 offset) except? -1
    cdef long long sys_munmap(self, u64 addr, u64 length) except? -1
    cdef long long sys_mremap(self, u64 old, u64 old_size, u64 new_size, u64 flags,
                              u64 new_addr) except? -1
    cdef long long sys_brk(self, u64 addr) except? -1
