# Compiles advice.pyx's syscall class as an extension type (see mapping.pxd), with the
# per-VMA dispatch and the guard-region steps typed: the hottest path of the guard-marker
# workloads.
from .protection cimport ProtectionSyscalls
from .vma cimport VMA, u64

cpdef bint is_valid_guard_vma(VMA vma, bint allow_locked)


cdef class AdviceSyscalls(ProtectionSyscalls):
    # The typed entry points (the public methods convert their arguments and call these;
    # the batch executor calls them directly): 0 or the call's result, OSError on failure.
    cdef long long sys_madvise(self, u64 addr, u64 length, int advice) except? -1
    cdef long long sys_process_madvise(self, object iovecs, int advice, u64 flags) except? -1
    cpdef VMA _advise_vma(self, VMA vma, u64 start, u64 end, int advice)
    cpdef _guard_install(self, VMA vma, u64 start, u64 end)
    cpdef _guard_remove(self, VMA vma, u64 start, u64 end)
    cdef bint retract_pte_table(self, u64 haddr) except -1
