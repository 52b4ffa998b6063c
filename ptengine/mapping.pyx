# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""mmap, munmap, mremap and brk (mm/mmap.c, mm/mremap.c, mm/vma.c).

mmap and munmap are typed (C integers, C calls into AddressSpace): they are the syscalls
every workload issues most; the rest is plain Python compiled as it is.
"""
import errno

from . import constants as C
from ._core cimport pt_move_range
from .addrspace cimport pt_result
from .argconv cimport ulong_arg
from .vma cimport VMA, new_vma, u64

from .constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_HUGETLB, MAP_LOCKED,
                        MAP_NONBLOCK, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
                        MAP_SHARED_VALIDATE, MAP_STACK, MAP_SYNC, MAP_TYPE, MAP_DENYWRITE,
                        MAP_EXECUTABLE, MAP_UNINITIALIZED, MREMAP_DONTUNMAP, MREMAP_FIXED,
                        MREMAP_MAYMOVE, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PROT_WRITE, VM_EXEC,
                        TASK_SIZE, VM_ACCOUNT, VM_DONTEXPAND, VM_GROWSDOWN, VM_LOCKED,
                        VM_LOCKED_MASK, VM_LOCKONFAULT, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE,
                        VM_MAYWRITE, VM_NOHUGEPAGE, VM_PFNMAP, VM_READ, VM_SHARED, VM_WRITE,
                        VM_SYNC, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE, VM_SEALED, VM_UFFD_MINOR,
                        VM_UFFD_MISSING, VM_UFFD_WP)
from .errors import raise_errno
from .fault import FaultHandling
from .args import U64_MAX, as_ulong
from .fs.files import File
from .vma import can_merge_after, can_merge_before, vm_start_gap

# Flags a plain MAP_SHARED / MAP_PRIVATE call accepts silently (LEGACY_MAP_MASK).
LEGACY_MAP_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                   | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                   | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB)
# The VMA flags of a userfaultfd registration (VM_UFFD_* of the modes registered).
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR
# Data segments (brk): VM_DATA_DEFAULT_FLAGS on x86-64 without READ_IMPLIES_EXEC.
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


# The flags mmap's typed path tests, as C constants (values from constants.py).
cdef u64 c_PAGE_OFFSET = C.PAGE_SIZE - 1
cdef u64 c_VM_READ = C.VM_READ, c_VM_WRITE = C.VM_WRITE, c_VM_EXEC = C.VM_EXEC
cdef u64 c_VM_MAY = C.VM_MAYREAD | C.VM_MAYWRITE | C.VM_MAYEXEC
cdef u64 c_VM_SHARED = C.VM_SHARED, c_VM_MAYSHARE = C.VM_MAYSHARE
cdef u64 c_VM_GROWSDOWN = C.VM_GROWSDOWN, c_VM_LOCKED = C.VM_LOCKED
cdef u64 c_VM_LOCKONFAULT = C.VM_LOCKONFAULT, c_VM_NORESERVE = C.VM_NORESERVE
cdef u64 c_VM_ACCOUNT = C.VM_ACCOUNT, c_VM_SPECIAL = C.VM_SPECIAL
cdef u64 c_VM_LOCKED_MASK = C.VM_LOCKED_MASK, c_VM_MAYWRITE = C.VM_MAYWRITE
cdef u64 c_VM_DROPPABLE = C.VM_DROPPABLE | C.VM_WIPEONFORK | C.VM_DONTDUMP
cdef u64 c_MAP_ANONYMOUS = C.MAP_ANONYMOUS, c_MAP_HUGETLB = C.MAP_HUGETLB
cdef u64 c_MAP_FIXED = C.MAP_FIXED, c_MAP_FIXED_NOREPLACE = C.MAP_FIXED_NOREPLACE
cdef u64 c_MAP_TYPE = C.MAP_TYPE, c_MAP_SHARED = C.MAP_SHARED, c_MAP_PRIVATE = C.MAP_PRIVATE
cdef u64 c_MAP_SHARED_VALIDATE = C.MAP_SHARED_VALIDATE, c_MAP_DROPPABLE = C.MAP_DROPPABLE
cdef u64 c_MAP_32BIT = C.MAP_32BIT, c_MAP_NORESERVE = C.MAP_NORESERVE
cdef u64 c_MAP_POPULATE = C.MAP_POPULATE, c_MAP_NONBLOCK = C.MAP_NONBLOCK
cdef u64 c_TASK_SIZE = C.TASK_SIZE


cdef u64 c_PROT_READ = C.PROT_READ, c_PROT_WRITE = C.PROT_WRITE, c_PROT_EXEC = C.PROT_EXEC
cdef u64 c_MAP_GROWSDOWN = C.MAP_GROWSDOWN, c_MAP_LOCKED = C.MAP_LOCKED
cdef u64 c_MAP_SYNC = C.MAP_SYNC, c_MAP_STACK = C.MAP_STACK
cdef u64 c_VM_SYNC = C.VM_SYNC, c_VM_NOHUGEPAGE = C.VM_NOHUGEPAGE


cpdef u64 calc_vm_prot_bits(u64 prot):
    return ((c_VM_READ if prot & c_PROT_READ else 0)
            | (c_VM_WRITE if prot & c_PROT_WRITE else 0)
            | (c_VM_EXEC if prot & c_PROT_EXEC else 0))


cpdef u64 calc_vm_flag_bits(u64 flags):
    """include/linux/mman.h:calc_vm_flag_bits(); MAP_STACK implies VM_NOHUGEPAGE (6.7+)."""
    return ((c_VM_GROWSDOWN if flags & c_MAP_GROWSDOWN else 0)
            | (c_VM_LOCKED if flags & c_MAP_LOCKED else 0)
            | (c_VM_SYNC if flags & c_MAP_SYNC else 0)
            | (c_VM_NOHUGEPAGE if flags & c_MAP_STACK else 0))


cpdef bint accountable_mapping(u64 vm_flags):
    """Private writable memory is charged to overcommit accounting (VM_ACCOUNT)."""
    return vm_flags & (c_VM_NORESERVE | c_VM_SHARED | c_VM_WRITE) == c_VM_WRITE


def page_align(n):
    return (n + PAGE_SIZE - 1) & PAGE_MASK


# MAP_HUGE_SHIFT/MAP_HUGE_MASK: where MAP_HUGETLB's page size (its log2) sits in flags; the
# hstates x86-64 has (0 = the default one, 2 MiB; 1 GiB with gbpages).
MAP_HUGE_SHIFT, MAP_HUGE_MASK = 26, 0x3F
HUGE_PAGE_SHIFTS = (0, 21, 30)


# MAX_LFS_FILESIZE: the largest offset a regular file (ext4, shmem) can be mapped at.
MAX_LFS_FILESIZE = (1 << 63) - 1


def file_mmap_ok(pgoff, length):
    """mm/mmap.c:file_mmap_ok(): the mapping must end below MAX_LFS_FILESIZE (EOVERFLOW)."""
    return length <= MAX_LFS_FILESIZE and pgoff <= (MAX_LFS_FILESIZE - length) >> PAGE_SHIFT


cdef class MappingSyscalls(FaultHandling):

    # mirrors mm/mmap.c:do_mmap() and mm/vma.c:mmap_region()
    def mmap(self, addr, length, prot, flags, fd=None, offset=0):
        return self.sys_mmap(ulong_arg(addr or 0, "addr", as_ulong),
                             ulong_arg(length, "length", as_ulong),
                             ulong_arg(prot, "prot", as_ulong),
                             ulong_arg(flags, "flags", as_ulong), fd,
                             ulong_arg(offset, "offset", as_ulong))

    cdef long long sys_mmap(self, u64 hint, u64 size, u64 p, u64 f, object fd,
                            u64 off) except? -1:
        cdef u64 pgoff, map_type, vm_flags, start
        cdef bint anonymous, fixed, shared
        cdef VMA vma
        self.check_alive()
        if fd is not None and not isinstance(fd, File):
            raise TypeError("fd must be a file object from this System or None")
        if off & c_PAGE_OFFSET:
            raise_errno(errno.EINVAL)
        anonymous = f & c_MAP_ANONYMOUS
        file = None if anonymous else fd
        if not anonymous:
            if fd is None:
                raise_errno(errno.EBADF)
            if fd.closed or fd.system is not self.system:
                raise_errno(errno.EBADF)
        if f & c_MAP_HUGETLB:
            # ksys_mmap_pgoff(): an anonymous one names its page size in flags bits 26-31
            # (0: the default); a size with no hstate is EINVAL. No hugetlb pages are
            # reserved on the reference machines, so the sizes that exist fail with ENOMEM.
            if not anonymous or (f >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK not in HUGE_PAGE_SHIFTS:
                raise_errno(errno.EINVAL)
            raise_errno(errno.ENOMEM)
        pgoff = off >> PAGE_SHIFT
        if size == 0:
            raise_errno(errno.EINVAL)
        if f & c_MAP_FIXED_NOREPLACE:
            f |= c_MAP_FIXED
        fixed = f & c_MAP_FIXED
        if not fixed:
            hint &= ~c_PAGE_OFFSET
            if hint and hint < self.mmap_min_addr:
                hint = (self.mmap_min_addr + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
        # PAGE_ALIGN(len) wrapping to 0 is ENOMEM. (pgoff + pages cannot pass 2**64 here:
        # both are below 2**52, so the kernel's EOVERFLOW for that needs no test.)
        if size > ~c_PAGE_OFFSET:
            raise_errno(errno.ENOMEM)
        size = (size + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
        if self.vma_tree._count > self.max_map_count:
            raise_errno(errno.ENOMEM)
        map_type = f & c_MAP_TYPE
        shared = map_type == c_MAP_SHARED or map_type == c_MAP_SHARED_VALIDATE
        vm_flags = calc_vm_prot_bits(p) | calc_vm_flag_bits(f) | self.def_flags | c_VM_MAY
        start = self.get_unmapped_area(hint, size, pgoff, fixed, file, shared, vm_flags,
                                       f & c_MAP_32BIT)
        if f & c_MAP_FIXED_NOREPLACE and not self.vma_tree._range_is_free(start, start + size):
            raise_errno(errno.EEXIST)
        if file is not None:
            if not file_mmap_ok(pgoff, size):
                raise_errno(errno.EOVERFLOW)
            vm_flags = self._file_vm_flags(file, map_type, f, p, vm_flags)
        elif map_type == c_MAP_SHARED:
            if vm_flags & c_VM_GROWSDOWN:
                raise_errno(errno.EINVAL)
            pgoff = 0
            vm_flags |= c_VM_SHARED | c_VM_MAYSHARE
        elif map_type == c_MAP_DROPPABLE:
            if vm_flags & (c_VM_GROWSDOWN | c_VM_LOCKED):
                raise_errno(errno.EINVAL)
            vm_flags |= c_VM_DROPPABLE
            pgoff = start >> PAGE_SHIFT
        elif map_type == c_MAP_PRIVATE:
            pgoff = start >> PAGE_SHIFT
        else:
            raise_errno(errno.EINVAL)
        if f & c_MAP_NORESERVE:
            vm_flags |= c_VM_NORESERVE
        vma = self._mmap_region(start, size, vm_flags, pgoff, file)
        if vma.flags & c_VM_LOCKED and not vma.flags & c_VM_LOCKONFAULT or \
                f & (c_MAP_POPULATE | c_MAP_NONBLOCK) == c_MAP_POPULATE:
            self.populate_range(start, start + size, True)
        return start

    def _file_vm_flags(self, file, map_type, flags, prot, vm_flags):
        """The file half of do_mmap()'s MAP_TYPE switch."""
        if vm_flags & VM_SYNC:
            # ext4 without DAX cannot honour MAP_SYNC, whatever the mapping type.
            raise_errno(errno.EOPNOTSUPP)
        if map_type == MAP_SHARED:
            flags &= LEGACY_MAP_MASK
        if map_type in (MAP_SHARED, MAP_SHARED_VALIDATE):
            if flags & ~LEGACY_MAP_MASK:
                raise_errno(errno.EOPNOTSUPP)
            if prot & PROT_WRITE and not file.writable:
                raise_errno(errno.EACCES)
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.writable:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        elif map_type != MAP_PRIVATE:
            raise_errno(errno.EINVAL)
        if not file.readable:
            raise_errno(errno.EACCES)
        if vm_flags & VM_GROWSDOWN:
            raise_errno(errno.EINVAL)
        return vm_flags

    cpdef VMA _mmap_region(self, u64 start, u64 length, u64 vm_flags, u64 pgoff, file):
        """mm/vma.c:__mmap_region(): replace whatever is at [start, end), then merge or
        insert. The shmem write-seal check happens before the old mappings go."""
        cdef u64 end = start + length, recharged = 0
        cdef list old
        cdef VMA v
        if (not length or (start | length) & c_PAGE_OFFSET or start > c_TASK_SIZE
                or length > c_TASK_SIZE - start):
            raise ValueError(f"_mmap_region: bad range {start:#x} + {length:#x}")
        if file is not None and file.inode.kind == "memfd" and vm_flags & c_VM_SHARED:
            if file.inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
                if vm_flags & c_VM_WRITE:
                    raise_errno(errno.EPERM)
                vm_flags &= ~c_VM_MAYWRITE
        # The old mappings are gathered (split, seals checked), then the commit charge is
        # taken (pages already charged under them are given back), then they go.
        old = self.gather_unmap(start, end)
        if accountable_mapping(vm_flags):
            for v in old:
                if v.flags & c_VM_ACCOUNT:
                    recharged += (v.end - v.start) >> PAGE_SHIFT
            self.vm_enough_memory((length >> PAGE_SHIFT) - recharged)
            vm_flags |= c_VM_ACCOUNT
        elif file is None and vm_flags & c_VM_SHARED and not vm_flags & c_VM_NORESERVE:
            self.vm_enough_memory(length >> PAGE_SHIFT)      # shmem_acct_size()
        if old:
            self.remove_vmas(old)
        if file is None and vm_flags & c_VM_SHARED:
            file = self.system.shmem_zero_setup(length)
        if vm_flags & c_VM_LOCKED and vm_flags & c_VM_SPECIAL:
            vm_flags &= ~c_VM_LOCKED_MASK
        v = self.map_range(start, end, vm_flags | self.profile.new_vma_flags, pgoff, file)
        if vm_flags & c_VM_LOCKED:
            self.locked_vm += length >> PAGE_SHIFT
        return v

    # mirrors mm/mmap.c:__vm_munmap()
    def munmap(self, addr, length):
        self.sys_munmap(ulong_arg(addr, "addr", as_ulong), ulong_arg(length, "length", as_ulong))

    cdef long long sys_munmap(self, u64 addr, u64 length) except? -1:
        self.check_alive()
        self.do_munmap(addr, length)
        return 0

    cdef do_munmap(self, u64 start, u64 size):
        """mm/vma.c:do_vmi_munmap(), for munmap and for the tail mremap cuts off: the range
        must start page aligned and end at or below TASK_SIZE (no wrapping past 2**64),
        EINVAL otherwise; the length rounds up to pages."""
        if start & c_PAGE_OFFSET or start > c_TASK_SIZE or size > c_TASK_SIZE - start:
            raise_errno(errno.EINVAL)
        size = (size + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
        if size == 0:
            raise_errno(errno.EINVAL)
        self.unmap_range(start, start + size)

    # mirrors mm/mremap.c:do_mremap()
    def mremap(self, old_address, old_size, new_size, flags=0, new_address=0):
        return self.sys_mremap(ulong_arg(old_address, "old_address", as_ulong),
                               ulong_arg(old_size, "old_size", as_ulong),
                               ulong_arg(new_size, "new_size", as_ulong),
                               ulong_arg(flags, "flags", as_ulong),
                               ulong_arg(new_address or 0, "new_address", as_ulong))

    cdef long long sys_mremap(self, u64 old, u64 old_size, u64 new_size, u64 flags_,
                              u64 new_address) except? -1:
        self.check_alive()
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
            if flags & MREMAP_FIXED and self.map_count + 2 >= self.max_map_count - 3:
                raise_errno(errno.ENOMEM)
        if flags & MREMAP_FIXED and old_len == new_len:
            return self._remap_move(addr, old_len, new_addr, bool(flags & MREMAP_DONTUNMAP))
        vma = self.vma_tree.lookup(addr)
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
            return self._duplicate(vma, addr, new_len, new_addr if moves_to else 0)
        if flags & MREMAP_DONTUNMAP and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
            raise_errno(errno.EINVAL)
        if not moves_to and new_len <= old_len:
            # Shrink (or same size) in place: shrink_vma() munmaps the tail, which may
            # span several VMAs, and fails as munmap does past TASK_SIZE or 2**64.
            if new_len < old_len:
                self.do_munmap((addr + new_len) & U64_MAX, old_len - new_len)
            return addr
        if flags & MREMAP_FIXED and old_len > new_len:
            # remap_is_valid() checks only the part that stays against the first VMA
            # (EFAULT before anything changes); mremap_to() then clears the destination
            # and cuts off the tail, which may span several VMAs and holes.
            if new_len > vma.end - addr:
                raise_errno(errno.EFAULT)
            self.unmap_range(new_addr, new_addr + new_len)
            # The destination may have covered addr: looked up again before the tail goes.
            if self.vma_tree.lookup(addr) is None:
                raise_errno(errno.EFAULT)
            self.do_munmap((addr + new_len) & U64_MAX, old_len - new_len)
            old_len = new_len
            vma = self.vma_tree.lookup(addr)
        if old_len > vma.end - addr:
            raise_errno(errno.EFAULT)
        if new_len > old_len and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
            raise_errno(errno.EFAULT)
        if vma.flags & VM_ACCOUNT:
            # vrm_calc_charge(): the growth, or all of the new range if the old one stays.
            grown = new_len if flags & MREMAP_DONTUNMAP else max(new_len - old_len, 0)
            self.vm_enough_memory(grown >> PAGE_SHIFT)
        if not moves_to and addr + old_len == vma.end and self._expandable(vma, new_len - old_len):
            self._expand_in_place(vma, new_len - old_len)
            self._populate_locked_growth(vma, addr + old_len, addr + new_len)
            return addr
        if not flags & MREMAP_MAYMOVE:
            raise_errno(errno.ENOMEM)
        if flags & MREMAP_FIXED:
            self.unmap_range(new_addr, new_addr + new_len)
            vma = self.vma_tree.lookup(addr)
        elif not flags & MREMAP_DONTUNMAP:
            shared = bool(vma.flags & VM_SHARED)
            new_addr = self.get_unmapped_area(0, new_len, vma.pgoff_at(addr), False,
                                              vma.file, shared, vma.flags)
        else:
            new_addr = self.get_unmapped_area(new_addr, new_len, vma.pgoff_at(addr), False,
                                              vma.file, bool(vma.flags & VM_SHARED), vma.flags)
        if self.map_count >= self.max_map_count - 3:
            raise_errno(errno.ENOMEM)
        locked = vma.flags & VM_LOCKED
        self._move_vma(vma, addr, old_len, new_addr, new_len,
                       dontunmap=bool(flags & MREMAP_DONTUNMAP))
        if locked:
            self._populate_locked_growth(vma, new_addr + old_len, new_addr + new_len)
        return new_addr

    def _populate_locked_growth(self, vma, start, end):
        """do_mremap(): the part a VM_LOCKED mapping grew by is faulted in (mm_populate(),
        which leaves VM_LOCKONFAULT alone)."""
        if start < end and vma.flags & VM_LOCKED:
            self.populate_range(start, end, True)

    def _duplicate(self, vma, addr, new_len, hint):
        """A second mapping of a shared VMA's range (old_size 0). It keeps VM_LOCKED and
        VM_LOCKONFAULT: locked_vm grows by it and a VM_LOCKED one is faulted in, as for any
        mremap growth (vrm_stat_account(), mm_populate())."""
        fixed = hint != 0
        pgoff = vma.pgoff_at(addr)
        start = self.get_unmapped_area(hint, new_len, pgoff, fixed, vma.file, True, vma.flags)
        if fixed:
            self.unmap_range(start, start + new_len)
        self.map_range(start, start + new_len, vma.flags, pgoff, vma.file)
        if vma.flags & VM_LOCKED:
            self.locked_vm += new_len >> PAGE_SHIFT
        self._populate_locked_growth(vma, start, start + new_len)
        return start

    def _expandable(self, vma, delta):
        """vma_expandable(): nothing up to the new end (no guard-gap exception here)."""
        end = vma.end + delta
        if end > TASK_SIZE:
            return False
        nxt = self.vma_tree.find(vma.end)
        return nxt is None or nxt.start >= end

    def _expand_in_place(self, vma, delta):
        """vma_merge_extend(): grow the VMA, absorbing the next one if it then touches and
        is compatible."""
        if not 0 < delta <= TASK_SIZE - vma.end or delta & c_PAGE_OFFSET:
            raise ValueError(f"cannot grow {vma!r} by {delta:#x}")
        end = vma.end + delta
        _, nxt = self.vma_tree.neighbours(vma)
        if can_merge_before(nxt, end, vma.flags, vma.pgoff, (end - vma.start) >> PAGE_SHIFT,
                            vma.file, vma.anon_vma, vma.anon_name):
            self.vma_tree.remove(nxt, range_stays_mapped=True)
            vma.anon_vma = vma.anon_vma or nxt.anon_vma
            end = nxt.end
        self.vma_tree.set_end(vma, end)
        if vma.flags & VM_LOCKED:
            self.locked_vm += delta >> PAGE_SHIFT

    def _move_vma(self, vma, addr, old_len, new_addr, new_len, dontunmap):
        """mm/mremap.c:move_vma(): copy the VMA to new_addr (merging if it can), move the
        page tables, then unmap the old range. With DONTUNMAP the old range stays, empty,
        and the whole old VMA (not just the range) loses VM_LOCKED/VM_LOCKONFAULT, in place:
        no split, no merge, and locked_vm keeps counting it (dontunmap_complete())."""
        pgoff = vma.pgoff_at(addr)
        if vma.file is None and vma.anon_vma is None and not vma.flags & VM_SHARED:
            pgoff = new_addr >> PAGE_SHIFT
        flags = vma.flags
        anon_vma, file, name = vma.anon_vma, vma.file, vma.anon_name
        self.map_range(new_addr, new_addr + new_len, flags, pgoff, file, name, anon_vma)
        # The destination is free of VMAs, so of entries; the ranges do not overlap.
        pt_result(pt_move_range(&self.pt.mm, addr, new_addr, old_len))
        if flags & VM_LOCKED:
            self.locked_vm += new_len >> PAGE_SHIFT          # vrm_stat_account()
        if dontunmap:
            self.vma_tree.lookup(addr).flags &= ~VM_LOCKED_MASK
        else:
            self.unmap_range(addr, addr + old_len)

    def _remap_move(self, addr, length, new_addr, dontunmap):
        """mm/mremap.c:remap_move() (6.17+): a MREMAP_FIXED move of unchanged size moves
        each VMA of [addr, addr + length) in turn, as a move of its own: the gaps between
        source VMAs are kept between their copies (the destination under a gap is left as
        it is), the range may not start in a gap (EFAULT), and an error on a later VMA
        leaves the earlier ones moved. Returns where the first one went."""
        end = addr + length
        vma = self.vma_tree.find(addr)
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
            self._remap_one(lo, hi - lo, dst, dontunmap)
            if first is None:
                first = dst
            target = dst + (hi - lo)
            vma = self.vma_tree.find(hi)
            if hi == end or vma is None or vma.start >= end:
                return first

    def _remap_one(self, addr, length, new_addr, dontunmap):
        """check_prep_vma() and mremap_to() for one VMA's part of a remap_move()."""
        vma = self.vma_tree.lookup(addr)
        if vma.flags & VM_SEALED:
            raise_errno(errno.EPERM)
        if dontunmap and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
            raise_errno(errno.EINVAL)
        self.unmap_range(new_addr, new_addr + length)
        vma = self.vma_tree.lookup(addr)     # the unmap may have split it
        if self.map_count >= self.max_map_count - 3:
            raise_errno(errno.ENOMEM)
        if dontunmap and vma.flags & VM_ACCOUNT:
            self.vm_enough_memory(length >> PAGE_SHIFT)
        self._move_vma(vma, addr, length, new_addr, length, dontunmap)

    # mirrors mm/mmap.c:brk()
    def brk(self, addr):
        return self.sys_brk(ulong_arg(addr or 0, "addr", as_ulong))

    cdef long long sys_brk(self, u64 addr_) except? -1:
        self.check_alive()
        addr = addr_                # a Python integer: page_align() may pass 2**64
        if addr < self.start_brk:
            return self.brk_end
        # PAGE_ALIGN() wraps in C: a break near 2**64 asks for a length no check passes.
        newbrk, oldbrk = page_align(addr) & U64_MAX, page_align(self.brk_end)
        if oldbrk == newbrk:
            self.brk_end = addr
            return addr
        if addr <= self.brk_end:
            # Shrinking needs a VMA in [newbrk, oldbrk): a heap unmapped by munmap stays
            # where it was, and so does the break.
            brkvma = self.vma_tree.find(newbrk)
            if brkvma is None or brkvma.start >= oldbrk:
                return self.brk_end
            try:
                self.unmap_range(newbrk, oldbrk)
            except OSError:
                return self.brk_end
            self.brk_end = addr
            return addr
        length = (newbrk - oldbrk) & U64_MAX
        if length > TASK_SIZE or oldbrk > TASK_SIZE - length:
            return self.brk_end                 # check_brk_limits()
        nxt = self.vma_tree.find(oldbrk)
        if nxt is not None and newbrk + PAGE_SIZE > vm_start_gap(nxt):
            return self.brk_end
        # vma_prev_limit(start_brk): only a VMA reaching above start_brk is the heap; the
        # bss ending at start_brk is never grown (a new [heap] VMA starts there).
        brkvma = self.vma_tree._prev_next(oldbrk, newbrk)[0]
        if brkvma is not None and brkvma.end <= self.start_brk:
            brkvma = None
        try:
            self._do_brk_flags(brkvma, oldbrk, length, 0)
        except OSError:
            return self.brk_end
        self.brk_end = addr
        if self.def_flags & VM_LOCKED and not self.def_flags & VM_LOCKONFAULT:
            self.populate_range(oldbrk, newbrk, True)
        return addr

    # mirrors mm/mmap.c:vm_brk_flags()
    def vm_brk_flags(self, addr, length, flags):
        """exec's mapping of a bss beyond the file (fs/binfmt_elf.c:elf_load()): brk's
        kind of VMA at a given place, over whatever was there; flags may add VM_EXEC."""
        addr, length = as_ulong(addr, "addr"), page_align(as_ulong(length, "length"))
        if flags & ~VM_EXEC:
            raise_errno(errno.EINVAL)
        if not length:
            return
        self.get_unmapped_area(addr, length, 0, True, None, False, 0)   # check_brk_limits()
        self.unmap_range(addr, addr + length)
        self._do_brk_flags(self.vma_tree._prev_next(addr, addr + length)[0], addr, length,
                           flags)

    def _do_brk_flags(self, prev, addr, length, flags):
        """mm/vma.c:do_brk_flags(): anonymous data at [addr, addr + length), charged to the
        commit limit. Only `prev` may grow over it (when it ends at addr and could merge):
        brk never joins the VMA above, nor any VMA the caller did not pass."""
        flags |= VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | self.def_flags | self.profile.new_vma_flags
        if self.map_count > self.max_map_count:
            raise_errno(errno.ENOMEM)
        self.vm_enough_memory(length >> PAGE_SHIFT)
        pgoff = addr >> PAGE_SHIFT
        if can_merge_after(prev, addr, flags, pgoff, None, None, None):
            self.vma_tree.set_end(prev, addr + length)
        else:
            self.vma_tree.insert(new_vma(addr, addr + length, flags, pgoff, None, None, None))
        if flags & VM_LOCKED:
            self.locked_vm += length >> PAGE_SHIFT
