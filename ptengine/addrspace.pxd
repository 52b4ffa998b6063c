# The compiled base of MM, for the syscall classes compiled on top of it (their .pxd files)
# and for simulators that cimport ptengine.
from libc.errno cimport ENOMEM
from ._core cimport Frames, PageTables
from .vma cimport VMA, VMATree


cdef struct mm_profile:
    # The HostProfile fields a syscall tests, copied once when the mm is made (a System's
    # profile is frozen), so no syscall reads them through three Python attributes.
    bint maybe_guard                # guard install sets VM_MAYBE_GUARD
    bint anon_vma_name              # prctl(PR_SET_VMA_ANON_NAME) allowed
    bint memory_failure             # BUS_MCEERR_AR for poison
    bint soft_dirty                 # new VMAs get VM_SOFTDIRTY; pagemap bit 55
    int thp_enabled                 # THP_NEVER, THP_MADVISE or THP_ALWAYS
    int overcommit                  # vm.overcommit_memory (0 guess or 1 always)
    long long commit_pages          # totalram_pages + total_swap_pages (OVERCOMMIT_GUESS)
    unsigned long long new_vma_flags    # VM_SOFTDIRTY or 0


cdef enum:
    THP_NEVER = 0
    THP_MADVISE = 1
    THP_ALWAYS = 2


cdef inline int pt_result(long long r) except -1:
    """A page-table walker's result (>= 0, or -ENOMEM when no table could be allocated)
    as the syscall paths take it: a Python exception for the error."""
    if r < 0:
        if r == -ENOMEM:
            raise MemoryError("ptengine: out of memory for page tables or frames")
        raise OSError(-r, "ptengine core error")
    return 0


cdef class AddressSpace:
    # Set once by __init__ (exit() empties the tree in place): code that reads them through
    # this mm, compiled or cimported, can rely on their types. The syscall paths call the
    # walkers of _core.pxd on &pt.mm directly.
    cdef readonly VMATree vma_tree
    cdef readonly PageTables pt
    cdef readonly Frames frames          # the machine's frames (the System's)
    cdef readonly object system          # the System: files, page cache, reverse map
    cdef readonly mm_profile profile     # (a dict from Python)
    cdef public long long max_map_count
    cdef public long long locked_vm      # mm->locked_vm, in pages: what VmLck reports
    cdef public long long minflt, majflt # the task's min_flt / maj_flt
    cdef public unsigned long long mmap_base, mmap_min_addr    # where placement searches
    cdef public unsigned long long def_flags  # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
    cdef public unsigned long long start_brk, brk_end          # mm->start_brk, mm->brk
    cdef public object start_stack       # mm->start_stack: None, or an address in [stack]
    cdef public object gate_vma          # [vsyscall] of an exec'd process (get_gate_vma())
    cdef public bint dead                # exit() ran (or __init__ has not)

    cdef int check_alive(self) except -1
    cdef int vm_enough_memory(self, long long pages) except -1
    cdef int free_pgd_range(self, unsigned long long addr, unsigned long long end,
                            unsigned long long floor, unsigned long long ceiling) except -1

    cpdef VMA modify_range(self, VMA vma, unsigned long long start, unsigned long long end,
                           flags=*, anon_name=*)
    cpdef VMA map_range(self, unsigned long long start, unsigned long long end,
                        unsigned long long flags, unsigned long long pgoff, file,
                        anon_name=*, anon_vma=*)
    cdef list gather_unmap(self, unsigned long long start, unsigned long long end)
    cpdef remove_vmas(self, list vmas)
    cdef unmap_range(self, unsigned long long start, unsigned long long end)
    cpdef free_pgtables(self, list vmas, unsigned long long floor, unsigned long long ceiling)
    cpdef anon_vma_prepare(self, VMA vma)
    cdef split_huge_at(self, unsigned long long addr)
    cpdef get_unmapped_area(self, unsigned long long addr, unsigned long long length,
                            pgoff, bint fixed, file, bint shared, vm_flags, bint map_32bit=*)
    cdef int check_piece(self, VMA vma, unsigned long long start,
                         unsigned long long end) except -1
    cdef VMA _split_at(self, VMA vma, unsigned long long addr)
    cdef int _check_split(self) except -1
    cdef object _arch_area(self, unsigned long long addr, unsigned long long length,
                           bint map_32bit)
    cdef bint _hint_fits(self, unsigned long long addr, unsigned long long length) except -1
