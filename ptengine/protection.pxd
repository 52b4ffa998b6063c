# Compiles protection.py's syscall class as an extension type (see mapping.pxd).
from .mapping cimport MappingSyscalls


cdef class ProtectionSyscalls(MappingSyscalls):
    pass
