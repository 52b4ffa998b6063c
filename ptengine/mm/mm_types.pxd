# struct vm_area_struct and struct anon_vma as the mm functions (and simulators that
# cimport ptengine) see them.

ctypedef unsigned long long u64

cdef class AnonVma:
    cdef public bint forked


cdef class VMA:
    # start and end are the tree's keys: they change only through VMATree (set_start,
    # set_end) or before the VMA is inserted, so the tree's order can never be broken.
    cdef readonly unsigned long long start, end
    cdef public unsigned long long flags, pgoff
    cdef public object file, anon_vma, anon_name
    cpdef VMA copy(self, object start=*, object end=*)
    cdef VMA piece(self, u64 lo, u64 hi)


cdef VMA new_vma(u64 start, u64 end, u64 flags, u64 pgoff, object file, object anon_vma,
                 object anon_name)


# cpdef functions cannot declare `VMA vma not None`: theirs check with these before any
# use, so a stranger is a TypeError (or a bad range a ValueError), never a cast.
cdef inline int vma_required(VMA vma) except -1:
    if vma is None:
        raise TypeError("expected a VMA, got None")
    return 0

cdef int vma_piece(VMA vma, u64 start, u64 end) except -1


cpdef unsigned long long vm_start_gap(VMA vma)

cdef u64 start_gap(VMA vma) noexcept      # vm_start_gap() without the argument check
