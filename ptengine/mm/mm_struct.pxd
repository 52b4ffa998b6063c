# One address space, as include/linux/mm_types.h:struct mm_struct holds it: the state every
# syscall function of ptengine/mm/ works on (they take it as their first argument), and
# what simulators that cimport ptengine read.
from libc.errno cimport ENOMEM
from ..core.pagetables cimport Frames, PageTables
from .vmatree cimport VMATree


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


cdef class mm_struct:
    # Set once by __init__ (exit() empties the tree in place): the functions over an mm
    # rely on their types, and call the walkers of core/ on &pt.mm directly.
    cdef readonly VMATree vma_tree       # mm->mm_mt
    cdef readonly PageTables pt          # mm->pgd, pgtables_bytes, rss_stat
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


cdef int check_alive(mm_struct mm) except -1
cdef int vm_enough_memory(mm_struct mm, long long pages) except -1


cdef inline int pt_result(long long r) except -1:
    """A page-table walker's result (>= 0, or -ENOMEM when no table could be allocated)
    as the syscall functions take it: a Python exception for the error."""
    if r < 0:
        if r == -ENOMEM:
            raise MemoryError("ptengine: out of memory for page tables or frames")
        raise OSError(-r, "ptengine core error")
    return 0
