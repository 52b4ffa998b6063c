# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects.
"""brk(2) and exec's bss: mm/mmap.c (brk(), vm_brk_flags()), mm/vma.c:do_brk_flags()."""
import errno

from .memory cimport mm_populate
from .mm_struct cimport mm_struct, check_alive, vm_enough_memory
from .mm_types cimport VMA, new_vma, u64, vm_start_gap
from .mmap cimport get_unmapped_area
from .vma cimport can_merge_after, do_vmi_munmap

from ..args import U64_MAX, as_ulong
from ..constants import (PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, VM_ACCOUNT, VM_EXEC, VM_LOCKED, VM_LOCKONFAULT,
                         VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE)
from ..errors import raise_errno
from .mmap import page_align

# Data segments (brk): VM_DATA_DEFAULT_FLAGS on x86-64 without READ_IMPLIES_EXEC.
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


# mirrors mm/mmap.c:brk()
cdef long long sys_brk(mm_struct mm, u64 addr_) except? -1:
    check_alive(mm)
    addr = addr_                # a Python integer: page_align() may pass 2**64
    if addr < mm.start_brk:
        return mm.brk_end
    # PAGE_ALIGN() wraps in C: a break near 2**64 asks for a length no check passes.
    newbrk, oldbrk = page_align(addr) & U64_MAX, page_align(mm.brk_end)
    if oldbrk == newbrk:
        mm.brk_end = addr
        return addr
    if addr <= mm.brk_end:
        # Shrinking needs a VMA in [newbrk, oldbrk): a heap unmapped by munmap stays
        # where it was, and so does the break.
        brkvma = mm.vma_tree.find(newbrk)
        if brkvma is None or brkvma.start >= oldbrk:
            return mm.brk_end
        try:
            do_vmi_munmap(mm, newbrk, oldbrk)
        except OSError:
            return mm.brk_end
        mm.brk_end = addr
        return addr
    length = (newbrk - oldbrk) & U64_MAX
    if length > TASK_SIZE or oldbrk > TASK_SIZE - length:
        return mm.brk_end                 # check_brk_limits()
    nxt = mm.vma_tree.find(oldbrk)
    if nxt is not None and newbrk + PAGE_SIZE > vm_start_gap(nxt):
        return mm.brk_end
    # vma_prev_limit(start_brk): only a VMA reaching above start_brk is the heap; the
    # bss ending at start_brk is never grown (a new [heap] VMA starts there).
    brkvma = mm.vma_tree._prev_next(oldbrk, newbrk)[0]
    if brkvma is not None and brkvma.end <= mm.start_brk:
        brkvma = None
    try:
        do_brk_flags(mm, brkvma, oldbrk, length, 0)
    except OSError:
        return mm.brk_end
    mm.brk_end = addr
    if mm.def_flags & VM_LOCKED and not mm.def_flags & VM_LOCKONFAULT:
        mm_populate(mm, oldbrk, newbrk, True)
    return addr


# mirrors mm/mmap.c:vm_brk_flags()
def vm_brk_flags(mm_struct mm, addr, length, flags):
    """exec's mapping of a bss beyond the file (fs/binfmt_elf.c:elf_load()): brk's
    kind of VMA at a given place, over whatever was there; flags may add VM_EXEC."""
    addr, length = as_ulong(addr, "addr"), page_align(as_ulong(length, "length"))
    if flags & ~VM_EXEC:
        raise_errno(errno.EINVAL)
    if not length:
        return
    get_unmapped_area(mm, addr, length, 0, True, None, False, 0)   # check_brk_limits()
    do_vmi_munmap(mm, addr, addr + length)
    do_brk_flags(mm, mm.vma_tree._prev_next(addr, addr + length)[0], addr, length,
                       flags)


def do_brk_flags(mm_struct mm, prev, addr, length, flags):
    """mm/vma.c:do_brk_flags(): anonymous data at [addr, addr + length), charged to the
    commit limit. Only `prev` may grow over it (when it ends at addr and could merge):
    brk never joins the VMA above, nor any VMA the caller did not pass."""
    flags |= VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags | mm.profile.new_vma_flags
    if mm.map_count > mm.max_map_count:
        raise_errno(errno.ENOMEM)
    vm_enough_memory(mm, length >> PAGE_SHIFT)
    pgoff = addr >> PAGE_SHIFT
    if can_merge_after(prev, addr, flags, pgoff, None, None, None):
        mm.vma_tree.set_end(prev, addr + length)
    else:
        mm.vma_tree.insert(new_vma(addr, addr + length, flags, pgoff, None, None, None))
    if flags & VM_LOCKED:
        mm.locked_vm += length >> PAGE_SHIFT
