# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
"""mseal(2): mm/mseal.c (do_mseal()): VM_SEALED on every VMA of a fully mapped range."""
import errno

from .mm_struct cimport mm_struct, check_alive
from .mm_types cimport u64
from .vma cimport __vma_modify

from ..args import page_range
from ..constants import VM_SEALED
from ..errors import raise_errno


# mirrors mm/mseal.c:do_mseal()
cdef long long sys_mseal(mm_struct mm, u64 addr, u64 length, u64 flags) except? -1:
    check_alive(mm)
    if flags:
        raise_errno(errno.EINVAL)
    start, end = page_range(addr, length)
    if end == start:
        return 0
    # First pass: the whole range must be mapped, so nothing is half sealed.
    pos = start
    for vma in mm.vma_tree._overlapping(start, end):
        if vma.start > pos:
            raise_errno(errno.ENOMEM)
        pos = vma.end
    if pos < end:
        raise_errno(errno.ENOMEM)
    for vma in mm.vma_tree._overlapping(start, end):
        if not vma.flags & VM_SEALED:
            __vma_modify(mm, vma, max(vma.start, start), min(vma.end, end),
                         vma.flags | VM_SEALED, vma.anon_name)
    return 0
