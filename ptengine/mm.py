"""MM: one process address space (struct mm_struct).

The VMA tree, the page tables, the mm/vma.c plumbing (split, modify, map and unmap a
range) and the placement of new mappings are the compiled AddressSpace base
(addrspace.pyx). The syscalls are classes by concern compiled on top of it, one chain
(mapping.pyx, protection.pyx, advice.pyx: extension types need a single line of bases), and
mixins (fault.py, lifecycle.py, procview.py). This module holds the rest of the mm's
state.
"""
import errno

from . import _core
from .addrspace import AddressSpace
from .advice import AdviceSyscalls
from .constants import MMAP_MIN_ADDR, PAGE_SIZE
from .args import as_int
from .errors import raise_errno
from .fault import FaultHandling
from .files import System
from .lifecycle import ProcessLifecycle
from .procview import ProcView

# MemTotal of the reference machines (no swap): what the overcommit heuristic compares
# one request with, unless the System says otherwise (System.totalram_pages).
DEFAULT_TOTALRAM_PAGES = 24684084 * 1024 // PAGE_SIZE
# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000


class MM(AdviceSyscalls, FaultHandling, ProcessLifecycle, ProcView):
    """One address space. `MM()` is shorthand for a fresh System with one process."""

    def __init__(self, system=None, *, mmap_base=None, max_map_count=None,
                 start_brk=DEFAULT_START_BRK, mmap_min_addr=MMAP_MIN_ADDR, exec_layout=False):
        if system is None:
            system = System(**({} if max_map_count is None else {"max_map_count": max_map_count}),
                            **({} if mmap_base is None else {"mmap_base": mmap_base}))
        AddressSpace.__init__(self, system.frames,
                              as_int(system.max_map_count if max_map_count is None
                                     else max_map_count))
        self.system = system
        self.frames = system.frames
        self.mmap_base = as_int(system.mmap_base if mmap_base is None else mmap_base)
        self.mmap_min_addr = as_int(mmap_min_addr)
        self.start_brk = self.brk_end = as_int(start_brk)
        self.def_flags = 0           # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
        self.totalram_pages = getattr(system, "totalram_pages", DEFAULT_TOTALRAM_PAGES)
        self.minflt = 0
        self.majflt = 0
        self.dead = False
        self.start_stack = None      # set by an exec layout: the VMA holding it is [stack]
        self.gate_vma = None         # [vsyscall] of an exec'd process (get_gate_vma())
        system.mms.append(self)
        if exec_layout:
            from .exec_layout import setup_exec_layout
            setup_exec_layout(self)

    # --- introspection basics -----------------------------------------------------------
    def vmas(self):
        return list(self.vma_tree)

    def find_vma(self, addr):
        """The VMA containing addr, or None."""
        return self.vma_tree.lookup(as_int(addr, "addr"))

    def _alive(self):
        if self.dead:
            raise_errno(errno.ESRCH)

    def vm_enough_memory(self, pages):
        """mm/util.c:__vm_enough_memory() with vm.overcommit_memory = 0 (OVERCOMMIT_GUESS):
        nothing is tracked, but one request for more than RAM + swap is ENOMEM."""
        if pages > self.totalram_pages:
            raise_errno(errno.ENOMEM)

    # --- page-table side helpers used by files and faults --------------------------------
    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

