"""The exec layout (fs/exec.c, arch/x86/entry/vdso/vma.c, arch/x86/mm/mmap.c).

What exec sets up besides the program's own segments: the mmap base, the stack with the
argument strings, the vDSO and the vsyscall gate.

Mirrors, for a non-randomised x86-64 process (ADDR_NO_RANDOMIZE, or randomize_va_space=0):
  arch/x86/mm/mmap.c:mmap_base()            where top-down placement starts;
  fs/exec.c (__bprm_mm_init(), copy_strings(), setup_arg_pages())   the [stack] VMA;
  fs/binfmt_elf.c:create_elf_tables()       argc, argv, envp and auxv below the strings;
  arch/x86/entry/vdso/vma.c:map_vdso()      [vvar], [vvar_vclock], [vdso], top-down;
  arch/x86/entry/vsyscall/vsyscall_64.c     the [vsyscall] gate page (get_gate_vma()): in
                                            maps and smaps, never in the VMA tree.
binfmt_elf.py maps the program and its interpreter and calls these in the kernel's order.
`spawn(exec_layout=True)` uses them for a process whose program is left out: the stack and
the vDSO as a small static program has them, touched as its C library's start-up leaves
them, so that the page tables over the top of the address space exist as in a real process
and page-table figures of top-down workloads match the host kernel's to the byte.
"""
import errno

from .. import core as _core
from ..constants import (PAGE_MASK, PAGE_SIZE, STACK_GUARD_GAP, TASK_SIZE,
                        VM_ACCOUNT, VM_DONTDUMP, VM_DONTEXPAND, VM_EXEC, VM_GROWSDOWN, VM_IO,
                        VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_PFNMAP, VM_READ, VM_WRITE)
from ..errors import raise_errno
from ..mm.mm_types import VMA
from ..mm.mmap import get_unmapped_area

P = PAGE_SIZE
MiB = 1 << 20
VVAR_FLAGS = VM_READ | VM_MAYREAD | VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP
VDSO_FLAGS = VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_DONTEXPAND
# VM_STACK_FLAGS: VM_DATA_DEFAULT_FLAGS (no READ_IMPLIES_EXEC on x86-64), growing down,
# charged to the commit limit.
STACK_FLAGS = (VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_GROWSDOWN
               | VM_ACCOUNT)
STACK_TOP = TASK_SIZE           # STACK_TOP_MAX: no randomisation shifts it
STACK_EXPAND = 128 << 10        # setup_arg_pages(): room for the program's first frames
# The host's vDSO image: 4 [vvar] pages and 2 [vvar_vclock] pages below 2 pages of text.
VVAR_PAGES, VCLOCK_PAGES, VDSO_PAGES = 4, 2, 2
# create_elf_tables() on this kernel: 23 auxv entries with AT_NULL (AT_SYSINFO_EHDR ...
# AT_PLATFORM, AT_RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN), and the "x86_64" platform string.
AUXV_ENTRIES = 23
PLATFORM = b"x86_64\0"
AT_RANDOM_BYTES = 16
# bprm_stack_limits(): the strings and pointers may take a quarter of the stack limit,
# at most 3/4 of _STK_LIM (8 MiB) and at least ARG_MAX (32 pages).
STK_LIM = 8 * MiB
ARG_MAX = 32 * P
MAX_ARG_STRLEN = 32 * P
VSYSCALL_ADDR = 0xFFFFFFFFFF600000


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


# The vsyscall page (CONFIG_LEGACY_VSYSCALL_XONLY: execute-only, no page behind it):
# get_gate_vma() adds it after the last VMA in maps and smaps; it is no VMA of the mm, so
# map_count, VmSize and every syscall leave it out.
GATE_VMA = SpecialVMA(VSYSCALL_ADDR, VSYSCALL_ADDR + P, VM_EXEC, "[vsyscall]")


# mirrors arch/x86/mm/mmap.c:mmap_base() with no random offset
def mmap_base(stack_rlimit):
    """Where top-down placement starts below a stack of `stack_rlimit` bytes: the limit
    plus the stack guard gap, kept between 128 MiB and 5/6 of the address space."""
    gap = stack_rlimit + STACK_GUARD_GAP
    gap = min(max(gap, 128 * MiB), TASK_SIZE // 6 * 5)
    return (TASK_SIZE - gap + P - 1) & PAGE_MASK


def copy_strings(filename, argv, envp, stack_rlimit):
    """do_execveat_common(): where bprm->p ends after the file name, the environment and
    the arguments are copied below the top of the stack (one pointer's room is left
    above them), in bytes as given. E2BIG as bprm_stack_limits(), copy_strings() and the
    stack limit decide."""
    strings = [filename, *envp, *argv]
    sizes = [len(s) + 1 for s in strings]
    if any(n > MAX_ARG_STRLEN for n in sizes):
        raise_errno(errno.E2BIG)
    limit = max(min(STK_LIM // 4 * 3, stack_rlimit // 4), ARG_MAX)
    pointers = (max(len(argv), 1) + len(envp)) * 8
    if limit <= pointers or sum(sizes[1:]) > limit - pointers:
        raise_errno(errno.E2BIG)
    p = STACK_TOP - 8 - sum(sizes)
    # get_arg_page() grows the stack VMA over the strings: past the stack limit
    # (acct_stack_growth()) the copy fails, and so does exec.
    if STACK_TOP - (p & PAGE_MASK) > stack_rlimit:
        raise_errno(errno.E2BIG)
    return p


# mirrors fs/exec.c:setup_arg_pages() (after __bprm_mm_init() and get_arg_page())
def setup_arg_pages(mm, p, stack_rlimit, executable_stack):
    """Install [stack]: the pages the strings reached, plus 128 KiB below (no more than
    the stack limit in all). `executable_stack`: True/False from PT_GNU_STACK, None
    without one (x86-64 then gives no VM_EXEC)."""
    vm_start = min(STACK_TOP - P, p & PAGE_MASK)
    rlim = stack_rlimit & PAGE_MASK
    if STACK_TOP - vm_start + STACK_EXPAND > rlim:
        # expand_stack() to the limit; strings already past it (ARG_MAX allows 128 KiB
        # under any limit) stay as they are.
        vm_start = min(vm_start, STACK_TOP - rlim)
    else:
        vm_start -= STACK_EXPAND
    flags = STACK_FLAGS | mm.def_flags | (VM_EXEC if executable_stack else 0)
    mm.vma_tree.insert(VMA(vm_start, STACK_TOP, flags | mm.system.new_vma_flags,
                           vm_start // P))


# mirrors fs/binfmt_elf.c:create_elf_tables()
def create_elf_tables(mm, p, argc, envc):
    """Write the platform string, AT_RANDOM bytes, auxv, envp, argv and argc below the
    strings at p, faulting in every stack page from there to the top as the kernel's
    copy_to_user() does; the lowest address is the process's initial stack pointer
    (mm->start_stack, which names [stack] in maps)."""
    p &= ~0xF                                   # arch_align_stack() without randomisation
    p -= len(PLATFORM) + AT_RANDOM_BYTES
    sp = p - 2 * AUXV_ENTRIES * 8
    sp = (sp - ((argc + 1) + (envc + 1) + 1) * 8) & ~0xF      # STACK_ROUND()
    mm.touch(sp, STACK_TOP - sp, write=True)
    mm.start_stack = sp
    return sp


# mirrors arch/x86/entry/vdso/vma.c:map_vdso(image, 0)
def map_vdso(mm):
    """[vvar], [vvar_vclock] and [vdso], placed together top-down (below the interpreter
    when there is one: exec maps that first). Returns the vDSO text's address."""
    size = (VVAR_PAGES + VCLOCK_PAGES + VDSO_PAGES) * P
    addr = get_unmapped_area(mm, 0, size, 0, False, None, False, 0)
    text = addr + (VVAR_PAGES + VCLOCK_PAGES) * P
    for name, start, end, flags in (("[vvar]", addr, addr + VVAR_PAGES * P, VVAR_FLAGS),
                                     ("[vvar_vclock]", addr + VVAR_PAGES * P, text, VVAR_FLAGS),
                                     ("[vdso]", text, text + VDSO_PAGES * P, VDSO_FLAGS)):
        mm.vma_tree.insert(SpecialVMA(start, end, flags | mm.system.new_vma_flags, name))
    mm.gate_vma = GATE_VMA
    return text


def setup_exec_layout(mm):
    """spawn(exec_layout=True): the stack and the vDSO of a small static program run as
    `a.out` with an empty environment, and what its C library's start-up touches next:
    the page below the initial stack pointer and the vDSO text it reads."""
    p = copy_strings(b"a.out", [b"a.out"], [], 8 * MiB)
    setup_arg_pages(mm, p, 8 * MiB, False)
    vdso = map_vdso(mm)
    sp = create_elf_tables(mm, p, 1, 0)
    mm.touch((sp & PAGE_MASK) - P, P, write=True)
    page = mm.frames.alloc(_core.FRAME_FILE)
    mm.pt.map_page(vdso, page, _core.PTE_PRESENT | _core.PTE_USER | _core.PTE_ACCESSED)
    mm.frames.put(page)
