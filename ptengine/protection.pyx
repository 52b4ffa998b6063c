# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""mprotect, the mlock family, mseal and anonymous VMA names.

Every range syscall has one shape: validate, walk the VMAs of the range, modify each piece
(vma_modify: merge or split), and report ENOMEM for holes the way its kernel path does.
The walks and mprotect's path are typed (C integers, C calls): mprotect is one of the
syscalls workloads issue by the thousand.
"""
import errno
import re

from . import constants as C
from ._core cimport pt_change_prot
from .addrspace cimport pt_result
from .argconv cimport ulong_arg
from .vma cimport VMA, u64
from .mapping cimport calc_vm_prot_bits

from . import core as _core
from .constants import (ANON_VMA_NAME_MAX_LEN, MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT,
                        MLOCK_ONFAULT, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, VM_ACCOUNT,
                        VM_DROPPABLE, VM_HUGETLB, VM_LOCKED, VM_LOCKED_MASK, VM_LOCKONFAULT,
                        VM_SEALED, VM_SHARED, VM_SPECIAL, VM_WRITE, VM_UFFD_MISSING,
                        VM_UFFD_WP, VM_UFFD_MINOR)
from .errors import raise_errno
from .mapping import VM_UFFD_FLAGS, MappingSyscalls
from .args import U64_MAX, as_int, as_ulong, page_range

UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_REGISTER_MODES = 1 | 2 | 4
# include/uapi/linux/userfaultfd.h: WAKE, COPY, ZEROPAGE, MOVE, WRITEPROTECT, CONTINUE, POISON.
UFFDIO_WRITEPROTECT_NR = 6
UFFDIO_CONTINUE_NR = 7
UFFD_RANGE_IOCTLS = sum(1 << n for n in (2, 3, 4, 5, 6, 7, 8))

cdef u64 PTE_P = _core.PTE_PRESENT, PTE_RW = _core.PTE_RW
cdef u64 PTE_PROTNONE = _core.PTE_PROTNONE, PTE_NX = _core.PTE_NX
cdef u64 c_PAGE_SIZE = C.PAGE_SIZE, c_PAGE_OFFSET = C.PAGE_SIZE - 1
cdef u64 c_VM_WRITE = C.VM_WRITE, c_VM_EXEC = C.VM_EXEC, c_VM_ACCESS = C.VM_ACCESS_FLAGS
cdef u64 c_VM_SEALED = C.VM_SEALED, c_VM_ACCOUNT = C.VM_ACCOUNT, c_VM_LOCKED = C.VM_LOCKED
cdef u64 c_VM_SHARED = C.VM_SHARED, c_VM_GROWSDOWN = C.VM_GROWSDOWN
cdef u64 c_NO_CHARGE = C.VM_ACCOUNT | C.VM_WRITE | C.VM_HUGETLB | C.VM_SHARED | C.VM_NORESERVE
cdef u64 c_PROT_GROWS = C.PROT_GROWSDOWN | C.PROT_GROWSUP
cdef u64 c_NEVER_LOCKED = C.VM_SPECIAL | C.VM_HUGETLB | C.VM_DROPPABLE
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


# --- per-VMA steps of the walks (visitors) ------------------------------------------------

cdef object mprotect_vma(object mm, VMA vma, u64 start, u64 end, object prot):
    """One VMA piece of do_mprotect_pkey()'s loop."""
    cdef u64 newflags = calc_vm_prot_bits(prot) | (vma.flags & ~c_VM_ACCESS)
    # VM_MAY* sit four bits above the VM_* they allow.
    if newflags & ~(newflags >> 4) & c_VM_ACCESS:
        raise_errno(errno.EACCES)
    return (<ProtectionSyscalls>mm)._mprotect_fixup(vma, start, end, newflags)


cdef object mlock_vma(object mm, VMA vma, u64 start, u64 end, object lock_flags):
    return (<ProtectionSyscalls>mm).mlock_fixup(vma, start, end,
                                               (vma.flags & ~VM_LOCKED_MASK) | lock_flags)


cdef object name_vma(object mm, VMA vma, u64 start, u64 end, object name):
    """madvise_vma_anon_name(): files other than shared anonymous memory are EBADF."""
    if vma.file is not None and vma.file.inode.kind != "shmem_anon":
        raise_errno(errno.EBADF)
    return (<ProtectionSyscalls>mm).modify_range(vma, start, end, None, name)


# mm/madvise.c:is_valid_name_char(): printable ASCII, and none of \ ` $ [ ].
INVALID_NAME_CHAR = re.compile(r"[^\x20-\x7e]|[\\`$\[\]]")


cdef class ProtectionSyscalls(MappingSyscalls):

    cdef walk_vmas(self, u64 start, u64 end, vma_visitor visit, object arg):
        """mm/madvise.c:madvise_walk_vmas(): call visit(self, vma, lo, hi, arg) for each VMA
        piece of [start, end); visit returns the VMA now covering [lo, hi). A hole makes
        the result ENOMEM after every mapped part was visited; the first error stops."""
        cdef bint unmapped = False
        cdef u64 hi
        cdef VMA vma = self.vma_tree._find(start), done
        while True:
            if vma is None:
                raise_errno(errno.ENOMEM)
            if start < vma.start:
                unmapped = True
                start = vma.start
                if start >= end:
                    break
            hi = min(vma.end, end)
            done = visit(self, vma, start, hi, arg)
            start = hi
            if done is not None and start < done.end:
                start = done.end
            if start >= end:
                break
            vma = self.vma_tree._find(start)
        if unmapped:
            raise_errno(errno.ENOMEM)

    # mirrors mm/mprotect.c:do_mprotect_pkey()
    def mprotect(self, addr, length, prot):
        self.sys_mprotect(ulong_arg(addr, "addr", as_ulong),
                          ulong_arg(length, "length", as_ulong),
                          ulong_arg(prot, "prot", as_ulong))

    cdef long long sys_mprotect(self, u64 start, u64 size, u64 p) except? -1:
        cdef u64 end
        cdef u64 grows = p & c_PROT_GROWS
        cdef VMA vma
        self.check_alive()
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
        vma = self.vma_tree._find(start)
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
        self.walk_contiguous(vma, start, end, mprotect_vma, p)
        return 0

    cdef walk_contiguous(self, VMA vma, u64 start, u64 end, vma_visitor fixup, object arg):
        """The loop of do_mprotect_pkey() and apply_vma_lock_flags(): fixup(self, vma, lo,
        hi, arg) for each VMA piece of [start, end), from `vma` (which holds start) on; a
        hole stops the walk with ENOMEM, keeping the changes already made."""
        cdef u64 nstart = start, tmp
        while True:
            if vma.start > nstart:
                raise_errno(errno.ENOMEM)
            tmp = min(vma.end, end)
            fixup(self, vma, nstart, tmp, arg)
            nstart = tmp
            if nstart >= end:
                return
            vma = self.vma_tree._find(nstart)
            if vma is None or vma.start >= end:
                raise_errno(errno.ENOMEM)

    cpdef VMA _mprotect_fixup(self, VMA vma, u64 start, u64 end, u64 newflags):
        """mm/mprotect.c:mprotect_fixup(): seal check, VM_ACCOUNT bookkeeping, vma_modify,
        then change_protection() on the PTEs."""
        self.check_piece(vma, start, end)
        cdef u64 oldflags = vma.flags
        if oldflags & c_VM_SEALED:
            raise_errno(errno.EPERM)
        if newflags == oldflags:
            return vma
        if newflags & c_VM_WRITE:
            if not oldflags & c_NO_CHARGE:
                self.vm_enough_memory((end - start) >> PAGE_SHIFT)
                newflags |= c_VM_ACCOUNT
        elif oldflags & c_VM_ACCOUNT and vma.file is None and vma.anon_vma is None:
            newflags &= ~c_VM_ACCOUNT
        vma = self.modify_range(vma, start, end, newflags)
        cdef u64 bits, mask
        prot_update(newflags, &bits, &mask)
        pt_result(pt_change_prot(&self.pt.mm, start, end, bits, mask))
        if oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
            self.populate_range(start, end, True)
        return vma

    # --- mlock family (mm/mlock.c) -------------------------------------------------------
    def mlock(self, addr, length, flags=0):
        """mlock(2), or mlock2(2) when flags are given."""
        self.sys_mlock(ulong_arg(addr, "addr", as_ulong),
                       ulong_arg(length, "length", as_ulong),
                       ulong_arg(flags, "flags", as_ulong))

    cdef long long sys_mlock(self, u64 addr, u64 length, u64 flags) except? -1:
        # mlock2() takes an int: the low 32 bits of the register, as as_cint() reads them.
        cdef int f = <int><unsigned int>flags
        self.check_alive()
        if f & ~MLOCK_ONFAULT:
            raise_errno(errno.EINVAL)
        vm_flags = VM_LOCKED | (VM_LOCKONFAULT if f & MLOCK_ONFAULT else 0)
        start, end = self._mlock_range(addr, length)
        if end == start:
            return 0
        self._apply_vma_lock_flags(start, end, vm_flags)
        err = self.populate_range(start, end, False)
        if err == errno.EFAULT:
            raise_errno(errno.ENOMEM)
        if err == errno.ENOMEM:
            raise_errno(errno.EAGAIN)
        if err:
            raise_errno(err)
        return 0

    def munlock(self, addr, length):
        self.sys_munlock(ulong_arg(addr, "addr", as_ulong),
                         ulong_arg(length, "length", as_ulong))

    cdef long long sys_munlock(self, u64 addr, u64 length) except? -1:
        self.check_alive()
        start, end = self._mlock_range(addr, length)
        if end != start:
            self._apply_vma_lock_flags(start, end, 0)
        return 0

    @staticmethod
    def _mlock_range(addr, length):
        """do_mlock(): the start rounds down, the length up (wrapping like PAGE_ALIGN() in
        C: ~0 becomes 0); a range past the top of the address space is EINVAL."""
        length = (length + (addr & ~PAGE_MASK) + PAGE_SIZE - 1) & PAGE_MASK & U64_MAX
        start = addr & PAGE_MASK
        if start + length > U64_MAX:
            raise_errno(errno.EINVAL)
        return start, start + length

    def _apply_vma_lock_flags(self, start, end, lock_flags):
        """apply_vma_lock_flags(): the range must start inside a VMA; a hole met on the way
        ends the walk with ENOMEM, keeping what was already changed."""
        vma = self.vma_tree.lookup(start)
        if vma is None:
            raise_errno(errno.ENOMEM)
        self.walk_contiguous(vma, start, end, mlock_vma, lock_flags)

    cdef VMA mlock_fixup(self, VMA vma, u64 start, u64 end, u64 newflags):
        """mlock_fixup(): special, hugetlb and droppable VMAs are never locked; locked_vm
        follows VM_LOCKED going on or off."""
        cdef u64 oldflags = vma.flags
        cdef long long pages
        if newflags == oldflags or oldflags & c_NEVER_LOCKED:
            return vma
        vma = self.modify_range(vma, start, end, newflags)
        if (newflags ^ oldflags) & c_VM_LOCKED:
            pages = (end - start) >> PAGE_SHIFT
            self.locked_vm += pages if newflags & c_VM_LOCKED else -pages
        return vma

    def mlockall(self, flags):
        self.sys_mlockall(ulong_arg(flags, "flags", as_ulong))

    cdef long long sys_mlockall(self, u64 flags) except? -1:
        # mlockall() takes an int: the low 32 bits of the register, as as_cint() reads them.
        cdef int f = <int><unsigned int>flags
        self.check_alive()
        if not f or f & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or f == MCL_ONFAULT:
            raise_errno(errno.EINVAL)
        self._apply_mlockall_flags(f)
        if f & MCL_CURRENT:
            self.populate_range(0, TASK_SIZE, True)
        return 0

    def munlockall(self):
        self.sys_munlockall()

    cdef long long sys_munlockall(self) except? -1:
        self.check_alive()
        self._apply_mlockall_flags(0)
        return 0

    def _apply_mlockall_flags(self, flags):
        self.def_flags &= ~VM_LOCKED_MASK
        if flags & MCL_FUTURE:
            self.def_flags |= VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
            if not flags & MCL_CURRENT:
                return
        to_add = 0
        if flags & MCL_CURRENT:
            to_add = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
        for vma in list(self.vma_tree):
            try:
                self.mlock_fixup(vma, vma.start, vma.end, (vma.flags & ~VM_LOCKED_MASK) | to_add)
            except OSError:
                pass        # errors are ignored, as the kernel does

    # mirrors mm/mseal.c:do_mseal()
    def mseal(self, addr, length, flags=0):
        self.sys_mseal(ulong_arg(addr, "addr", as_ulong),
                       ulong_arg(length, "length", as_ulong),
                       ulong_arg(flags, "flags", as_ulong))

    cdef long long sys_mseal(self, u64 addr, u64 length, u64 flags) except? -1:
        self.check_alive()
        if flags:
            raise_errno(errno.EINVAL)
        start, end = page_range(addr, length)
        if end == start:
            return 0
        # First pass: the whole range must be mapped, so nothing is half sealed.
        pos = start
        for vma in self.vma_tree._overlapping(start, end):
            if vma.start > pos:
                raise_errno(errno.ENOMEM)
            pos = vma.end
        if pos < end:
            raise_errno(errno.ENOMEM)
        for vma in self.vma_tree._overlapping(start, end):
            if not vma.flags & VM_SEALED:
                self.modify_range(vma, max(vma.start, start), min(vma.end, end),
                                  vma.flags | VM_SEALED)
        return 0

    # mirrors kernel/sys.c:prctl_set_vma() and mm/madvise.c:madvise_set_anon_name()
    def set_anon_name(self, addr, length, name):
        self.sys_set_anon_name(ulong_arg(addr, "addr", as_ulong),
                               ulong_arg(length, "length", as_ulong), name)

    cdef long long sys_set_anon_name(self, u64 addr, u64 length, object name) except? -1:
        self.check_alive()
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("latin-1")
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be str, bytes or None")
        if not self.profile.anon_vma_name:
            raise_errno(errno.EINVAL)
        if name is not None:
            if len(name.encode("latin-1", "replace")) >= ANON_VMA_NAME_MAX_LEN:
                raise_errno(errno.EINVAL)
            if INVALID_NAME_CHAR.search(name):
                raise_errno(errno.EINVAL)
        start, end = page_range(addr, length)
        if end == start:
            return 0
        self.walk_vmas(start, end, name_vma, name)
        return 0

    # --- userfaultfd registration (fs/userfaultfd.c) --------------------------------------
    def uffd_range(self, addr, length):
        """fs/userfaultfd.c:validate_range(), which every range ioctl starts with: start
        and length page aligned (the length is not rounded), not empty, at or above
        mmap_min_addr and inside TASK_SIZE; EINVAL otherwise. Returns (start, end)."""
        start, length = as_ulong(addr, "addr"), as_ulong(length, "length")
        if (start & ~PAGE_MASK or length & ~PAGE_MASK or not length
                or start < self.mmap_min_addr or start >= TASK_SIZE
                or length > TASK_SIZE - start):
            raise_errno(errno.EINVAL)
        return start, start + length

    def uffd_register(self, addr, length, mode=UFFDIO_REGISTER_MODE_MISSING):
        """UFFDIO_REGISTER on the process's userfaultfd, created with UFFD_FEATURE_SIGBUS:
        a missing-page fault in a registered range raises SIGBUS (no handler thread). Only
        the VMA flags are modelled. Returns the range ioctls mask."""
        self.check_alive()
        start, end = self.uffd_range(addr, length)
        mode = as_int(mode, "mode")
        if not mode or mode & ~UFFD_REGISTER_MODES:
            raise_errno(errno.EINVAL)
        vm_flags = ((VM_UFFD_MISSING if mode & 1 else 0) | (VM_UFFD_WP if mode & 2 else 0)
                    | (VM_UFFD_MINOR if mode & 4 else 0))
        vmas = self.vma_tree._overlapping(start, end)
        if not vmas or vmas[0].start > start:
            raise_errno(errno.EINVAL)
        for vma in vmas:
            regular_file = vma.file is not None and not vma.file.inode.is_shmem
            if regular_file and mode & (1 | 4) or vma.flags & (VM_SPECIAL | VM_DROPPABLE):
                raise_errno(errno.EINVAL)
        for vma in self.vma_tree._overlapping(start, end):
            self.modify_range(vma, max(vma.start, start), min(vma.end, end),
                              (vma.flags & ~VM_UFFD_FLAGS) | vm_flags)
        ioctls = UFFD_RANGE_IOCTLS
        if not mode & 2:
            ioctls &= ~(1 << UFFDIO_WRITEPROTECT_NR)
        if not mode & 4:
            ioctls &= ~(1 << UFFDIO_CONTINUE_NR)
        return ioctls

    def uffd_unregister(self, addr, length):
        self.check_alive()
        start, end = self.uffd_range(addr, length)
        for vma in self.vma_tree._overlapping(start, end):
            if vma.flags & VM_UFFD_FLAGS:
                self.modify_range(vma, max(vma.start, start), min(vma.end, end),
                                  vma.flags & ~VM_UFFD_FLAGS)
