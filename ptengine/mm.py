"""MM: one process address space (struct mm_struct) and its VMA plumbing.

The syscalls live in mixins by concern (mapping.py, protection.py, advice.py, fault.py,
lifecycle.py, procview.py); this module holds the state and the operations they share,
each the counterpart of one function in mm/vma.c or mm/mmap.c:

  split (__split_vma / split_vma), modify a range (vma_modify), map a new range
  (vma_merge_new_range + vma insertion), unmap a range (do_vmi_align_munmap with
  free_pgtables), and the top-down unmapped-area search (arch_get_unmapped_area_topdown).
"""
import errno

from . import _core
from .advice import AdviceSyscalls
from .constants import (MMAP_MIN_ADDR, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, TASK_SIZE,
                        TASK_UNMAPPED_BASE, VM_LOCKED, VM_SEALED, VM_STICKY)
from .args import as_int
from .errors import raise_errno
from .fault import FaultHandling
from .files import System
from .lifecycle import ProcessLifecycle
from .mapping import MappingSyscalls
from .procview import ProcView
from .protection import ProtectionSyscalls
from .vma import (VMA, VMATree, anon_vma_compatible, anon_vma_reusable, can_merge_after,
                  can_merge_before, AnonVma, vm_start_gap)

# MemTotal of the reference machines (no swap): what the overcommit heuristic compares
# one request with, unless the System says otherwise (System.totalram_pages).
DEFAULT_TOTALRAM_PAGES = 24684084 * 1024 // PAGE_SIZE
# find_start_end(): the window of MAP_32BIT mappings on x86-64 (not randomised).
MAP_32BIT_BASE, MAP_32BIT_END = 0x40000000, 0x80000000
# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000
_KEEP = object()


class MM(MappingSyscalls, ProtectionSyscalls, AdviceSyscalls, FaultHandling,
         ProcessLifecycle, ProcView):
    """One address space. `MM()` is shorthand for a fresh System with one process."""

    def __init__(self, system=None, *, mmap_base=None, max_map_count=None,
                 start_brk=DEFAULT_START_BRK, mmap_min_addr=MMAP_MIN_ADDR, exec_layout=False):
        if system is None:
            system = System(**({} if max_map_count is None else {"max_map_count": max_map_count}),
                            **({} if mmap_base is None else {"mmap_base": mmap_base}))
        self.system = system
        self.frames = system.frames
        self.pt = _core.PageTables(system.frames)
        self.vma_tree = VMATree()
        self.mmap_base = as_int(system.mmap_base if mmap_base is None else mmap_base)
        self.max_map_count = as_int(system.max_map_count if max_map_count is None
                                    else max_map_count)
        self.mmap_min_addr = as_int(mmap_min_addr)
        self.start_brk = self.brk_end = as_int(start_brk)
        self.def_flags = 0           # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
        self.totalram_pages = getattr(system, "totalram_pages", DEFAULT_TOTALRAM_PAGES)
        self.locked_vm = 0           # mm->locked_vm, in pages: what VmLck reports
        self.minflt = 0
        self.majflt = 0
        self.dead = False
        self.start_stack = None      # set by an exec layout: the VMA holding it is [stack]
        system.mms.append(self)
        if exec_layout:
            from .exec_layout import setup_exec_layout
            setup_exec_layout(self)

    # --- introspection basics -----------------------------------------------------------
    @property
    def map_count(self):
        return len(self.vma_tree)

    def vmas(self):
        return list(self.vma_tree)

    def find_vma(self, addr):
        """The VMA containing addr, or None."""
        return self.vma_tree.lookup(as_int(addr, "addr"))

    def _alive(self):
        if self.dead:
            raise_errno(errno.ESRCH)

    # --- VMA plumbing (mm/vma.c) --------------------------------------------------------
    def _split(self, vma, addr):
        """__split_vma(): cut vma at addr; returns (lower, upper). A huge PMD straddling
        the cut is split first (vma_adjust_trans_huge())."""
        if addr & (PMD_SIZE - 1):
            self.split_huge_at(addr)
        upper = vma.copy(start=addr)
        self.vma_tree.set_end(vma, addr)
        self.vma_tree.insert(upper)
        return vma, upper

    def _split_checked(self, vma, addr):
        """split_vma(): refuses with ENOMEM once map_count has reached max_map_count."""
        if self.map_count >= self.max_map_count:
            raise_errno(errno.ENOMEM)
        return self._split(vma, addr)

    def _move_start(self, vma, new_start):
        """Change a VMA's start (re-keying it in the tree); pgoff follows."""
        self.vma_tree.remove(vma, range_stays_mapped=True)
        vma.pgoff += (new_start - vma.start) >> PAGE_SHIFT
        vma.start = new_start
        self.vma_tree.insert(vma)

    def _neighbours(self, vma):
        i = self.vma_tree.index_of(vma)
        return self.vma_tree.at(i - 1), self.vma_tree.at(i + 1)

    def modify_range(self, vma, start, end, flags=None, anon_name=_KEEP):
        """vma_modify(): give [start, end) (inside vma) new flags and/or anon name, merging
        into a neighbour where the merge rules allow, else splitting. Returns the VMA now
        covering [start, end). ENOMEM if a needed split would pass max_map_count."""
        nflags = vma.flags if flags is None else flags
        nname = vma.anon_name if anon_name is _KEEP else anon_name
        if nflags == vma.flags and nname == vma.anon_name:
            return vma
        prev, nxt = self._neighbours(vma)
        pgoff = vma.pgoff_at(start)
        npages = (end - start) >> PAGE_SHIFT
        left, right = start == vma.start, end == vma.end
        merge_left = left and can_merge_after(prev, start, nflags, pgoff, vma.file,
                                              vma.anon_vma, nname)
        merge_right = right and can_merge_before(nxt, end, nflags, pgoff, npages, vma.file,
                                                 vma.anon_vma, nname)
        if merge_left and merge_right and not anon_vma_compatible(prev.anon_vma, nxt.anon_vma):
            merge_right = False
        sticky = vma.flags & VM_STICKY
        if merge_left:
            prev.anon_vma = prev.anon_vma or vma.anon_vma
            prev.flags |= sticky
            if merge_right:
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
                prev.flags |= nxt.flags & VM_STICKY
                self.vma_tree.remove(vma, range_stays_mapped=True)
                self.vma_tree.remove(nxt, range_stays_mapped=True)
                self.vma_tree.set_end(prev, nxt.end)
            elif right:
                self.vma_tree.remove(vma, range_stays_mapped=True)
                self.vma_tree.set_end(prev, end)
            else:
                self.vma_tree.set_end(prev, end)
                self._move_start(vma, end)
            return prev
        if merge_right:
            nxt.anon_vma = nxt.anon_vma or vma.anon_vma
            nxt.flags |= sticky
            if left:
                self.vma_tree.remove(vma, range_stays_mapped=True)
            else:
                self.vma_tree.set_end(vma, start)
            self._move_start(nxt, start)
            return nxt
        if start > vma.start:
            vma = self._split_checked(vma, start)[1]
        if end < vma.end:
            vma = self._split_checked(vma, end)[0]
        vma.flags = nflags
        vma.anon_name = nname
        return vma

    def map_range(self, start, end, flags, pgoff, file, anon_name=None, anon_vma=None):
        """vma_merge_new_range() or a new VMA: place [start, end) (already free) into the
        tree, expanding a compatible neighbour where possible. `anon_vma` is that of the
        range's pages (mremap's copy_vma() brings the moved VMA's along): a neighbour with
        another anon_vma is not merged with. Returns the VMA."""
        prev, nxt = self.vma_tree.prev_next(start, end)
        npages = (end - start) >> PAGE_SHIFT
        merge_left = can_merge_after(prev, start, flags, pgoff, file, anon_vma, anon_name)
        merge_right = can_merge_before(nxt, end, flags, pgoff, npages, file, anon_vma,
                                       anon_name)
        if merge_left and merge_right and not anon_vma_compatible(prev.anon_vma, nxt.anon_vma):
            merge_right = False
        if merge_left:
            prev.flags |= flags & VM_STICKY
            prev.anon_vma = prev.anon_vma or anon_vma
            if merge_right:
                self.vma_tree.remove(nxt, range_stays_mapped=True)
                self.vma_tree.set_end(prev, nxt.end)
                prev.flags |= nxt.flags & VM_STICKY
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
            else:
                self.vma_tree.set_end(prev, end)
            return prev
        if merge_right:
            nxt.flags |= flags & VM_STICKY
            nxt.anon_vma = nxt.anon_vma or anon_vma
            self.vma_tree.remove(nxt, range_stays_mapped=True)
            nxt.start, nxt.pgoff = start, pgoff
            self.vma_tree.insert(nxt)
            return nxt
        vma = VMA(start, end, flags, pgoff, file, anon_vma, anon_name)
        self.vma_tree.insert(vma)
        return vma

    def vm_enough_memory(self, pages):
        """mm/util.c:__vm_enough_memory() with vm.overcommit_memory = 0 (OVERCOMMIT_GUESS):
        nothing is tracked, but one request for more than RAM + swap is ENOMEM."""
        if pages > self.totalram_pages:
            raise_errno(errno.ENOMEM)

    def gather_unmap(self, start, end):
        """mm/vma.c:vms_gather_munmap_vmas(): split the VMAs of [start, end) so that they
        lie inside it and return them, in order, still in the tree. As in the kernel the
        first VMA is split before the others are looked at, so a sealed VMA further on
        (EPERM) leaves that split behind; splitting one VMA in three at max_map_count is
        ENOMEM before anything changes (a two-way split may pass the limit)."""
        vmas = self.vma_tree.overlapping(start, end)
        if not vmas:
            return vmas
        first = vmas[0]
        if first.start < start:
            if end < first.end and self.map_count >= self.max_map_count:
                raise_errno(errno.ENOMEM)
            if first.flags & VM_SEALED:
                raise_errno(errno.EPERM)
            vmas[0] = self._split(first, start)[1]
        for i, vma in enumerate(vmas):
            if vma.flags & VM_SEALED:
                raise_errno(errno.EPERM)
            if vma.end > end:
                vmas[i] = self._split(vma, end)[0]
        return vmas

    def remove_vmas(self, vmas):
        """vms_complete_munmap_vmas(): take gathered VMAs out of the tree, uncharge their
        mlocked pages, zap their entries (markers too) and free the page tables no
        remaining VMA needs."""
        i = self.vma_tree.index_of(vmas[0])
        prev = self.vma_tree.at(i - 1)
        nxt = self.vma_tree.at(i + len(vmas))
        for vma in vmas:
            self.vma_tree.remove(vma)
            if vma.flags & VM_LOCKED:
                self.locked_vm -= vma.pages
        self.pt.zap(vmas[0].start, vmas[-1].end, _core.ZAP_DROP_MARKERS)
        self.free_pgtables(vmas, prev.end if prev else 0, nxt.start if nxt else 0)

    def unmap_range(self, start, end):
        """do_vmi_munmap(): remove [start, end)."""
        vmas = self.gather_unmap(start, end)
        if vmas:
            self.remove_vmas(vmas)

    def free_pgtables(self, vmas, floor, ceiling):
        """mm/memory.c:free_pgtables(): free the tables under the removed VMAs, gathering
        VMAs closer than a PMD into one free_pgd_range() call, bounded by the neighbours
        that stay (floor, ceiling; 0 = no ceiling)."""
        i, n = 0, len(vmas)
        while i < n:
            addr = vmas[i].start
            while i + 1 < n and vmas[i + 1].start <= vmas[i].end + PMD_SIZE:
                i += 1
            top = vmas[i].end
            i += 1
            self.pt.free_pgtables(addr, top, floor, vmas[i].start if i < n else ceiling)

    def anon_vma_prepare(self, vma):
        """mm/rmap.c:anon_vma_prepare(): give vma an anon_vma, reusing a neighbour's when
        they could merge later (find_mergeable_anon_vma())."""
        if vma.anon_vma is None:
            prev, nxt = self._neighbours(vma)
            vma.anon_vma = (anon_vma_reusable(vma, nxt) or anon_vma_reusable(vma, prev)
                            or AnonVma())
        return vma.anon_vma

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
    def split_huge_at(self, addr):
        """Split a PMD-mapped huge page covering addr, if there is one."""
        if self.pt.get_pmd(addr) & _core.PTE_PSE:
            self.pt.split_huge_pmd(addr & ~(PMD_SIZE - 1))

    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

