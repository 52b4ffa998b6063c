# mprotect (mprotect.pyx), for mlock.pyx (the shared walk), the batch executor and
# simulators that cimport ptengine.
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64

# One step of a VMA walk: called with the mm, the VMA and the piece [start, end) of the
# walked range it holds, and the walk's argument; returns the VMA now covering the piece.
ctypedef object (*vma_visitor)(mm_struct mm, VMA vma, u64 start, u64 end, object arg)

cdef void prot_update(u64 vm_flags, u64 *bits, u64 *mask) noexcept
cdef walk_contiguous(mm_struct mm, VMA vma, u64 start, u64 end, vma_visitor fixup, object arg)
cdef VMA __mprotect_fixup(mm_struct mm, VMA vma, u64 start, u64 end, u64 newflags)
cdef long long sys_mprotect(mm_struct mm, u64 addr, u64 length, u64 prot) except? -1
