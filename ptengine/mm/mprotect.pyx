# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""mprotect(2): mm/mprotect.c (do_mprotect_pkey(), mprotect_fixup(), change_protection()).

Validate, walk the VMAs of the range from the first one on (walk_contiguous(), which
mlock.pyx shares), modify each piece (vma_modify(): merge or split), then rewrite the
PTEs' permission bits. Typed: mprotect is one of the syscalls workloads issue by the
thousand.
"""
import errno

from .. import constants as C
from .. import core as _core
from ..core.walkers cimport pt_change_prot
from .memory cimport mm_populate
from .mm_struct cimport mm_struct, check_alive, pt_result, vm_enough_memory
from .mm_types cimport VMA, u64
from .mmap cimport calc_vm_prot_bits
from .vma cimport check_piece, __vma_modify

from ..errors import raise_errno

cdef u64 PTE_P = _core.PTE_PRESENT, PTE_RW = _core.PTE_RW
cdef u64 PTE_PROTNONE = _core.PTE_PROTNONE, PTE_NX = _core.PTE_NX
cdef u64 c_PAGE_SIZE = C.PAGE_SIZE, c_PAGE_OFFSET = C.PAGE_SIZE - 1
cdef u64 c_VM_WRITE = C.VM_WRITE, c_VM_EXEC = C.VM_EXEC, c_VM_ACCESS = C.VM_ACCESS_FLAGS
cdef u64 c_VM_SEALED = C.VM_SEALED, c_VM_ACCOUNT = C.VM_ACCOUNT, c_VM_LOCKED = C.VM_LOCKED
cdef u64 c_VM_SHARED = C.VM_SHARED, c_VM_GROWSDOWN = C.VM_GROWSDOWN
cdef int PAGE_SHIFT = C.PAGE_SHIFT
cdef u64 c_NO_CHARGE = C.VM_ACCOUNT | C.VM_WRITE | C.VM_HUGETLB | C.VM_SHARED | C.VM_NORESERVE
cdef u64 c_PROT_GROWS = C.PROT_GROWSDOWN | C.PROT_GROWSUP
cdef u64 c_PROT_GROWSDOWN = C.PROT_GROWSDOWN, c_PROT_GROWSUP = C.PROT_GROWSUP
cdef u64 c_PROT_VALID = C.PROT_READ | C.PROT_WRITE | C.PROT_EXEC | C.PROT_SEM


cdef void prot_update(u64 vm_flags, u64 *bits, u64 *mask) noexcept:
    """What change_protection() does to the permission bits of a present PTE under the
    new vm_flags: the bits to set, and the mask of bits it rewrites. Write permission is
    never added here; the next write fault grants it (or copies)."""
    mask[0] = PTE_P | PTE_PROTNONE | PTE_NX
    bits[0] = PTE_P if vm_flags & c_VM_ACCESS else PTE_PROTNONE
    if not vm_flags & c_VM_WRITE:
        mask[0] |= PTE_RW
    if not vm_flags & c_VM_EXEC:
        bits[0] |= PTE_NX


cdef object mprotect_vma(mm_struct mm, VMA vma, u64 start, u64 end, object prot):
    """One VMA piece of do_mprotect_pkey()'s loop."""
    cdef u64 newflags = calc_vm_prot_bits(prot) | (vma.flags & ~c_VM_ACCESS)
    # VM_MAY* sit four bits above the VM_* they allow.
    if newflags & ~(newflags >> 4) & c_VM_ACCESS:
        raise_errno(errno.EACCES)
    return __mprotect_fixup(mm, vma, start, end, newflags)


# mirrors mm/mprotect.c:do_mprotect_pkey()
cdef long long sys_mprotect(mm_struct mm, u64 start, u64 size, u64 p) except? -1:
    cdef u64 end
    cdef u64 grows = p & c_PROT_GROWS
    cdef VMA vma
    check_alive(mm)
    p &= ~c_PROT_GROWS
    if grows == c_PROT_GROWS or start & c_PAGE_OFFSET:
        raise_errno(errno.EINVAL)
    if size == 0:
        return 0
    # The end rounded up to a page, where the sum wraps past 2**64 or to 0: ENOMEM.
    if size > ~start - c_PAGE_OFFSET:
        raise_errno(errno.ENOMEM)
    end = start + ((size + c_PAGE_OFFSET) & ~c_PAGE_OFFSET)
    if p & ~c_PROT_VALID:
        raise_errno(errno.EINVAL)
    vma = mm.vma_tree._find(start)
    if vma is None or vma.start >= end:
        raise_errno(errno.ENOMEM)
    if grows & c_PROT_GROWSDOWN:
        start = vma.start
        if not vma.flags & c_VM_GROWSDOWN:
            raise_errno(errno.EINVAL)
    elif vma.start > start:
        raise_errno(errno.ENOMEM)
    elif grows & c_PROT_GROWSUP:
        raise_errno(errno.EINVAL)          # x86 has no VM_GROWSUP
    walk_contiguous(mm, vma, start, end, mprotect_vma, p)
    return 0


cdef walk_contiguous(mm_struct mm, VMA vma, u64 start, u64 end, vma_visitor fixup, object arg):
    """The loop of do_mprotect_pkey() and apply_vma_lock_flags(): fixup(mm, vma, lo,
    hi, arg) for each VMA piece of [start, end), from `vma` (which holds start) on; a
    hole stops the walk with ENOMEM, keeping the changes already made."""
    cdef u64 nstart = start, tmp
    while True:
        if vma.start > nstart:
            raise_errno(errno.ENOMEM)
        tmp = min(vma.end, end)
        fixup(mm, vma, nstart, tmp, arg)
        nstart = tmp
        if nstart >= end:
            return
        vma = mm.vma_tree._find(nstart)
        if vma is None or vma.start >= end:
            raise_errno(errno.ENOMEM)


def mprotect_fixup(mm_struct mm, VMA vma, u64 start, u64 end, u64 newflags):
    """__mprotect_fixup() for Python callers: vma must be this mm's and [start, end) a
    page-aligned piece of it."""
    check_piece(mm, vma, start, end)
    return __mprotect_fixup(mm, vma, start, end, newflags)


cdef VMA __mprotect_fixup(mm_struct mm, VMA vma, u64 start, u64 end, u64 newflags):
    """mm/mprotect.c:mprotect_fixup(): seal check, VM_ACCOUNT bookkeeping, vma_modify,
    then change_protection() on the PTEs (vma.pxd: a walk's piece, trusted)."""
    cdef u64 oldflags = vma.flags
    if oldflags & c_VM_SEALED:
        raise_errno(errno.EPERM)
    if newflags == oldflags:
        return vma
    if newflags & c_VM_WRITE:
        if not oldflags & c_NO_CHARGE:
            vm_enough_memory(mm, (end - start) >> PAGE_SHIFT)
            newflags |= c_VM_ACCOUNT
    elif oldflags & c_VM_ACCOUNT and vma.file is None and vma.anon_vma is None:
        newflags &= ~c_VM_ACCOUNT
    vma = __vma_modify(mm, vma, start, end, newflags, vma.anon_name)
    cdef u64 bits, mask
    prot_update(newflags, &bits, &mask)
    pt_result(pt_change_prot(&mm.pt.mm, start, end, bits, mask))
    if oldflags & (c_VM_WRITE | c_VM_SHARED | c_VM_LOCKED) == c_VM_LOCKED and newflags & c_VM_WRITE:
        mm_populate(mm, start, end, True)
    return vma
