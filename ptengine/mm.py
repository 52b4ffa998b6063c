"""MM: one process address space (struct mm_struct).

The VMA tree, the page tables, the mm/vma.c plumbing (split, modify, map and unmap a
range) and the placement of new mappings are the compiled AddressSpace base
(addrspace.pyx). The syscalls are classes by concern compiled on top of it, one chain
(mapping.pyx, protection.pyx, advice.pyx: extension types need a single line of bases), and
mixins (fault.py, lifecycle.py, procview.py). This module holds the rest of the mm's
state.
"""
import errno
import warnings

from . import _core
from .addrspace import AddressSpace
from .advice import AdviceSyscalls
from .args import as_int
from .batch import execute
from .errors import raise_errno
from .fault import FaultHandling
from .system import System
from .lifecycle import ProcessLifecycle
from .procview import ProcView
from .profile import OVERCOMMIT_GUESS

# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000


class MM(AdviceSyscalls, FaultHandling, ProcessLifecycle, ProcView):
    """One address space. `MM()` is shorthand for a fresh System with one process."""

    def __init__(self, system=None, *, mmap_base=None, max_map_count=None,
                 start_brk=DEFAULT_START_BRK, mmap_min_addr=None, exec_layout=False):
        if system is None:
            system = System(**({} if max_map_count is None else {"max_map_count": max_map_count}),
                            **({} if mmap_base is None else {"mmap_base": mmap_base}))
        AddressSpace.__init__(self, system.frames,
                              as_int(system.max_map_count if max_map_count is None
                                     else max_map_count))
        self.system = system
        self.frames = system.frames
        self.mmap_base = as_int(system.mmap_base if mmap_base is None else mmap_base)
        self.mmap_min_addr = as_int(system.profile.mmap_min_addr if mmap_min_addr is None
                                    else mmap_min_addr)
        self.start_brk = self.brk_end = as_int(start_brk)
        self.def_flags = 0           # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
        self.minflt = 0
        self.majflt = 0
        self.dead = False
        self.start_stack = None      # set by an exec layout: the VMA holding it is [stack]
        self.gate_vma = None         # [vsyscall] of an exec'd process (get_gate_vma())
        self._slot = system._attach(self)
        if exec_layout:
            from .exec.layout import setup_exec_layout
            setup_exec_layout(self)

    # --- lifetime: a process lives until exit(), as subprocess.Popen's until wait() -------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.exit()

    def __del__(self, _warn=warnings.warn):
        # The System holds its processes weakly: dropping the last reference to one that
        # never exited frees its address space here, which the kernel would have kept
        # until exit(). Say so, as Popen does for a child still running, unless it is the
        # last live process of its System (the whole machine goes; nothing outlives it).
        if getattr(self, "dead", True):         # exited, or __init__ failed
            return
        if any(mm is not self for mm in self.system.processes):
            _warn(f"process {self!r} dropped without exit(); its address space is freed",
                  ResourceWarning, source=self)

    def batch(self, calls, *, files=None, names=None, stop=None, counter=None):
        """Run many calls in one C loop (API.md "Batched calls"): -> (results, ns)."""
        return execute(self, calls, files, names, stop, counter)

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
        """mm/util.c:__vm_enough_memory(): under OVERCOMMIT_ALWAYS anything goes; under
        OVERCOMMIT_GUESS nothing is tracked, but one request for more than RAM + swap is
        ENOMEM (System refuses the strict mode)."""
        profile = self.system.profile
        if profile.overcommit_memory == OVERCOMMIT_GUESS and \
                pages > profile.totalram_pages + profile.total_swap_pages:
            raise_errno(errno.ENOMEM)

    # --- page-table side helpers used by files and faults --------------------------------
    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

