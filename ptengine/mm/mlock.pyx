# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects.
"""mlock(2), mlock2(2), munlock(2), mlockall(2), munlockall(2): mm/mlock.c.

VM_LOCKED (and VM_LOCKONFAULT) go on or off VMA piece by VMA piece (mlock_fixup(), over
mprotect.pyx's walk), locked_vm follows, and locking populates the range
(mm/gup.c:__mm_populate()).
"""
import errno

from .. import constants as C
from .memory cimport mm_populate
from .mm_struct cimport mm_struct, check_alive
from .mm_types cimport VMA, u64
from .mprotect cimport walk_contiguous
from .vma cimport __vma_modify

from ..args import U64_MAX
from ..constants import (MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_ONFAULT, PAGE_MASK,
                         PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, VM_LOCKED, VM_LOCKED_MASK,
                         VM_LOCKONFAULT)
from ..errors import raise_errno

cdef u64 c_VM_LOCKED = C.VM_LOCKED
cdef u64 c_NEVER_LOCKED = C.VM_SPECIAL | C.VM_HUGETLB | C.VM_DROPPABLE


cdef object mlock_vma(mm_struct mm, VMA vma, u64 start, u64 end, object lock_flags):
    return mlock_fixup(mm, vma, start, end, (vma.flags & ~VM_LOCKED_MASK) | lock_flags)


# --- mlock family (mm/mlock.c) -------------------------------------------------------

cdef long long sys_mlock(mm_struct mm, u64 addr, u64 length, u64 flags) except? -1:
    # mlock2() takes an int: the low 32 bits of the register, as as_cint() reads them.
    cdef int f = <int><unsigned int>flags
    check_alive(mm)
    if f & ~MLOCK_ONFAULT:
        raise_errno(errno.EINVAL)
    vm_flags = VM_LOCKED | (VM_LOCKONFAULT if f & MLOCK_ONFAULT else 0)
    start, end = _mlock_range(addr, length)
    if end == start:
        return 0
    apply_vma_lock_flags(mm, start, end, vm_flags)
    err = mm_populate(mm, start, end, False)
    if err == errno.EFAULT:
        raise_errno(errno.ENOMEM)
    if err == errno.ENOMEM:
        raise_errno(errno.EAGAIN)
    if err:
        raise_errno(err)
    return 0


cdef long long sys_munlock(mm_struct mm, u64 addr, u64 length) except? -1:
    check_alive(mm)
    start, end = _mlock_range(addr, length)
    if end != start:
        apply_vma_lock_flags(mm, start, end, 0)
    return 0


def _mlock_range(addr, length):
    """do_mlock(): the start rounds down, the length up (wrapping like PAGE_ALIGN() in
    C: ~0 becomes 0); a range past the top of the address space is EINVAL."""
    length = (length + (addr & ~PAGE_MASK) + PAGE_SIZE - 1) & PAGE_MASK & U64_MAX
    start = addr & PAGE_MASK
    if start + length > U64_MAX:
        raise_errno(errno.EINVAL)
    return start, start + length


def apply_vma_lock_flags(mm_struct mm, start, end, lock_flags):
    """apply_vma_lock_flags(): the range must start inside a VMA; a hole met on the way
    ends the walk with ENOMEM, keeping what was already changed."""
    vma = mm.vma_tree.lookup(start)
    if vma is None:
        raise_errno(errno.ENOMEM)
    walk_contiguous(mm, vma, start, end, mlock_vma, lock_flags)


cdef VMA mlock_fixup(mm_struct mm, VMA vma, u64 start, u64 end, u64 newflags):
    """mlock_fixup(): special, hugetlb and droppable VMAs are never locked; locked_vm
    follows VM_LOCKED going on or off."""
    cdef u64 oldflags = vma.flags
    cdef long long pages
    if newflags == oldflags or oldflags & c_NEVER_LOCKED:
        return vma
    vma = __vma_modify(mm, vma, start, end, newflags, vma.anon_name)
    if (newflags ^ oldflags) & c_VM_LOCKED:
        pages = (end - start) >> PAGE_SHIFT
        mm.locked_vm += pages if newflags & c_VM_LOCKED else -pages
    return vma


cdef long long sys_mlockall(mm_struct mm, u64 flags) except? -1:
    # mlockall() takes an int: the low 32 bits of the register, as as_cint() reads them.
    cdef int f = <int><unsigned int>flags
    check_alive(mm)
    if not f or f & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or f == MCL_ONFAULT:
        raise_errno(errno.EINVAL)
    apply_mlockall_flags(mm, f)
    if f & MCL_CURRENT:
        mm_populate(mm, 0, TASK_SIZE, True)
    return 0


cdef long long sys_munlockall(mm_struct mm) except? -1:
    check_alive(mm)
    apply_mlockall_flags(mm, 0)
    return 0


def apply_mlockall_flags(mm_struct mm, flags):
    mm.def_flags &= ~VM_LOCKED_MASK
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
        if not flags & MCL_CURRENT:
            return
    to_add = 0
    if flags & MCL_CURRENT:
        to_add = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
    for vma in list(mm.vma_tree):
        try:
            mlock_fixup(mm, vma, vma.start, vma.end, (vma.flags & ~VM_LOCKED_MASK) | to_add)
        except OSError:
            pass        # errors are ignored, as the kernel does
