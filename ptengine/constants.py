"""Linux x86-64 uapi and kernel constants that ptengine's surface exposes.

Values are those of Linux 6.18 on x86-64 with 4-level paging (include/uapi/asm-generic/mman*.h,
include/uapi/linux/mman.h, include/linux/mm.h, include/uapi/linux/fs.h, fs/proc/task_mmu.c).
Flat names are the contract; the IntFlag groups are a convenience for printing.
"""
import enum

# --- geometry (arch/x86/include/asm/pgtable_64_types.h) ---------------------------------
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
PMD_SHIFT = 21
PMD_SIZE = 1 << PMD_SHIFT
PUD_SHIFT = 30
PUD_SIZE = 1 << PUD_SHIFT
PGDIR_SHIFT = 39
PGDIR_SIZE = 1 << PGDIR_SHIFT
PTRS_PER_TABLE = 512
HPAGE_PMD_NR = PMD_SIZE // PAGE_SIZE
# The top user page is left unmapped so that no user mapping ends at the canonical hole.
TASK_SIZE = 0x7FFFFFFFF000
# The effective mmap_min_addr of the project's machines: vm.mmap_min_addr is 4096 but
# CONFIG_LSM_MMAP_MIN_ADDR=65536 raises the floor hints and searches honour.
MMAP_MIN_ADDR = 0x10000
# Legacy bottom-up base (TASK_UNMAPPED_BASE), used when top-down placement fails.
TASK_UNMAPPED_BASE = (TASK_SIZE // 3) & ~0xFFF
# A non-randomised x86-64 process with an 8 MiB stack rlimit places its first mmap here.
DEFAULT_MMAP_BASE = 0x7FFFF7FFF000
DEFAULT_MAX_MAP_COUNT = 65530
# mm/mmap.c: stack_guard_gap defaults to 256 pages.
STACK_GUARD_GAP = 256 << PAGE_SHIFT
UIO_MAXIOV = 1024

# --- mmap(2) protections ---------------------------------------------------------------
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

# --- mmap(2) flags ---------------------------------------------------------------------
MAP_FILE = 0x0
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_DROPPABLE = 0x08
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_ANON = MAP_ANONYMOUS
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000
MAP_UNINITIALIZED = 0x4000000
MAP_HUGE_SHIFT = 26
MAP_HUGE_MASK = 0x3F
MAP_FAILED = -1

# --- mremap(2) -------------------------------------------------------------------------
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

# --- mlock(2) / mlockall(2) ------------------------------------------------------------
MLOCK_ONFAULT = 0x01
MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4

# --- madvise(2) ------------------------------------------------------------------------
MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_WILLNEED = 3
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DODUMP = 17
MADV_WIPEONFORK = 18
MADV_KEEPONFORK = 19
MADV_COLD = 20
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
MADV_DONTNEED_LOCKED = 24
MADV_COLLAPSE = 25
MADV_HWPOISON = 100
MADV_SOFT_OFFLINE = 101
MADV_GUARD_INSTALL = 102
MADV_GUARD_REMOVE = 103

# --- memfd_create(2) and seals (include/uapi/linux/memfd.h, fcntl.h) -------------------
MFD_CLOEXEC = 0x0001
MFD_ALLOW_SEALING = 0x0002
MFD_HUGETLB = 0x0004
MFD_NOEXEC_SEAL = 0x0008
MFD_EXEC = 0x0010
F_ADD_SEALS = 1033
F_GET_SEALS = 1034
F_SEAL_SEAL = 0x0001
F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004
F_SEAL_WRITE = 0x0008
F_SEAL_FUTURE_WRITE = 0x0010
F_SEAL_EXEC = 0x0020

# --- vm_flags bits (include/linux/mm.h, 6.18 with VM_MAYBE_GUARD) ----------------------
VM_NONE = 0x00000000
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_UFFD_MISSING = 0x00000200
VM_PFNMAP = 0x00000400
VM_MAYBE_GUARD = 0x00000800
VM_UFFD_WP = 0x00001000
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_SEQ_READ = 0x00008000
VM_RAND_READ = 0x00010000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_LOCKONFAULT = 0x00080000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_HUGETLB = 0x00400000
VM_SYNC = 0x00800000
VM_PAT = 0x01000000
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_SOFTDIRTY = 0x08000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
VM_DROPPABLE = 1 << 40
VM_UFFD_MINOR = 1 << 41
VM_SEALED = 1 << 42

VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
# Flags that do not stop two VMAs merging and are OR-ed into the result (mm/vma.h:
# VM_STICKY, VM_IGNORE_MERGE in the VM_MAYBE_GUARD series).
VM_STICKY = VM_SOFTDIRTY | VM_MAYBE_GUARD
# VM_MAYBE_GUARD doubles as "copy page tables on fork" (VM_COPY_ON_FORK).
VM_COPY_ON_FORK = VM_MAYBE_GUARD

# --- /proc/PID/pagemap bits (fs/proc/task_mmu.c) ---------------------------------------
PM_PFRAME_BITS = 55
PM_PFRAME_MASK = (1 << PM_PFRAME_BITS) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
PM_SWAP_TYPE_BITS = 5

# --- PAGEMAP_SCAN (include/uapi/linux/fs.h) --------------------------------------------
PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6
PAGE_IS_SOFT_DIRTY = 1 << 7
PAGE_IS_GUARD = 1 << 8
PM_SCAN_CATEGORIES = (1 << 9) - 1
PM_SCAN_WP_MATCHING = 1 << 0
PM_SCAN_CHECK_WPASYNC = 1 << 1
PAGEMAP_SCAN = 0xC0606610

# --- signals' si_code ------------------------------------------------------------------
SEGV_MAPERR = 1
SEGV_ACCERR = 2
BUS_ADRERR = 2
BUS_MCEERR_AR = 4

# --- pidfd sentinels -------------------------------------------------------------------
PIDFD_SELF = -10000

# --- prctl ----------------------------------------------------------------------------
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0
ANON_VMA_NAME_MAX_LEN = 80


class Prot(enum.IntFlag):
    NONE = PROT_NONE
    READ = PROT_READ
    WRITE = PROT_WRITE
    EXEC = PROT_EXEC
    SEM = PROT_SEM
    GROWSDOWN = PROT_GROWSDOWN
    GROWSUP = PROT_GROWSUP


class VmFlag(enum.IntFlag):
    """vm_flags bits, for printing a VMA's flags by name."""
    READ = VM_READ
    WRITE = VM_WRITE
    EXEC = VM_EXEC
    SHARED = VM_SHARED
    MAYREAD = VM_MAYREAD
    MAYWRITE = VM_MAYWRITE
    MAYEXEC = VM_MAYEXEC
    MAYSHARE = VM_MAYSHARE
    GROWSDOWN = VM_GROWSDOWN
    UFFD_MISSING = VM_UFFD_MISSING
    PFNMAP = VM_PFNMAP
    MAYBE_GUARD = VM_MAYBE_GUARD
    UFFD_WP = VM_UFFD_WP
    LOCKED = VM_LOCKED
    IO = VM_IO
    SEQ_READ = VM_SEQ_READ
    RAND_READ = VM_RAND_READ
    DONTCOPY = VM_DONTCOPY
    DONTEXPAND = VM_DONTEXPAND
    LOCKONFAULT = VM_LOCKONFAULT
    ACCOUNT = VM_ACCOUNT
    NORESERVE = VM_NORESERVE
    HUGETLB = VM_HUGETLB
    SYNC = VM_SYNC
    PAT = VM_PAT
    WIPEONFORK = VM_WIPEONFORK
    DONTDUMP = VM_DONTDUMP
    SOFTDIRTY = VM_SOFTDIRTY
    MIXEDMAP = VM_MIXEDMAP
    HUGEPAGE = VM_HUGEPAGE
    NOHUGEPAGE = VM_NOHUGEPAGE
    MERGEABLE = VM_MERGEABLE
    DROPPABLE = VM_DROPPABLE
    UFFD_MINOR = VM_UFFD_MINOR
    SEALED = VM_SEALED


class PageIs(enum.IntFlag):
    WPALLOWED = PAGE_IS_WPALLOWED
    WRITTEN = PAGE_IS_WRITTEN
    FILE = PAGE_IS_FILE
    PRESENT = PAGE_IS_PRESENT
    SWAPPED = PAGE_IS_SWAPPED
    PFNZERO = PAGE_IS_PFNZERO
    HUGE = PAGE_IS_HUGE
    SOFT_DIRTY = PAGE_IS_SOFT_DIRTY
    GUARD = PAGE_IS_GUARD
