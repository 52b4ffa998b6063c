# Compiles advice.py's syscall class as an extension type (see mapping.pxd), with the
# per-VMA dispatch typed: it is the hottest path of the guard-marker workloads.
from .protection cimport ProtectionSyscalls
from .vma cimport VMA

cpdef bint is_valid_guard_vma(VMA vma, bint allow_locked)


cdef class AdviceSyscalls(ProtectionSyscalls):
    cpdef _madvise(self, start, length, advice)
    cpdef _advise_vma(self, VMA vma, start, end, advice)
