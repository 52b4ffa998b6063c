# Compiles mapping.py's syscall class as an extension type: one link of the chain
# AddressSpace <- MappingSyscalls <- ProtectionSyscalls <- AdviceSyscalls that MM ends.
from .addrspace cimport AddressSpace


cdef class MappingSyscalls(AddressSpace):
    pass
