# Compiles protection.pyx's syscall class as an extension type (see mapping.pxd).
from .mapping cimport MappingSyscalls
from .vma cimport VMA, u64

# One step of a VMA walk: called with the mm, the VMA and the piece [start, end) of the
# walked range it holds, and the walk's argument; returns the VMA now covering the piece.
ctypedef object (*vma_visitor)(object mm, VMA vma, u64 start, u64 end, object arg)

cdef void prot_update(u64 vm_flags, u64 *bits, u64 *mask) noexcept


cdef class ProtectionSyscalls(MappingSyscalls):
    cdef walk_vmas(self, u64 start, u64 end, vma_visitor visit, object arg)
    cdef walk_contiguous(self, VMA vma, u64 start, u64 end, vma_visitor fixup, object arg)
    cpdef VMA _mprotect_fixup(self, VMA vma, u64 start, u64 end, u64 newflags)
    cdef VMA mlock_fixup(self, VMA vma, u64 start, u64 end, u64 newflags)
    # The typed entry points (see advice.pxd)
    cdef long long sys_mprotect(self, u64 addr, u64 length, u64 prot) except? -1
    cdef long long sys_mlock(self, u64 addr, u64 length, u64 flags) except? -1
    cdef long long sys_munlock(self, u64 addr, u64 length) except? -1
    cdef long long sys_mlockall(self, u64 flags) except? -1
    cdef long long sys_munlockall(self) except? -1
    cdef long long sys_mseal(self, u64 addr, u64 length, u64 flags) except? -1
    cdef long long sys_set_anon_name(self, u64 addr, u64 length, object name) except? -1
