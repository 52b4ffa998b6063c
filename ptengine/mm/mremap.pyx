# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects.
"""mremap(2): mm/mremap.c (do_mremap(), move_vma(), remap_move(), vma_merge_extend()).

The size and flag checks use Python integers: they read as the kernel's, and sums may
pass 2**64.
"""
import errno

from ..core.walkers cimport pt_move_range
from .memory cimport mm_populate
from .mm_struct cimport mm_struct, check_alive, pt_result, vm_enough_memory
from .mm_types cimport VMA, u64
from .mmap cimport do_munmap, get_unmapped_area
from .vma cimport can_merge_before, do_vmi_munmap, vma_merge_new_range

from ..args import U64_MAX
from ..constants import (MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_MASK, PAGE_SHIFT,
                         PAGE_SIZE, TASK_SIZE, VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED,
                         VM_LOCKED_MASK, VM_MAYSHARE, VM_PFNMAP, VM_SEALED, VM_SHARED)
from ..errors import raise_errno
from .mmap import VM_UFFD_FLAGS, page_align

cdef u64 c_PAGE_OFFSET = PAGE_SIZE - 1


# mirrors mm/mremap.c:do_mremap()
cdef long long sys_mremap(mm_struct mm, u64 old, u64 old_size, u64 new_size, u64 flags_,
                          u64 new_address) except? -1:
    check_alive(mm)
    # Python integers below: the checks read as the kernel's, and sums may pass 2**64.
    addr, old_len, new_len, flags, new_addr = old, old_size, new_size, flags_, new_address
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise_errno(errno.EINVAL)
    if addr & ~PAGE_MASK:
        raise_errno(errno.EINVAL)
    # PAGE_ALIGN() wraps in C: ~0 becomes 0.
    old_len, new_len = page_align(old_len) & U64_MAX, page_align(new_len) & U64_MAX
    if not new_len or new_len > TASK_SIZE:
        raise_errno(errno.EINVAL)
    moves_to = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)
    if moves_to:
        if new_addr < 0 or new_addr > TASK_SIZE - new_len or new_addr & ~PAGE_MASK:
            raise_errno(errno.EINVAL)
        if not flags & MREMAP_MAYMOVE:
            raise_errno(errno.EINVAL)
        if flags & MREMAP_DONTUNMAP and old_len != new_len:
            raise_errno(errno.EINVAL)
        # vrm_overlaps(), in C arithmetic: the old end wraps past 2**64.
        if new_addr < (addr + old_len) & U64_MAX and addr < new_addr + new_len:
            raise_errno(errno.EINVAL)
        if flags & MREMAP_FIXED and mm.map_count + 2 >= mm.max_map_count - 3:
            raise_errno(errno.ENOMEM)
    if flags & MREMAP_FIXED and old_len == new_len:
        return remap_move(mm, addr, old_len, new_addr, bool(flags & MREMAP_DONTUNMAP))
    vma = mm.vma_tree.lookup(addr)
    if vma is None:
        raise_errno(errno.EFAULT)
    if vma.flags & VM_SEALED:
        raise_errno(errno.EPERM)
    if old_len == 0:
        # "Duplicate" a shared mapping: a second mapping of the same file range.
        if not vma.flags & VM_MAYSHARE:
            raise_errno(errno.EINVAL)
        if not flags & MREMAP_MAYMOVE:
            raise_errno(errno.ENOMEM)
        return _duplicate(mm, vma, addr, new_len, new_addr if moves_to else 0)
    if flags & MREMAP_DONTUNMAP and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise_errno(errno.EINVAL)
    if not moves_to and new_len <= old_len:
        # Shrink (or same size) in place: shrink_vma() munmaps the tail, which may
        # span several VMAs, and fails as munmap does past TASK_SIZE or 2**64.
        if new_len < old_len:
            do_munmap(mm, (addr + new_len) & U64_MAX, old_len - new_len)
        return addr
    if flags & MREMAP_FIXED and old_len > new_len:
        # remap_is_valid() checks only the part that stays against the first VMA
        # (EFAULT before anything changes); mremap_to() then clears the destination
        # and cuts off the tail, which may span several VMAs and holes.
        if new_len > vma.end - addr:
            raise_errno(errno.EFAULT)
        do_vmi_munmap(mm, new_addr, new_addr + new_len)
        # The destination may have covered addr: looked up again before the tail goes.
        if mm.vma_tree.lookup(addr) is None:
            raise_errno(errno.EFAULT)
        do_munmap(mm, (addr + new_len) & U64_MAX, old_len - new_len)
        old_len = new_len
        vma = mm.vma_tree.lookup(addr)
    if old_len > vma.end - addr:
        raise_errno(errno.EFAULT)
    if new_len > old_len and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise_errno(errno.EFAULT)
    if vma.flags & VM_ACCOUNT:
        # vrm_calc_charge(): the growth, or all of the new range if the old one stays.
        grown = new_len if flags & MREMAP_DONTUNMAP else max(new_len - old_len, 0)
        vm_enough_memory(mm, grown >> PAGE_SHIFT)
    if not moves_to and addr + old_len == vma.end and vma_expandable(mm, vma, new_len - old_len):
        vma_merge_extend(mm, vma, new_len - old_len)
        _populate_locked_growth(mm, vma, addr + old_len, addr + new_len)
        return addr
    if not flags & MREMAP_MAYMOVE:
        raise_errno(errno.ENOMEM)
    if flags & MREMAP_FIXED:
        do_vmi_munmap(mm, new_addr, new_addr + new_len)
        vma = mm.vma_tree.lookup(addr)
    elif not flags & MREMAP_DONTUNMAP:
        shared = bool(vma.flags & VM_SHARED)
        new_addr = get_unmapped_area(mm, 0, new_len, vma.pgoff_at(addr), False,
                                          vma.file, shared, vma.flags)
    else:
        new_addr = get_unmapped_area(mm, new_addr, new_len, vma.pgoff_at(addr), False,
                                          vma.file, bool(vma.flags & VM_SHARED), vma.flags)
    if mm.map_count >= mm.max_map_count - 3:
        raise_errno(errno.ENOMEM)
    locked = vma.flags & VM_LOCKED
    move_vma(mm, vma, addr, old_len, new_addr, new_len,
                   dontunmap=bool(flags & MREMAP_DONTUNMAP))
    if locked:
        _populate_locked_growth(mm, vma, new_addr + old_len, new_addr + new_len)
    return new_addr


def _populate_locked_growth(mm_struct mm, vma, start, end):
    """do_mremap(): the part a VM_LOCKED mapping grew by is faulted in (mm_populate(),
    which leaves VM_LOCKONFAULT alone)."""
    if start < end and vma.flags & VM_LOCKED:
        mm_populate(mm, start, end, True)


def _duplicate(mm_struct mm, vma, addr, new_len, hint):
    """A second mapping of a shared VMA's range (old_size 0). It keeps VM_LOCKED and
    VM_LOCKONFAULT: locked_vm grows by it and a VM_LOCKED one is faulted in, as for any
    mremap growth (vrm_stat_account(), mm_populate())."""
    fixed = hint != 0
    pgoff = vma.pgoff_at(addr)
    start = get_unmapped_area(mm, hint, new_len, pgoff, fixed, vma.file, True, vma.flags)
    if fixed:
        do_vmi_munmap(mm, start, start + new_len)
    vma_merge_new_range(mm, start, start + new_len, vma.flags, pgoff, vma.file)
    if vma.flags & VM_LOCKED:
        mm.locked_vm += new_len >> PAGE_SHIFT
    _populate_locked_growth(mm, vma, start, start + new_len)
    return start


def vma_expandable(mm_struct mm, vma, delta):
    """vma_expandable(): nothing up to the new end (no guard-gap exception here)."""
    end = vma.end + delta
    if end > TASK_SIZE:
        return False
    nxt = mm.vma_tree.find(vma.end)
    return nxt is None or nxt.start >= end


def vma_merge_extend(mm_struct mm, vma, delta):
    """vma_merge_extend(): grow the VMA, absorbing the next one if it then touches and
    is compatible."""
    if not 0 < delta <= TASK_SIZE - vma.end or delta & c_PAGE_OFFSET:
        raise ValueError(f"cannot grow {vma!r} by {delta:#x}")
    end = vma.end + delta
    _, nxt = mm.vma_tree.neighbours(vma)
    if can_merge_before(nxt, end, vma.flags, vma.pgoff, (end - vma.start) >> PAGE_SHIFT,
                        vma.file, vma.anon_vma, vma.anon_name):
        mm.vma_tree.remove(nxt, range_stays_mapped=True)
        vma.anon_vma = vma.anon_vma or nxt.anon_vma
        end = nxt.end
    mm.vma_tree.set_end(vma, end)
    if vma.flags & VM_LOCKED:
        mm.locked_vm += delta >> PAGE_SHIFT


def move_vma(mm_struct mm, vma, addr, old_len, new_addr, new_len, dontunmap):
    """mm/mremap.c:move_vma(): copy the VMA to new_addr (merging if it can), move the
    page tables, then unmap the old range. With DONTUNMAP the old range stays, empty,
    and the whole old VMA (not just the range) loses VM_LOCKED/VM_LOCKONFAULT, in place:
    no split, no merge, and locked_vm keeps counting it (dontunmap_complete())."""
    pgoff = vma.pgoff_at(addr)
    if vma.file is None and vma.anon_vma is None and not vma.flags & VM_SHARED:
        pgoff = new_addr >> PAGE_SHIFT
    flags = vma.flags
    anon_vma, file, name = vma.anon_vma, vma.file, vma.anon_name
    vma_merge_new_range(mm, new_addr, new_addr + new_len, flags, pgoff, file, name, anon_vma)
    # The destination is free of VMAs, so of entries; the ranges do not overlap.
    pt_result(pt_move_range(&mm.pt.mm, addr, new_addr, old_len))
    if flags & VM_LOCKED:
        mm.locked_vm += new_len >> PAGE_SHIFT          # vrm_stat_account()
    if dontunmap:
        mm.vma_tree.lookup(addr).flags &= ~VM_LOCKED_MASK
    else:
        do_vmi_munmap(mm, addr, addr + old_len)


def remap_move(mm_struct mm, addr, length, new_addr, dontunmap):
    """mm/mremap.c:remap_move() (6.17+): a MREMAP_FIXED move of unchanged size moves
    each VMA of [addr, addr + length) in turn, as a move of its own: the gaps between
    source VMAs are kept between their copies (the destination under a gap is left as
    it is), the range may not start in a gap (EFAULT), and an error on a later VMA
    leaves the earlier ones moved. Returns where the first one went."""
    end = addr + length
    vma = mm.vma_tree.find(addr)
    if vma is None or vma.start > addr:
        raise_errno(errno.EFAULT)
    target, last_end, first = new_addr, None, None
    while True:
        lo, hi = max(vma.start, addr), min(vma.end, end)
        dst = target + (0 if last_end is None else vma.start - last_end)
        last_end = vma.end
        # A userfaultfd-armed VMA can only be moved alone (vma_multi_allowed()).
        if vma.flags & VM_UFFD_FLAGS and (first is not None or vma.end < end):
            raise_errno(errno.EFAULT)
        _remap_one(mm, lo, hi - lo, dst, dontunmap)
        if first is None:
            first = dst
        target = dst + (hi - lo)
        vma = mm.vma_tree.find(hi)
        if hi == end or vma is None or vma.start >= end:
            return first


def _remap_one(mm_struct mm, addr, length, new_addr, dontunmap):
    """check_prep_vma() and mremap_to() for one VMA's part of a remap_move()."""
    vma = mm.vma_tree.lookup(addr)
    if vma.flags & VM_SEALED:
        raise_errno(errno.EPERM)
    if dontunmap and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise_errno(errno.EINVAL)
    do_vmi_munmap(mm, new_addr, new_addr + length)
    vma = mm.vma_tree.lookup(addr)     # the unmap may have split it
    if mm.map_count >= mm.max_map_count - 3:
        raise_errno(errno.ENOMEM)
    if dontunmap and vma.flags & VM_ACCOUNT:
        vm_enough_memory(mm, length >> PAGE_SHIFT)
    move_vma(mm, vma, addr, length, new_addr, length, dontunmap)
