"""fork and exit (kernel/fork.c:dup_mmap(), mm/mmap.c:exit_mmap())."""
from . import core as _core
from .constants import (VM_LOCKED_MASK, VM_MAYBE_GUARD, VM_MAYWRITE, VM_MIXEDMAP, VM_PFNMAP,
                        VM_SHARED, VM_DONTCOPY, VM_WIPEONFORK, VM_UFFD_MISSING, VM_UFFD_WP,
                        VM_UFFD_MINOR, VM_NOHUGEPAGE)
from .vma import AnonVma


# Flags a child's VMA does not inherit: locks, and uffd without UFFD_FEATURE_EVENT_FORK.
NOT_INHERITED = ~(VM_LOCKED_MASK | VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR)


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
        skipped = False
        copies = []
        maybe_guard = VM_MAYBE_GUARD if self.system.profile.maybe_guard else 0
        for vma in self.vma_tree:
            if vma.flags & VM_DONTCOPY:
                skipped = True
                continue
            new = vma.copy()
            # Locks are not inherited; without UFFD_FEATURE_EVENT_FORK neither is uffd.
            new.flags &= NOT_INHERITED
            copies.append(new)
            if vma.flags & VM_WIPEONFORK:
                new.anon_vma = None
                continue
            if vma.anon_vma is not None:
                new.anon_vma = AnonVma(forked=True)
            elif not vma.flags & (VM_PFNMAP | VM_MIXEDMAP | maybe_guard):
                continue        # vma_needs_copy(): a fault would refill these PTEs
            flags = 0
            if vma.flags & VM_SHARED:
                flags |= _core.COPY_SHARED
            elif vma.flags & VM_MAYWRITE:
                flags |= _core.COPY_COW
            self.pt.copy_range(child.pt, vma.start, vma.end, flags)
        child.vma_tree.load(copies)
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
