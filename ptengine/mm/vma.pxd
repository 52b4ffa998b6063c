# mm/vma.c's merge rules and operations on the VMAs of one mm (vma.pyx), for the syscall
# modules built on them and for simulators that cimport ptengine.
from .mm_struct cimport mm_struct
from .mm_types cimport VMA, u64
from .vmatree cimport VMATree

cpdef bint same_file(object a_file, object b_file)
cpdef bint anon_vma_compatible(object a, object b)
cpdef bint can_merge_after(VMA prev, u64 start, u64 flags, u64 pgoff, object file,
                           object anon_vma, object anon_name)
cpdef bint can_merge_before(VMA nxt, u64 end, u64 flags, u64 pgoff, u64 npages, object file,
                            object anon_vma, object anon_name)

cdef int check_piece(mm_struct mm, VMA vma, u64 start, u64 end) except -1
cdef VMA split_vma(mm_struct mm, VMA vma, u64 addr)
cdef int check_split(mm_struct mm) except -1
# The functions named __x trust their caller: a VMA of this mm's tree and a page-aligned
# piece of it (what a walk hands them). Their Python-visible namesakes check that first.
cdef VMA __vma_modify(mm_struct mm, VMA vma, u64 start, u64 end, u64 nflags, object nname)
cpdef VMA vma_merge_new_range(mm_struct mm, u64 start, u64 end, u64 flags, u64 pgoff, file,
                              anon_name=*, anon_vma=*)
cdef list gather_munmap_vmas(mm_struct mm, u64 start, u64 end)
cdef int vms_complete_munmap_vmas(mm_struct mm, list vmas) except -1
cdef do_vmi_munmap(mm_struct mm, u64 start, u64 end)
cdef int free_vma_pgtables(mm_struct mm, list vmas, u64 floor, u64 ceiling) except -1
cdef int free_pgd_range(mm_struct mm, u64 addr, u64 end, u64 floor, u64 ceiling) except -1
cpdef anon_vma_prepare(mm_struct mm, VMA vma)
cdef split_huge_at(mm_struct mm, u64 addr)
