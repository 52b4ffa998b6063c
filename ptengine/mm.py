"""MM: one process address space (struct mm_struct).

The VMA tree, the page tables and the mm/vma.c plumbing (split, modify, map and unmap a
range) are the compiled AddressSpace base (addrspace.pyx); the syscalls live in mixins by
concern (mapping.py, protection.py, advice.py, fault.py, lifecycle.py, procview.py). This
module holds the rest of the mm's state and the placement of new mappings, the
counterpart of arch_get_unmapped_area_topdown() and its helpers in mm/mmap.c.
"""
import errno

from . import _core
from .addrspace import AddressSpace
from .advice import AdviceSyscalls
from .constants import (MMAP_MIN_ADDR, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, TASK_SIZE,
                        TASK_UNMAPPED_BASE)
from .args import as_int
from .errors import raise_errno
from .fault import FaultHandling
from .files import System
from .lifecycle import ProcessLifecycle
from .mapping import MappingSyscalls
from .procview import ProcView
from .protection import ProtectionSyscalls
from .vma import vm_start_gap

# MemTotal of the reference machines (no swap): what the overcommit heuristic compares
# one request with, unless the System says otherwise (System.totalram_pages).
DEFAULT_TOTALRAM_PAGES = 24684084 * 1024 // PAGE_SIZE
# find_start_end(): the window of MAP_32BIT mappings on x86-64 (not randomised).
MAP_32BIT_BASE, MAP_32BIT_END = 0x40000000, 0x80000000
# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000


class MM(AddressSpace, MappingSyscalls, ProtectionSyscalls, AdviceSyscalls, FaultHandling,
         ProcessLifecycle, ProcView):
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

    # --- placement (arch/x86/kernel/sys_x86_64.c, mm/mmap.c, mm/huge_memory.c) -----------
    def get_unmapped_area(self, addr, length, pgoff, fixed, file, shared, vm_flags,
                          map_32bit=False):
        """__get_unmapped_area(): where a new mapping of `length` goes. ENOMEM if nowhere.
        Anonymous memory is placed as if its pgoff were 0, whatever the caller passed."""
        if length > TASK_SIZE:
            raise_errno(errno.ENOMEM)
        if file is None:
            pgoff = 0
        if fixed:
            result = addr
        elif self._thp_aligns(addr, file, shared, length, pgoff):
            result = self._thp_aligned_area(addr, length, pgoff, map_32bit)
        else:
            result = self._arch_area(addr, length, map_32bit)
        if result is None or result > TASK_SIZE - length:
            raise_errno(errno.ENOMEM)
        if result & ~PAGE_MASK:
            raise_errno(errno.EINVAL)
        return result

    def _arch_area(self, addr, length, map_32bit):
        """arch_get_unmapped_area_topdown(): MAP_32BIT goes bottom-up in [1 GiB, 2 GiB);
        else a hint is used as is if the range (and a growsdown neighbour's guard gap) is
        free, and otherwise the search runs top-down from mmap_base, then bottom-up."""
        if map_32bit:
            return self._area_32bit(addr, length)
        if addr:
            addr &= PAGE_MASK
            if addr <= TASK_SIZE - length and self._hint_fits(addr, length):
                return addr
        low = max(PAGE_SIZE, self.mmap_min_addr)
        found = self.vma_tree.highest_gap(length, low, self.mmap_base)
        if found is None:
            found = self.vma_tree.lowest_gap(length, TASK_UNMAPPED_BASE, TASK_SIZE)
        return found

    def _hint_fits(self, addr, length):
        vma = self.vma_tree.find(addr)
        return vma is None or addr + length <= vm_start_gap(vma)

    def _area_32bit(self, addr, length):
        """arch_get_unmapped_area() with find_start_end()'s MAP_32BIT window (no
        randomisation): the hint is rounded up here, and there is no fallback."""
        begin, end = MAP_32BIT_BASE, MAP_32BIT_END
        if length > end:
            return None
        if addr:
            addr = (addr + PAGE_SIZE - 1) & PAGE_MASK
            if end - length >= addr and self._hint_fits(addr, length):
                return addr
        return self.vma_tree.lowest_gap(length, begin, end)

    @staticmethod
    def _thp_aligns(addr, file, shared, length, pgoff):
        """thp_get_unmapped_area_vmflags() applies to ext4 file mappings covering a whole
        aligned PMD of the file (hint or not), and to anonymous private mappings whose
        length is a multiple of PMD_SIZE when there is no hint; shmem (memfd, shared anon)
        is not aligned with shmem_enabled=never."""
        if file is not None:
            if file.inode.is_shmem:
                return False
        elif shared or addr or length % PMD_SIZE:
            return False
        off = pgoff << PAGE_SHIFT
        off_align = (off + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
        return off + length > off_align and off + length - off_align >= PMD_SIZE

    def _thp_aligned_area(self, addr, length, pgoff, map_32bit):
        """__thp_get_unmapped_area(): search for length + PMD_SIZE, then align inside it
        to the file offset; a hint honoured for the padded length stands; an aligned result
        takes the upper part (the mm is top-down). Falls back to an unaligned search."""
        padded = self._arch_area(addr, length + PMD_SIZE, map_32bit)
        if padded is None:
            return self._arch_area(addr, length, map_32bit)
        if addr and padded == addr & PAGE_MASK:
            return padded
        off_sub = ((pgoff << PAGE_SHIFT) - padded) & (PMD_SIZE - 1)
        return padded + PMD_SIZE if off_sub == 0 else padded + off_sub

    # --- page-table side helpers used by files and faults --------------------------------
    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

