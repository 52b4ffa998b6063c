# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
"""userfaultfd: registration (fs/userfaultfd.c) and UFFDIO_POISON (mm/userfaultfd.c).

The process's userfaultfd is created with UFFD_FEATURE_SIGBUS: no handler thread, a
missing-page fault in a registered range is SIGBUS (memory.pyx). Only the VMA flags and
the poison markers are modelled.
"""
import errno

from .. import core as _core
from .memory cimport fault_tables
from .mm_struct cimport mm_struct, check_alive
from .vma cimport anon_vma_prepare, __vma_modify

from ..args import as_int, as_ulong
from ..constants import (PAGE_MASK, PAGE_SIZE, TASK_SIZE, VM_DROPPABLE, VM_SHARED, VM_SPECIAL,
                         VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP)
from ..errors import raise_errno
from .mmap import VM_UFFD_FLAGS

UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_REGISTER_MODES = 1 | 2 | 4
# include/uapi/linux/userfaultfd.h: WAKE, COPY, ZEROPAGE, MOVE, WRITEPROTECT, CONTINUE, POISON.
UFFDIO_WRITEPROTECT_NR = 6
UFFDIO_CONTINUE_NR = 7
UFFD_RANGE_IOCTLS = sum(1 << n for n in (2, 3, 4, 5, 6, 7, 8))


def uffd_range(mm_struct mm, addr, length):
    """fs/userfaultfd.c:validate_range(), which every range ioctl starts with: start
    and length page aligned (the length is not rounded), not empty, at or above
    mmap_min_addr and inside TASK_SIZE; EINVAL otherwise. Returns (start, end)."""
    start, length = as_ulong(addr, "addr"), as_ulong(length, "length")
    if (start & ~PAGE_MASK or length & ~PAGE_MASK or not length
            or start < mm.mmap_min_addr or start >= TASK_SIZE
            or length > TASK_SIZE - start):
        raise_errno(errno.EINVAL)
    return start, start + length


def uffd_register(mm_struct mm, addr, length, mode=UFFDIO_REGISTER_MODE_MISSING):
    """UFFDIO_REGISTER on the process's userfaultfd, created with UFFD_FEATURE_SIGBUS:
    a missing-page fault in a registered range raises SIGBUS (no handler thread). Only
    the VMA flags are modelled. Returns the range ioctls mask."""
    check_alive(mm)
    start, end = uffd_range(mm, addr, length)
    mode = as_int(mode, "mode")
    if not mode or mode & ~UFFD_REGISTER_MODES:
        raise_errno(errno.EINVAL)
    vm_flags = ((VM_UFFD_MISSING if mode & 1 else 0) | (VM_UFFD_WP if mode & 2 else 0)
                | (VM_UFFD_MINOR if mode & 4 else 0))
    vmas = mm.vma_tree._overlapping(start, end)
    if not vmas or vmas[0].start > start:
        raise_errno(errno.EINVAL)
    for vma in vmas:
        regular_file = vma.file is not None and not vma.file.inode.is_shmem
        if regular_file and mode & (1 | 4) or vma.flags & (VM_SPECIAL | VM_DROPPABLE):
            raise_errno(errno.EINVAL)
    for vma in mm.vma_tree._overlapping(start, end):
        __vma_modify(mm, vma, max(vma.start, start), min(vma.end, end),
                     (vma.flags & ~VM_UFFD_FLAGS) | vm_flags, vma.anon_name)
    ioctls = UFFD_RANGE_IOCTLS
    if not mode & 2:
        ioctls &= ~(1 << UFFDIO_WRITEPROTECT_NR)
    if not mode & 4:
        ioctls &= ~(1 << UFFDIO_CONTINUE_NR)
    return ioctls


def uffd_unregister(mm_struct mm, addr, length):
    check_alive(mm)
    start, end = uffd_range(mm, addr, length)
    for vma in mm.vma_tree._overlapping(start, end):
        if vma.flags & VM_UFFD_FLAGS:
            __vma_modify(mm, vma, max(vma.start, start), min(vma.end, end),
                         vma.flags & ~VM_UFFD_FLAGS, vma.anon_name)


def install_poison(mm_struct mm, addr, length):
    """Install poison markers as UFFDIO_POISON does (mm/userfaultfd.c:mfill_atomic()):
    the range must lie in one anonymous or shmem VMA (ENOENT otherwise); a private
    VMA gets an anon_vma. Page by page, a file offset past EOF stops with EFAULT and
    an entry that is not none with EEXIST; when some pages were poisoned before the
    stop, the ioctl reports the short count as EAGAIN instead."""
    check_alive(mm)
    start, end = uffd_range(mm, addr, length)
    vma = mm.vma_tree.lookup(start)
    if vma is None or vma.end < end:
        raise_errno(errno.ENOENT)
    if vma.file is not None and not vma.file.inode.is_shmem:
        raise_errno(errno.EINVAL)
    if not vma.flags & VM_SHARED:
        anon_vma_prepare(mm, vma)
    for page in range(start, end, PAGE_SIZE):
        fault_tables(mm, page, True)     # mm_alloc_pmd(), __pte_alloc()
        if vma.file is not None and vma.pgoff_at(page) >= vma.file.inode.nr_pages:
            err = errno.EFAULT                  # mfill_file_over_size()
        elif mm.pt.lookup(page)[0] != _core.ENTRY_NONE:
            err = errno.EEXIST
        else:
            mm.pt.set_marker(page, _core.PTE_MARKER_POISONED)
            continue
        raise_errno(errno.EAGAIN if page > start else err)
