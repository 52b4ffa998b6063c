# cython: auto_pickle=False
"""struct mm_struct (include/linux/mm_types.h): one address space's state.

The VMA tree, the page tables, the limits and counters, and the machine it lives on; the
syscalls are functions over it, one module per kernel file (vma.pyx for mm/vma.c,
memory.pyx for mm/memory.c, mmap.pyx, mremap.pyx, brk.pyx, mprotect.pyx, madvise.pyx,
fork.pyx). vm_enough_memory() (mm/util.c) is here because every mapping path charges.
"""
import errno

from ..core.pagetables import PageTables
from ..errors import raise_errno
from ..profile import OVERCOMMIT_GUESS

cdef int c_OVERCOMMIT_GUESS = OVERCOMMIT_GUESS
from .vmatree import VMATree

# The THP sysfs `enabled` modes (profile.THP_MODES) as mm_profile.thp_enabled holds them.
THP_MODE = {"never": THP_NEVER, "madvise": THP_MADVISE, "always": THP_ALWAYS}


# auto_pickle=False (above): an mm is not picklable (its page tables are host memory),
# and a generated __setstate__ would overwrite its fields behind its back.
cdef class mm_struct:
    """The VMAs, page tables, limits and counters of one process (fields in
    mm_struct.pxd)."""

    def __cinit__(self):
        self.dead = True            # nothing to run syscalls on until __init__ is done

    def __init__(self, system, long long max_map_count):
        if self.pt is not None:
            raise ValueError("an address space is initialised once")
        self.system = system
        self.frames = system.frames
        self.pt = PageTables(self.frames)
        self.vma_tree = VMATree()
        self.max_map_count = max_map_count
        self.locked_vm = 0
        profile = system.profile
        self.profile.maybe_guard = profile.maybe_guard
        self.profile.anon_vma_name = profile.anon_vma_name
        self.profile.memory_failure = profile.memory_failure
        self.profile.soft_dirty = profile.soft_dirty
        self.profile.thp_enabled = THP_MODE[profile.thp_enabled]
        self.profile.overcommit = profile.overcommit_memory
        self.profile.commit_pages = profile.totalram_pages + profile.total_swap_pages
        self.profile.new_vma_flags = system.new_vma_flags
        self.dead = False

    @property
    def map_count(self):
        return len(self.vma_tree)


cdef int check_alive(mm_struct mm) except -1:
    """Every syscall on an exited process is ESRCH (its mm is gone)."""
    if mm.dead:
        raise_errno(errno.ESRCH)
    return 0


cdef int vm_enough_memory(mm_struct mm, long long pages) except -1:
    """mm/util.c:__vm_enough_memory(): under OVERCOMMIT_ALWAYS anything goes; under
    OVERCOMMIT_GUESS nothing is tracked, but one request for more than RAM + swap is
    ENOMEM (System refuses the strict mode)."""
    if mm.profile.overcommit == c_OVERCOMMIT_GUESS and pages > mm.profile.commit_pages:
        raise_errno(errno.ENOMEM)
    return 0
