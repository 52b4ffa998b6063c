"""The mappings every exec'd process starts with: [vvar], [vvar_vclock], [vdso], [stack].

A real process never has an empty address space: exec (fs/binfmt_elf.c, arch/x86/entry/vdso/
vma.c:map_vdso()) sets up the vDSO just below mmap_base and the stack at the top of the
user range, and touches them, so the page tables over the top of the address space exist
before the program's first mmap. `spawn(exec_layout=True)` reproduces that layout as a
non-randomised process on the reference machines has it (read off a live server process),
so page-table figures of top-down workloads match the host kernel's to the byte.
"""
from . import _core
from .constants import (PAGE_SIZE, VM_ACCOUNT, VM_DONTDUMP, VM_DONTEXPAND, VM_EXEC,
                        VM_GROWSDOWN, VM_IO, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_PFNMAP,
                        VM_READ, VM_WRITE)
from .vma import VMA

P = PAGE_SIZE
VVAR_FLAGS = VM_READ | VM_MAYREAD | VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP
VDSO_FLAGS = VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_DONTEXPAND
STACK_FLAGS = (VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_GROWSDOWN
               | VM_ACCOUNT)
STACK_TOP = 0x7FFFFFFFF000
STACK_PAGES = 33            # what a small environment needs, as observed
STACK_TOUCHED = 2           # argv/envp and the first frames


class SpecialVMA(VMA):
    """A VMA the kernel installs itself (install_special_mapping()), shown by its name."""
    __slots__ = ("special_name",)

    def __init__(self, start, end, flags, special_name):
        super().__init__(start, end, flags, start // P)
        self.special_name = special_name

    def copy(self, start=None, end=None):
        new = SpecialVMA(self.start if start is None else start,
                         self.end if end is None else end, self.flags, self.special_name)
        new.anon_vma = self.anon_vma
        return new

    @property
    def name(self):
        return self.special_name


def setup_exec_layout(mm):
    """Map and touch the vDSO and the stack the way exec leaves them."""
    vdso_end = mm.mmap_base
    layout = (("[vvar]", vdso_end - 8 * P, vdso_end - 4 * P, VVAR_FLAGS),
              ("[vvar_vclock]", vdso_end - 4 * P, vdso_end - 2 * P, VVAR_FLAGS),
              ("[vdso]", vdso_end - 2 * P, vdso_end, VDSO_FLAGS))
    for name, start, end, flags in layout:
        mm.vma_tree.insert(SpecialVMA(start, end, flags, name))
    # The vDSO text page the C library reads at start-up.
    page = mm.frames.alloc(_core.FRAME_FILE)
    mm.pt.map_page(vdso_end - 2 * P, page,
                   _core.PTE_PRESENT | _core.PTE_USER | _core.PTE_ACCESSED)
    mm.frames.put(page)
    stack = VMA(STACK_TOP - STACK_PAGES * P, STACK_TOP, STACK_FLAGS,
                (STACK_TOP - STACK_PAGES * P) // P)
    mm.vma_tree.insert(stack)
    mm.start_stack = STACK_TOP - P
    mm.touch(STACK_TOP - STACK_TOUCHED * P, STACK_TOUCHED * P, write=True)
