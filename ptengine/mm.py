"""MM: one process address space (struct mm_struct).

The VMA tree, the page tables, the mm/vma.c plumbing (split, modify, map and unmap a
range) and the placement of new mappings are the compiled AddressSpace base
(addrspace.pyx). Fault handling (fault.pyx) and the syscalls are classes by concern
compiled on top of it, one chain (fault.pyx, mapping.pyx, protection.pyx, advice.pyx:
extension types need a single line of bases), and plain mixins (lifecycle.py, procview.py). This module holds the rest of the mm's
state.
"""
import warnings

from . import core as _core
from .addrspace import AddressSpace
from .advice import AdviceSyscalls
from .args import as_int
from .batch import execute
from .system import System
from .lifecycle import ProcessLifecycle
from .procview import ProcView

# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000


class MM(AdviceSyscalls, ProcessLifecycle, ProcView):
    """One address space. `MM()` is shorthand for a fresh System with one process."""

    def __init__(self, system=None, *, mmap_base=None, max_map_count=None,
                 start_brk=DEFAULT_START_BRK, mmap_min_addr=None, exec_layout=False):
        if system is None:
            system = System(**({} if max_map_count is None else {"max_map_count": max_map_count}),
                            **({} if mmap_base is None else {"mmap_base": mmap_base}))
        AddressSpace.__init__(self, system,
                              as_int(system.max_map_count if max_map_count is None
                                     else max_map_count))
        self.mmap_base = as_int(system.mmap_base if mmap_base is None else mmap_base)
        self.mmap_min_addr = as_int(system.profile.mmap_min_addr if mmap_min_addr is None
                                    else mmap_min_addr)
        self.start_brk = self.brk_end = as_int(start_brk)
        self.def_flags = 0           # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
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
        if self.dead:                           # exited, or __init__ failed
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

    # --- page-table side helpers used by files and faults --------------------------------
    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

