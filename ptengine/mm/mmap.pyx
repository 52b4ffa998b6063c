# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True, auto_pickle=False
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""mmap and munmap, and where new mappings go (mm/mmap.c, mm/vma.c:__mmap_region(),
arch/x86/kernel/sys_x86_64.c, mm/huge_memory.c:thp_get_unmapped_area()).

sys_mmap() and sys_munmap() are typed (C integers, C calls into vma.pyx and the VMA tree):
they are the syscalls every workload issues most.
"""
import errno

from .. import constants as C
from .memory cimport mm_populate
from .mm_struct cimport mm_struct, check_alive, vm_enough_memory
from .mm_types cimport VMA, u64, vm_start_gap
from .vma cimport gather_munmap_vmas, vms_complete_munmap_vmas, do_vmi_munmap, vma_merge_new_range
from .vmatree cimport VMATree

from ..constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_HUGETLB, MAP_LOCKED,
                         MAP_NONBLOCK, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
                         MAP_SHARED_VALIDATE, MAP_STACK, MAP_TYPE, MAP_DENYWRITE,
                         MAP_EXECUTABLE, MAP_UNINITIALIZED, PROT_WRITE, VM_GROWSDOWN,
                         VM_MAYSHARE, VM_MAYWRITE, VM_SHARED, VM_SYNC, F_SEAL_WRITE,
                         F_SEAL_FUTURE_WRITE, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP)
from ..errors import raise_errno
from ..fs.files import File

# Flags a plain MAP_SHARED / MAP_PRIVATE call accepts silently (LEGACY_MAP_MASK).
LEGACY_MAP_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                   | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                   | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB)
# The VMA flags of a userfaultfd registration (VM_UFFD_* of the modes registered).
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR


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

# The placement search's constants (as vma.c had them).
cdef unsigned long long MAX_ERRNO = 4095
cdef int PAGE_SHIFT = C.PAGE_SHIFT
cdef unsigned long long PAGE_SIZE = C.PAGE_SIZE, PMD_SIZE = C.PMD_SIZE
cdef unsigned long long PAGE_MASK = C.PAGE_MASK & 0xFFFFFFFFFFFFFFFF   # ~(PAGE_SIZE - 1)
cdef unsigned long long TASK_SIZE = C.TASK_SIZE, TASK_UNMAPPED_BASE = C.TASK_UNMAPPED_BASE
# find_start_end(): the window of MAP_32BIT mappings on x86-64 (not randomised).
cdef unsigned long long MAP_32BIT_BASE = 0x40000000, MAP_32BIT_END = 0x80000000


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
    """PAGE_ALIGN() on a Python integer (the callers wrap it to 64 bits where C would)."""
    return (n + C.PAGE_SIZE - 1) & C.PAGE_MASK


# MAP_HUGE_SHIFT/MAP_HUGE_MASK: where MAP_HUGETLB's page size (its log2) sits in flags; the
# hstates x86-64 has (0 = the default one, 2 MiB; 1 GiB with gbpages).
MAP_HUGE_SHIFT, MAP_HUGE_MASK = 26, 0x3F
HUGE_PAGE_SHIFTS = (0, 21, 30)


# MAX_LFS_FILESIZE: the largest offset a regular file (ext4, shmem) can be mapped at.
MAX_LFS_FILESIZE = (1 << 63) - 1


def file_mmap_ok(pgoff, length):
    """mm/mmap.c:file_mmap_ok(): the mapping must end below MAX_LFS_FILESIZE (EOVERFLOW)."""
    return length <= MAX_LFS_FILESIZE and pgoff <= (MAX_LFS_FILESIZE - length) >> PAGE_SHIFT


# mirrors mm/mmap.c:do_mmap() and mm/vma.c:mmap_region()
cdef long long sys_mmap(mm_struct mm, u64 hint, u64 size, u64 p, u64 f, object fd,
                        u64 off) except? -1:
    cdef u64 pgoff, map_type, vm_flags, start
    cdef bint anonymous, fixed, shared
    cdef VMA vma
    check_alive(mm)
    if fd is not None and not isinstance(fd, File):
        raise TypeError("fd must be a file object from this System or None")
    if off & c_PAGE_OFFSET:
        raise_errno(errno.EINVAL)
    anonymous = f & c_MAP_ANONYMOUS
    file = None if anonymous else fd
    if not anonymous:
        if fd is None:
            raise_errno(errno.EBADF)
        if fd.closed or fd.system is not mm.system:
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
        if hint and hint < mm.mmap_min_addr:
            hint = (mm.mmap_min_addr + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
    # PAGE_ALIGN(len) wrapping to 0 is ENOMEM. (pgoff + pages cannot pass 2**64 here:
    # both are below 2**52, so the kernel's EOVERFLOW for that needs no test.)
    if size > ~c_PAGE_OFFSET:
        raise_errno(errno.ENOMEM)
    size = (size + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
    if mm.vma_tree._count > mm.max_map_count:
        raise_errno(errno.ENOMEM)
    map_type = f & c_MAP_TYPE
    shared = map_type == c_MAP_SHARED or map_type == c_MAP_SHARED_VALIDATE
    vm_flags = calc_vm_prot_bits(p) | calc_vm_flag_bits(f) | mm.def_flags | c_VM_MAY
    start = get_unmapped_area(mm, hint, size, pgoff, fixed, file, shared, vm_flags,
                                   f & c_MAP_32BIT)
    if f & c_MAP_FIXED_NOREPLACE and not mm.vma_tree._range_is_free(start, start + size):
        raise_errno(errno.EEXIST)
    if file is not None:
        if not file_mmap_ok(pgoff, size):
            raise_errno(errno.EOVERFLOW)
        vm_flags = _file_vm_flags(mm, file, map_type, f, p, vm_flags)
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
    vma = mmap_region(mm, start, size, vm_flags, pgoff, file)
    if vma.flags & c_VM_LOCKED and not vma.flags & c_VM_LOCKONFAULT or \
            f & (c_MAP_POPULATE | c_MAP_NONBLOCK) == c_MAP_POPULATE:
        mm_populate(mm, start, start + size, True)
    return start


def _file_vm_flags(mm_struct mm, file, map_type, flags, prot, vm_flags):
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


cpdef VMA mmap_region(mm_struct mm, u64 start, u64 length, u64 vm_flags, u64 pgoff, file):
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
    # taken (pages already charged under them are given back), then they go. As
    # __mmap_region() does, only when the range holds a VMA (a placed mapping's never does).
    cdef VMA first = mm.vma_tree._find(start)
    old = gather_munmap_vmas(mm, start, end) if first is not None and first.start < end else None
    if accountable_mapping(vm_flags):
        for v in old or ():
            if v.flags & c_VM_ACCOUNT:
                recharged += (v.end - v.start) >> PAGE_SHIFT
        vm_enough_memory(mm, (length >> PAGE_SHIFT) - recharged)
        vm_flags |= c_VM_ACCOUNT
    elif file is None and vm_flags & c_VM_SHARED and not vm_flags & c_VM_NORESERVE:
        vm_enough_memory(mm, length >> PAGE_SHIFT)      # shmem_acct_size()
    if old:
        vms_complete_munmap_vmas(mm, old)
    if file is None and vm_flags & c_VM_SHARED:
        file = mm.system.shmem_zero_setup(length)
    if vm_flags & c_VM_LOCKED and vm_flags & c_VM_SPECIAL:
        vm_flags &= ~c_VM_LOCKED_MASK
    v = vma_merge_new_range(mm, start, end, vm_flags | mm.profile.new_vma_flags, pgoff, file)
    if vm_flags & c_VM_LOCKED:
        mm.locked_vm += length >> PAGE_SHIFT
    return v


# mirrors mm/mmap.c:__vm_munmap()
cdef long long sys_munmap(mm_struct mm, u64 addr, u64 length) except? -1:
    check_alive(mm)
    do_munmap(mm, addr, length)
    return 0


cdef do_munmap(mm_struct mm, u64 start, u64 size):
    """mm/vma.c:do_vmi_munmap(), for munmap and for the tail mremap cuts off: the range
    must start page aligned and end at or below TASK_SIZE (no wrapping past 2**64),
    EINVAL otherwise; the length rounds up to pages."""
    if start & c_PAGE_OFFSET or start > c_TASK_SIZE or size > c_TASK_SIZE - start:
        raise_errno(errno.EINVAL)
    size = (size + c_PAGE_OFFSET) & ~c_PAGE_OFFSET
    if size == 0:
        raise_errno(errno.EINVAL)
    do_vmi_munmap(mm, start, start + size)


# --- placement (arch/x86/kernel/sys_x86_64.c, mm/mmap.c, mm/huge_memory.c) ---------------

cpdef u64 get_unmapped_area(mm_struct mm, u64 addr, u64 length, u64 pgoff, bint fixed, file,
                            bint shared, u64 vm_flags, bint map_32bit=False) except? 0:
    """__get_unmapped_area(): where a new mapping of `length` goes. ENOMEM if nowhere.
    Anonymous memory is placed as if its pgoff were 0, whatever the caller passed."""
    cdef u64 result
    cdef bint found
    if length > TASK_SIZE:
        raise_errno(errno.ENOMEM)
    if file is None:
        pgoff = 0
    if fixed:
        # The arch hook hands a fixed address back as it came, and the caller tests it
        # with IS_ERR_VALUE(): one of the top 4095 values reads as an errno (-1: EPERM).
        if addr > ~MAX_ERRNO:
            raise_errno(<int>(-addr))
        result, found = addr, True
    elif _thp_aligns(addr, file, shared, length, pgoff):
        found = _thp_aligned_area(mm, addr, length, pgoff, map_32bit, &result)
    else:
        found = _arch_area(mm, addr, length, map_32bit, &result)
    if not found or result > TASK_SIZE - length:
        raise_errno(errno.ENOMEM)
    if result & ~PAGE_MASK:
        raise_errno(errno.EINVAL)
    return result


cdef bint _arch_area(mm_struct mm, u64 addr, u64 length, bint map_32bit,
                     u64 *found) except -1:
    """arch_get_unmapped_area_topdown(): MAP_32BIT goes bottom-up in [1 GiB, 2 GiB);
    else a hint is used as is if the range (and a growsdown neighbour's guard gap) is
    free, and otherwise the search runs top-down from mmap_base, then bottom-up. Whether
    a place was found (in *found)."""
    if map_32bit:
        return _area_32bit(mm, addr, length, found)
    if addr:
        addr &= PAGE_MASK
        if addr <= TASK_SIZE - length and _hint_fits(mm, addr, length):
            found[0] = addr
            return True
    return (mm.vma_tree._highest_gap(length, max(PAGE_SIZE, mm.mmap_min_addr),
                                     mm.mmap_base, found)
            or mm.vma_tree._lowest_gap(length, TASK_UNMAPPED_BASE, TASK_SIZE, found))


cdef bint _hint_fits(mm_struct mm, u64 addr, u64 length) except -1:
    cdef VMA vma = mm.vma_tree._find(addr)
    return vma is None or addr + length <= vm_start_gap(vma)


cdef bint _area_32bit(mm_struct mm, u64 addr, u64 length, u64 *found) except -1:
    """arch_get_unmapped_area() with find_start_end()'s MAP_32BIT window (no
    randomisation): the hint is rounded up here, and there is no fallback."""
    if length > MAP_32BIT_END:
        return False
    if addr:
        addr = (addr + PAGE_SIZE - 1) & PAGE_MASK
        if MAP_32BIT_END - length >= addr and _hint_fits(mm, addr, length):
            found[0] = addr
            return True
    return mm.vma_tree._lowest_gap(length, MAP_32BIT_BASE, MAP_32BIT_END, found)


cdef bint _thp_aligned_area(mm_struct mm, u64 addr, u64 length, u64 pgoff, bint map_32bit,
                            u64 *found) except -1:
    """__thp_get_unmapped_area(): search for length + PMD_SIZE, then align inside it
    to the file offset; a hint honoured for the padded length stands; an aligned result
    takes the upper part (the mm is top-down). Falls back to an unaligned search. (The
    offset arithmetic wraps in C: only its low 21 bits are used.)"""
    cdef u64 padded, off_sub
    if not _arch_area(mm, addr, length + PMD_SIZE, map_32bit, &padded):
        return _arch_area(mm, addr, length, map_32bit, found)
    if addr and padded == addr & PAGE_MASK:
        found[0] = padded
        return True
    off_sub = ((pgoff << PAGE_SHIFT) - padded) & (PMD_SIZE - 1)
    found[0] = padded + PMD_SIZE if off_sub == 0 else padded + off_sub
    return True


cdef bint _thp_aligns(u64 addr, object file, bint shared, u64 length, u64 pgoff) except -1:
    """thp_get_unmapped_area_vmflags() applies to ext4 file mappings covering a whole
    aligned PMD of the file (hint or not), and to anonymous private mappings whose
    length is a multiple of PMD_SIZE when there is no hint; shmem (memfd, shared anon)
    is not aligned with shmem_enabled=never. (Python integers: a file offset plus a
    length may pass 2**64.)"""
    if file is not None:
        if file.inode.is_shmem:
            return False
    elif shared or addr or length % PMD_SIZE:
        return False
    off = (<object>pgoff) << PAGE_SHIFT
    off_align = (off + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    return off + length > off_align and off + length - off_align >= PMD_SIZE
