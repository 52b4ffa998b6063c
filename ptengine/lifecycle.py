"""fork and exit (kernel/fork.c:dup_mmap(), mm/mmap.c:exit_mmap())."""
from . import core as _core
from .constants import VM_NOHUGEPAGE
from .fork import dup_mmap


class ProcessLifecycle:

    # mirrors kernel/fork.c:dup_mmap(); the child is of this process's class (system.py's
    # MM), built here without importing it: system.py imports this module.
    def fork(self):
        self._alive()
        child = type(self)(self.system, mmap_base=self.mmap_base, max_map_count=self.max_map_count,
                   start_brk=self.start_brk, mmap_min_addr=self.mmap_min_addr)
        child.brk_end = self.brk_end
        child.start_stack = self.start_stack
        child.gate_vma = self.gate_vma
        child.def_flags = self.def_flags & VM_NOHUGEPAGE
        skipped = dup_mmap(self, child)
        if not skipped:
            # The child's layout is the parent's, and so is what the free-area cache knows.
            child.vma_tree.inherit_search_state(self.vma_tree)
        return child

    # mirrors mm/mmap.c:exit_mmap()
    def exit(self):
        if self.dead:
            return
        self.pt.zap(0, 1 << 47, _core.ZAP_DROP_MARKERS)
        self.pt.free_pgtables(0, 1 << 47, 0, 0)
        self.vma_tree.clear()
        self.dead = True
        self.system._detach(self._slot)
