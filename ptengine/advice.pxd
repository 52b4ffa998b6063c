# Compiles advice.pyx's syscall class as an extension type (see mapping.pxd), with the
# per-VMA dispatch and the guard-region steps typed: the hottest path of the guard-marker
# workloads.
from .protection cimport ProtectionSyscalls
from .vma cimport VMA, u64

cpdef bint is_valid_guard_vma(VMA vma, bint allow_locked)


cdef class AdviceSyscalls(ProtectionSyscalls):
    cpdef _madvise(self, start, length, advice)
    cpdef VMA _advise_vma(self, VMA vma, u64 start, u64 end, int advice)
    cpdef _guard_install(self, VMA vma, u64 start, u64 end)
    cpdef _guard_remove(self, VMA vma, u64 start, u64 end)
