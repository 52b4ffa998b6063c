# cython: language_level=3
"""Compiled core of ptengine: physical frames and x86-64 4-level page tables.

The contract (entry encoding, structs, nogil entry points) is documented in _core.pxd.
This module has three layers:

1. frame primitives (``fs_*``) over the growable per-pfn arrays of ``frame_store``;
2. nogil walkers over ``pt_mm`` (one per hot operation, sharing ``pt_walk_range``);
3. the ``Frames`` and ``PageTables`` classes, whose ``def`` methods validate every argument
   (types, page alignment, user-space bounds, pfns, buffer sizes) before entering layer 2,
   so that no input can crash the interpreter.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_CheckExact
from cpython.number cimport PyNumber_Index
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from .errors import InvariantError

from posix.mman cimport (MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE,
                         mmap, mprotect, munmap)

# ---------------------------------------------------------------------------------------
# Constants shared with Python
# ---------------------------------------------------------------------------------------
cdef uint64_t PAGE_SIZE_ = 1 << PT_PAGE_SHIFT
cdef uint64_t PMD_SIZE_ = 1 << PT_PMD_SHIFT
cdef uint64_t PUD_SIZE_ = 1 << PT_PUD_SHIFT
cdef uint64_t PMD_MASK_ = ~(PMD_SIZE_ - 1)
cdef uint64_t PUD_MASK_ = ~(PUD_SIZE_ - 1)
cdef uint64_t PGDIR_MASK_ = ~(((<uint64_t>1) << PT_PGDIR_SHIFT) - 1)
cdef uint64_t USER_END = (<uint64_t>1) << PT_USER_VA_BITS

# /proc/pid/pagemap bits (fs/proc/task_mmu.c)
cdef uint64_t PM_PFRAME_MASK_ = ((<uint64_t>1) << 55) - 1
cdef uint64_t PM_SOFT_DIRTY_ = (<uint64_t>1) << 55
cdef uint64_t PM_MMAP_EXCLUSIVE_ = (<uint64_t>1) << 56
cdef uint64_t PM_UFFD_WP_ = (<uint64_t>1) << 57
cdef uint64_t PM_GUARD_REGION_ = (<uint64_t>1) << 58
cdef uint64_t PM_FILE_ = (<uint64_t>1) << 61
cdef uint64_t PM_SWAP_ = (<uint64_t>1) << 62
cdef uint64_t PM_PRESENT_ = (<uint64_t>1) << 63

# lookup() kinds
ENTRY_NONE = "none"
ENTRY_PRESENT = "present"
ENTRY_PROTNONE = "protnone"
ENTRY_MARKER = "marker"
ENTRY_SWAP = "swap"
ENTRY_HUGE = "huge"

globals().update({
    # entry bits
    "PTE_PRESENT": PTE_PRESENT, "PTE_RW": PTE_RW, "PTE_USER": PTE_USER,
    "PTE_PWT": PTE_PWT, "PTE_PCD": PTE_PCD, "PTE_ACCESSED": PTE_ACCESSED,
    "PTE_DIRTY": PTE_DIRTY, "PTE_PSE": PTE_PSE, "PTE_GLOBAL": PTE_GLOBAL,
    "PTE_PROTNONE": PTE_PROTNONE, "PTE_SPECIAL": PTE_SPECIAL, "PTE_UFFD_WP": PTE_UFFD_WP,
    "PTE_SOFT_DIRTY": PTE_SOFT_DIRTY, "PTE_NX": PTE_NX, "PTE_PFN_MASK": PTE_PFN_MASK,
    "PTE_TABLE": PTE_TABLE, "PMD_SHARED_TABLE": PMD_SHARED_TABLE,
    "SWP_SOFT_DIRTY": SWP_SOFT_DIRTY, "SWP_UFFD_WP": SWP_UFFD_WP,
    "SWP_EXCLUSIVE": SWP_EXCLUSIVE, "SWP_TYPE_PTE_MARKER": SWP_TYPE_PTE_MARKER,
    "PTE_MARKER_UFFD_WP": PTE_MARKER_UFFD_WP, "PTE_MARKER_POISONED": PTE_MARKER_POISONED,
    "PTE_MARKER_GUARD": PTE_MARKER_GUARD, "PTE_MARKER_MASK": PTE_MARKER_MASK,
    "GUARD_PTE": GUARD_PTE, "POISON_PTE": POISON_PTE, "UFFD_WP_PTE": UFFD_WP_PTE,
    # frames
    "FRAME_ANON": FRAME_ANON, "FRAME_FILE": FRAME_FILE, "FRAME_SHMEM": FRAME_SHMEM,
    "FRAME_ZERO": FRAME_ZERO, "FRAME_DIRTY": FRAME_DIRTY, "FRAME_LAZYFREE": FRAME_LAZYFREE,
    "FRAME_RECLAIM": FRAME_RECLAIM,
    # walker flags
    "ZAP_DROP_MARKERS": ZAP_DROP_MARKERS, "ZAP_KEEP_UFFD_WP": ZAP_KEEP_UFFD_WP,
    "ZAP_RECLAIM_PT": ZAP_RECLAIM_PT, "ZAP_KEEP_COWS": ZAP_KEEP_COWS,
    "COPY_COW": COPY_COW, "COPY_UFFD_WP": COPY_UFFD_WP, "COPY_SHARED": COPY_SHARED,
    "HPAGE_NR": PT_HPAGE_NR, "USER_END": USER_END,
})

cdef int ZAP_ALL_FLAGS = ZAP_DROP_MARKERS | ZAP_KEEP_UFFD_WP | ZAP_RECLAIM_PT | ZAP_KEEP_COWS
cdef int COPY_ALL_FLAGS = COPY_COW | COPY_UFFD_WP | COPY_SHARED
# The largest pfn a PTE can name (bits 12..51).
cdef int64_t PFN_LIMIT = (<int64_t>1) << 40


def make_swap_pte(swp_type_, offset):
    """The raw swap-format entry for (type, offset): type in 0..31, offset < 2**50."""
    t = _u64(swp_type_, "type", 31)
    o = _u64(offset, "offset", SWP_OFFSET_MASK)
    if make_swp_pte(t, o) == 0:
        raise ValueError("type 0 with an all-ones offset encodes as a none entry")
    return make_swp_pte(t, o)


def decode_swap_pte(raw):
    """(type, offset, flag bits 1..3) of a swap-format entry."""
    cdef uint64_t e = _u64(raw, "raw", 0xFFFFFFFFFFFFFFFF)
    if not pte_is_swap(e):
        raise ValueError(f"{e:#x} is not a swap-format entry")
    return swp_type(e), swp_offset(e), e & SWP_FLAGS_MASK


def make_marker(bits):
    """The raw PTE marker carrying `bits` (one or more PTE_MARKER_*)."""
    cdef uint64_t m = _u64(bits, "bits", PTE_MARKER_MASK)
    if m == 0:
        raise ValueError("a marker needs at least one bit")
    return make_marker_pte(m)


# ---------------------------------------------------------------------------------------
# Argument checking (the only place Python objects become C integers)
# ---------------------------------------------------------------------------------------
cdef uint64_t _u64(object value, str name, uint64_t limit) except? 0xFFFFFFFFFFFFFFFF:
    """An integer in [0, limit]; TypeError for non-integers, ValueError when out of range."""
    cdef uint64_t u
    if PyLong_CheckExact(value):          # the common case, without Python arithmetic
        try:
            u = PyLong_AsUnsignedLongLong(value)
        except OverflowError:
            pass                          # negative or too wide: reported below
        else:
            if u <= limit:
                return u
    try:
        v = PyNumber_Index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if v < 0 or v > limit:
        raise ValueError(f"{name} {v:#x} out of range [0, {limit:#x}]")
    return <uint64_t>v


cdef uint64_t _page_addr(object value, str name) except? 0xFFFFFFFFFFFFFFFF:
    """A page-aligned user address (the end of user space allowed)."""
    cdef uint64_t a = _u64(value, name, USER_END)
    if a & (PAGE_SIZE_ - 1):
        raise ValueError(f"{name} {a:#x} is not page aligned")
    return a


cdef int _user_range(object start, object end, uint64_t *s, uint64_t *e) except -1:
    s[0] = _page_addr(start, "start")
    e[0] = _page_addr(end, "end")
    if s[0] > e[0]:
        raise ValueError(f"start {s[0]:#x} > end {e[0]:#x}")
    return 0


cdef uint64_t _one_page(object addr) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t a = _page_addr(addr, "addr")
    if a >= USER_END:
        raise ValueError(f"addr {a:#x} is beyond user space")
    return a


cdef uint64_t _leaf_flags(object value) except? 0xFFFFFFFFFFFFFFFF:
    """PTE flags for a present or PROT_NONE leaf: no pfn bits, no PSE, P or PROTNONE set."""
    cdef uint64_t f = _u64(value, "pte_flags", 0xFFFFFFFFFFFFFFFF)
    if f & (PTE_PFN_MASK | PTE_PSE):
        raise ValueError(f"pte_flags {f:#x} has pfn or PSE bits")
    if not f & (PTE_PRESENT | PTE_PROTNONE):
        raise ValueError(f"pte_flags {f:#x} is neither present nor PROT_NONE")
    return f


cdef int _frame_kind(object kind) except -1:
    cdef int k = <int>_u64(kind, "kind", FRAME_SHMEM)
    if k < FRAME_ANON:
        raise ValueError(f"bad frame kind {k}")
    return k


cdef int _check_err(int64_t r) except -1:
    if r == -ENOMEM:
        raise MemoryError("ptengine: out of memory for page tables or frames")
    if r < 0:
        raise OSError(-r, "ptengine core error")
    return 0


# ---------------------------------------------------------------------------------------
# Frame store primitives
# ---------------------------------------------------------------------------------------
cdef inline void _fl_push(frame_store *fs, int64_t pfn) noexcept nogil:
    fs.free_prev[pfn] = -1
    fs.free_next[pfn] = fs.free_head
    if fs.free_head >= 0:
        fs.free_prev[fs.free_head] = pfn
    fs.free_head = pfn
    fs.block_free[pfn >> 9] += 1


cdef inline void _fl_unlink(frame_store *fs, int64_t pfn) noexcept nogil:
    cdef int64_t p = fs.free_prev[pfn]
    cdef int64_t n = fs.free_next[pfn]
    if p >= 0:
        fs.free_next[p] = n
    else:
        fs.free_head = n
    if n >= 0:
        fs.free_prev[n] = p
    fs.block_free[pfn >> 9] -= 1


cdef int _fs_grow(frame_store *fs, int64_t new_cap) noexcept nogil:
    """Grow every per-pfn array to new_cap (a multiple of 512): one realloc each. The new
    pfns are above the watermark (fs.high): free, on no list, and not even initialised
    (nothing reads a pfn above the watermark; _fs_fresh() sets one up when it is first
    handed out), so the host does not fault in memory for pfns never used. A failed
    realloc leaves the store as it was (bigger arrays are harmless)."""
    cdef int64_t old = fs.capacity
    cdef void *p
    if new_cap > PFN_LIMIT:
        return -ENOMEM
    p = realloc(fs.refcount, new_cap * sizeof(int32_t))
    if p == NULL:
        return -ENOMEM
    fs.refcount = <int32_t *>p
    p = realloc(fs.mapcount, new_cap * sizeof(int32_t))
    if p == NULL:
        return -ENOMEM
    fs.mapcount = <int32_t *>p
    p = realloc(fs.flags, new_cap * sizeof(uint8_t))
    if p == NULL:
        return -ENOMEM
    fs.flags = <uint8_t *>p
    p = realloc(fs.data, new_cap * sizeof(uint8_t *))
    if p == NULL:
        return -ENOMEM
    fs.data = <uint8_t **>p
    p = realloc(fs.free_next, new_cap * sizeof(int64_t))
    if p == NULL:
        return -ENOMEM
    fs.free_next = <int64_t *>p
    p = realloc(fs.free_prev, new_cap * sizeof(int64_t))
    if p == NULL:
        return -ENOMEM
    fs.free_prev = <int64_t *>p
    p = realloc(fs.block_free, (new_cap >> 9) * sizeof(uint16_t))
    if p == NULL:
        return -ENOMEM
    fs.block_free = <uint16_t *>p
    memset(fs.block_free + (old >> 9), 0, ((new_cap - old) >> 9) * sizeof(uint16_t))
    fs.capacity = new_cap
    return 0


cdef inline void _fs_free(frame_store *fs, int64_t pfn) noexcept nogil:
    if fs.data[pfn] != NULL:
        free(fs.data[pfn])
        fs.data[pfn] = NULL
        fs.nr_data -= 1
    fs.flags[pfn] = 0
    fs.mapcount[pfn] = 0
    _fl_push(fs, pfn)
    fs.nr_used -= 1


cdef inline void _fs_fresh(frame_store *fs, int64_t pfn) noexcept nogil:
    """Set up a pfn the watermark passes: the state of a free frame."""
    fs.refcount[pfn] = 0
    fs.mapcount[pfn] = 0
    fs.flags[pfn] = 0
    fs.data[pfn] = NULL


cdef inline int64_t _fs_take(frame_store *fs) noexcept nogil:
    """A free pfn, taken off the store (its refcount, mapcount and flags are the caller's
    to set; its data is NULL): the most recently freed one, else the first never used
    (the watermark), growing the store when it is all used; -ENOMEM."""
    cdef int64_t pfn = fs.free_head
    if pfn >= 0:
        _fl_unlink(fs, pfn)
        return pfn
    if fs.high == fs.capacity and _fs_grow(fs, fs.capacity * 2) < 0:
        return -ENOMEM
    pfn = fs.high
    fs.high += 1
    fs.data[pfn] = NULL
    return pfn


cdef int64_t fs_alloc(frame_store *fs, int kind) noexcept nogil:
    cdef int64_t pfn = _fs_take(fs)
    if pfn < 0:
        return pfn
    fs.refcount[pfn] = 1
    fs.mapcount[pfn] = 0
    fs.flags[pfn] = <uint8_t>kind
    fs.nr_used += 1
    return pfn


cdef int64_t fs_alloc_huge(frame_store *fs, int kind) noexcept nogil:
    """A 512-aligned block of free frames: one wholly on the free list, else the first
    whole block above the watermark (the pfns skipped to align it go on the free list)."""
    cdef int64_t b, head, i, nblocks = fs.high >> 9
    cdef bint listed = False
    for b in range(1, nblocks):
        if fs.block_free[b] == PT_HPAGE_NR:
            listed = True
            break
    if listed:
        head = b << 9
    else:
        head = (fs.high + PT_HPAGE_NR - 1) & ~(<int64_t>PT_HPAGE_NR - 1)
        while head + PT_HPAGE_NR > fs.capacity:
            if _fs_grow(fs, fs.capacity * 2) < 0:
                return -ENOMEM
        i = head - 1
        while i >= fs.high:
            _fs_fresh(fs, i)
            _fl_push(fs, i)
            i -= 1
        fs.high = head + PT_HPAGE_NR
    for i in range(head, head + PT_HPAGE_NR):
        if listed:
            _fl_unlink(fs, i)
        else:
            fs.data[i] = NULL
        fs.refcount[i] = 1
        fs.mapcount[i] = 0
        fs.flags[i] = <uint8_t>kind
    fs.nr_used += PT_HPAGE_NR
    return head


cdef void fs_put(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.refcount[pfn] -= 1
    if fs.refcount[pfn] == 0:
        _fs_free(fs, pfn)


cdef void fs_map(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.refcount[pfn] += 1
    fs.mapcount[pfn] += 1


cdef void fs_unmap(frame_store *fs, int64_t pfn) noexcept nogil:
    if pfn_is_zero(pfn):
        return
    fs.mapcount[pfn] -= 1
    fs_put(fs, pfn)


cdef inline int _kind(frame_store *fs, uint64_t pfn) noexcept nogil:
    return fs.flags[pfn] & FRAME_KIND_MASK


cdef class Frames:
    """Physical memory: per-pfn refcount, mapcount, kind/dirty flags and lazily allocated
    4 KiB contents. pfn 0 is never used; FRAME_ZERO_PFN is the shared zero page and the
    512 frames from FRAME_HUGE_ZERO_PFN the huge zero page (both kind ZERO: never freed,
    never counted, reading as zeros)."""

    def __cinit__(self):
        cdef int64_t pfn
        memset(&self.fs, 0, sizeof(frame_store))
        self.fs.free_head = -1
        if _fs_grow(&self.fs, 1024) < 0:
            raise MemoryError()
        # pfn 0 is never used and 1, 512..1023 are the zero pages: the rest of the first
        # 1024 goes on the free list (lowest first), the watermark starts above them.
        for pfn in range(1023, -1, -1):
            _fs_fresh(&self.fs, pfn)
            if pfn == 0:
                continue
            if pfn_is_zero(pfn):
                self.fs.refcount[pfn] = 1
                self.fs.flags[pfn] = FRAME_ZERO
            else:
                _fl_push(&self.fs, pfn)
        self.fs.high = 1024

    def __dealloc__(self):
        cdef int64_t pfn
        if self.fs.data != NULL:
            for pfn in range(self.fs.high):
                free(self.fs.data[pfn])
        free(self.fs.refcount)
        free(self.fs.mapcount)
        free(self.fs.flags)
        free(self.fs.data)
        free(self.fs.free_next)
        free(self.fs.free_prev)
        free(self.fs.block_free)
        # Every PageTables over these frames holds a reference to them: all are gone.
        _free_table_pool(&self.fs)

    cdef int64_t _pfn(self, object pfn, bint allow_zero) except -1:
        """A pfn of a frame in use (the zero page only if allow_zero)."""
        cdef int64_t p = <int64_t>_u64(pfn, "pfn", PFN_LIMIT)
        if p <= 0 or p >= self.fs.high or self.fs.refcount[p] <= 0:
            raise ValueError(f"pfn {p:#x} is not a frame in use")
        if pfn_is_zero(p) and not allow_zero:
            raise ValueError("the zero page cannot be used here")
        return p

    @property
    def zero_pfn(self):
        return FRAME_ZERO_PFN

    @property
    def huge_zero_pfn(self):
        """Head pfn of the huge zero page (map it with PageTables.map_huge_pmd)."""
        return FRAME_HUGE_ZERO_PFN

    @property
    def nr_used(self):
        """Frames in use, the zero page excluded."""
        return self.fs.nr_used

    @property
    def nr_data(self):
        """Frames whose contents have been written (a 4 KiB buffer is allocated)."""
        return self.fs.nr_data

    @property
    def capacity(self):
        return self.fs.capacity

    def alloc(self, kind):
        """A new zero-filled frame: refcount 1 (the caller's), mapcount 0."""
        cdef int64_t pfn = fs_alloc(&self.fs, _frame_kind(kind))
        _check_err(pfn)
        return pfn

    def alloc_huge(self, kind):
        """512 contiguous frames, 512-aligned, each with refcount 1; returns the head pfn."""
        cdef int64_t head = fs_alloc_huge(&self.fs, _frame_kind(kind))
        _check_err(head)
        return head

    def get(self, pfn):
        """Take a reference (a no-op on the zero page, whose count is not tracked)."""
        cdef int64_t p = self._pfn(pfn, True)
        if not pfn_is_zero(p):
            self.fs.refcount[p] += 1

    def put(self, pfn):
        """Drop a reference; the frame (and its contents) is freed at 0."""
        cdef int64_t p = self._pfn(pfn, True)
        if not pfn_is_zero(p) and self.fs.refcount[p] == 1 and self.fs.mapcount[p] > 0:
            raise ValueError(f"pfn {p:#x} is still mapped {self.fs.mapcount[p]} times")
        fs_put(&self.fs, p)

    def put_huge(self, head):
        """put() on each of the 512 frames of a huge allocation."""
        cdef int64_t h = self._pfn(head, False), i
        if h & (PT_HPAGE_NR - 1) or h + PT_HPAGE_NR > self.fs.high:
            raise ValueError(f"pfn {h:#x} is not the head of a huge frame")
        for i in range(h, h + PT_HPAGE_NR):
            self._pfn(i, False)
            if self.fs.refcount[i] == 1 and self.fs.mapcount[i] > 0:
                raise ValueError(f"pfn {i:#x} is still mapped")
        for i in range(h, h + PT_HPAGE_NR):
            fs_put(&self.fs, i)

    def refcount(self, pfn):
        return self.fs.refcount[self._pfn(pfn, True)]

    def mapcount(self, pfn):
        return self.fs.mapcount[self._pfn(pfn, True)]

    def kind(self, pfn):
        return _kind(&self.fs, self._pfn(pfn, True))

    def is_dirty(self, pfn):
        return bool(self.fs.flags[self._pfn(pfn, True)] & FRAME_DIRTY)

    def set_dirty(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] |= FRAME_DIRTY

    def clear_dirty(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] &= ~FRAME_DIRTY

    def is_lazyfree(self, pfn):
        return bool(self.fs.flags[self._pfn(pfn, True)] & FRAME_LAZYFREE)

    def set_lazyfree(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] |= FRAME_LAZYFREE

    def clear_lazyfree(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] &= ~FRAME_LAZYFREE

    def is_reclaim(self, pfn):
        return bool(self.fs.flags[self._pfn(pfn, True)] & FRAME_RECLAIM)

    def set_reclaim(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] |= FRAME_RECLAIM

    def clear_reclaim(self, pfn):
        self.fs.flags[self._pfn(pfn, False)] &= ~FRAME_RECLAIM

    def read(self, pfn, offset=0, n=None):
        """n bytes (default: to the end of the page) of the contents from offset."""
        cdef int64_t p = self._pfn(pfn, True)
        cdef uint64_t off = _u64(offset, "offset", PAGE_SIZE_)
        cdef uint64_t cnt = PAGE_SIZE_ - off if n is None else _u64(n, "n", PAGE_SIZE_ - off)
        if self.fs.data[p] == NULL:
            return bytes(cnt)
        return PyBytes_FromStringAndSize(<char *>self.fs.data[p] + off, cnt)

    def write(self, pfn, offset, data):
        """Store bytes-like data at offset; the 4 KiB buffer is allocated on first write."""
        cdef int64_t p = self._pfn(pfn, False)
        cdef uint64_t off = _u64(offset, "offset", PAGE_SIZE_)
        cdef const uint8_t[::1] buf = data
        cdef Py_ssize_t n = buf.shape[0]
        if <uint64_t>n > PAGE_SIZE_ - off:
            raise ValueError(f"{n} bytes at offset {off} overflow the page")
        if n == 0:
            return
        if self.fs.data[p] == NULL:
            self.fs.data[p] = <uint8_t *>calloc(1, PAGE_SIZE_)
            if self.fs.data[p] == NULL:
                raise MemoryError()
            self.fs.nr_data += 1
        memcpy(self.fs.data[p] + off, &buf[0], n)

    def copy_data(self, src_pfn, dst_pfn):
        """dst's contents become a copy of src's (the zero page reads as zeros)."""
        cdef int64_t s = self._pfn(src_pfn, True)
        cdef int64_t d = self._pfn(dst_pfn, False)
        if s == d:
            return
        if self.fs.data[s] == NULL:
            self.zero_data(d)
            return
        if self.fs.data[d] == NULL:
            self.fs.data[d] = <uint8_t *>malloc(PAGE_SIZE_)
            if self.fs.data[d] == NULL:
                raise MemoryError()
            self.fs.nr_data += 1
        memcpy(self.fs.data[d], self.fs.data[s], PAGE_SIZE_)

    def zero_data(self, pfn):
        cdef int64_t p = self._pfn(pfn, False)
        if self.fs.data[p] != NULL:
            free(self.fs.data[p])
            self.fs.data[p] = NULL
            self.fs.nr_data -= 1

    def check(self, tables=()):
        """Verify the store (free list, counters) and, given every PageTables that maps
        these frames, that each frame's mapcount equals its mappings and refcount covers
        them. Raises InvariantError."""
        cdef frame_store *fs = &self.fs
        cdef int64_t pfn, nfree = 0, used = 0, data = 0, b
        cdef int32_t *maps
        cdef int64_t *per_block
        cdef PageTables pt
        for t in tables:
            pt = t
            if pt.frames is not self:
                raise ValueError("a PageTables of another Frames")
        maps = <int32_t *>calloc(fs.capacity, sizeof(int32_t))
        per_block = <int64_t *>calloc(fs.capacity >> 9, sizeof(int64_t))
        if maps == NULL or per_block == NULL:
            free(maps)
            free(per_block)
            raise MemoryError()
        try:
            for t in tables:
                (<PageTables>t)._tally(maps)
            if not 1024 <= fs.high <= fs.capacity:
                raise InvariantError(f"watermark {fs.high:#x} outside [0x400, {fs.capacity:#x}]")
            pfn = fs.free_head
            while pfn >= 0:
                if pfn >= fs.high or fs.refcount[pfn] != 0 or pfn == 0 or pfn_is_zero(pfn):
                    raise InvariantError(f"free list holds pfn {pfn:#x}")
                nfree += 1
                per_block[pfn >> 9] += 1
                if nfree > fs.capacity:
                    raise InvariantError("free list loops")
                pfn = fs.free_next[pfn]
            for b in range(fs.capacity >> 9):
                if per_block[b] != fs.block_free[b]:
                    raise InvariantError(f"block {b}: {fs.block_free[b]} free recorded, "
                                         f"{per_block[b]} on the free list")
            for pfn in range(1, fs.high):
                if pfn_is_zero(pfn):
                    if fs.refcount[pfn] != 1 or fs.mapcount[pfn] or fs.data[pfn] != NULL \
                            or _kind(fs, pfn) != FRAME_ZERO:
                        raise InvariantError(f"zero pfn {pfn:#x} has state")
                    continue
                if fs.data[pfn] != NULL:
                    data += 1
                if fs.refcount[pfn] == 0:
                    if fs.mapcount[pfn] or fs.flags[pfn] or fs.data[pfn] != NULL or maps[pfn]:
                        raise InvariantError(f"free pfn {pfn:#x} has state")
                    continue
                used += 1
                if not FRAME_ANON <= _kind(fs, pfn) <= FRAME_SHMEM:
                    raise InvariantError(f"pfn {pfn:#x} has kind {_kind(fs, pfn)}")
                if tables and fs.mapcount[pfn] != maps[pfn]:
                    raise InvariantError(f"pfn {pfn:#x}: mapcount {fs.mapcount[pfn]}, "
                                         f"{maps[pfn]} mappings found")
                if fs.refcount[pfn] < fs.mapcount[pfn]:
                    raise InvariantError(f"pfn {pfn:#x}: refcount {fs.refcount[pfn]} < "
                                         f"mapcount {fs.mapcount[pfn]}")
            if used != fs.nr_used or data != fs.nr_data:
                raise InvariantError(f"nr_used {fs.nr_used} (found {used}), nr_data "
                                     f"{fs.nr_data} (found {data})")
            if nfree + used + 2 + PT_HPAGE_NR != fs.high:
                raise InvariantError(f"{nfree} free + {used} used + {2 + PT_HPAGE_NR} "
                                     f"reserved != the watermark {fs.high}")
        finally:
            free(maps)
            free(per_block)


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------
# Table pages come from a pool per Frames (per System): chunks of TABLE_CHUNK pages mapped
# with mmap(), handed out 4 KiB at a time from the newest chunk's untouched tail, and a free
# list threaded through the first word of each freed table. Freed tables are kept for reuse
# while the System lives (like the kernel's page-table caches, they are recycled); the
# chunks are unmapped with the Frames, so the host gets back what a System's tables took.
# mmap() rather than malloc(): the heap would keep freed chunks, and a page of a chunk is
# resident only once a table is carved from it.
cdef enum:
    TABLE_CHUNK = 128


cdef int _grow_table_pool(frame_store *fs) noexcept nogil:
    cdef void *p
    cdef void **chunks
    cdef int64_t cap
    if fs.nr_chunks == fs.cap_chunks:
        cap = 2 * fs.cap_chunks if fs.cap_chunks else 16
        chunks = <void **>realloc(fs.chunks, cap * sizeof(void *))
        if chunks == NULL:
            return -1
        fs.chunks = chunks
        fs.cap_chunks = cap
    p = mmap(NULL, PAGE_SIZE_ * TABLE_CHUNK, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if p == MAP_FAILED:
        return -1
    if (<uint64_t>p + PAGE_SIZE_ * (TABLE_CHUNK - 1)) & ~PTE_PFN_MASK:
        munmap(p, PAGE_SIZE_ * TABLE_CHUNK)  # the host pointer must fit in bits 12..51
        return -1
    fs.chunks[fs.nr_chunks] = p
    fs.nr_chunks += 1
    fs.chunk_next = <char *>p
    fs.chunk_end = <char *>p + PAGE_SIZE_ * TABLE_CHUNK
    return 0


cdef inline uint64_t *_new_table(frame_store *fs) noexcept nogil:
    """A zeroed 4 KiB-aligned table from the pool; NULL if memory ran out."""
    cdef uint64_t *t = fs.table_free
    if t != NULL:
        fs.table_free = <uint64_t *>t[0]
        memset(t, 0, PAGE_SIZE_)
        return t
    if fs.chunk_next == fs.chunk_end and _grow_table_pool(fs) < 0:
        return NULL
    t = <uint64_t *>fs.chunk_next          # fresh from mmap(): already zero
    fs.chunk_next += PAGE_SIZE_
    return t


cdef inline void _release_table(frame_store *fs, uint64_t *t) noexcept nogil:
    """Give a table back to the pool."""
    t[0] = <uint64_t>fs.table_free
    fs.table_free = t


cdef void _free_table_pool(frame_store *fs) noexcept nogil:
    """Unmap every chunk (the Frames is going away, and every PageTables over it is gone)."""
    cdef int64_t i
    for i in range(fs.nr_chunks):
        munmap(fs.chunks[i], PAGE_SIZE_ * TABLE_CHUNK)
    free(fs.chunks)
    fs.chunks = NULL
    fs.nr_chunks = fs.cap_chunks = 0
    fs.table_free = NULL
    fs.chunk_next = fs.chunk_end = NULL


cdef inline uint64_t *_mm_new_table(pt_mm *mm) noexcept nogil:
    """A zeroed table from the pool, counted in the host memory of mm."""
    cdef uint64_t *t = _new_table(mm.fs)
    if t != NULL:
        mm.nr_host_tables += 1
    return t


cdef inline void _mm_release_table(pt_mm *mm, uint64_t *t) noexcept nogil:
    _release_table(mm.fs, t)
    mm.nr_host_tables -= 1


# ---------------------------------------------------------------------------------------
# Shared uniform PTE tables. Most PTE tables of a guard-heavy address space hold one value
# 512 times (a 2 MiB span of guard markers, or nothing left after a remove): such a table
# is not given 4 KiB of its own, its PMD entry names one of two canonical tables, with
# PMD_SHARED_TABLE set. They are mapped read-only once per interpreter, so a walker that
# forgets pte_table_unshare() faults at once instead of corrupting every mm. The kernel
# has one table per PMD whatever it holds, so nr_pte_tables (VmPTE) counts shared tables
# like private ones; nr_shared_pte_tables and nr_host_tables say what the host holds.
# ---------------------------------------------------------------------------------------
cdef uint64_t *NONE_TABLE = NULL
cdef uint64_t *GUARD_TABLE = NULL


cdef int _init_shared_tables() except -1:
    global NONE_TABLE, GUARD_TABLE
    cdef void *p = mmap(NULL, 2 * PAGE_SIZE_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if p == MAP_FAILED or (<uint64_t>p + PAGE_SIZE_) & ~PTE_PFN_MASK:
        raise MemoryError("no memory for the shared page tables")
    NONE_TABLE = <uint64_t *>p
    GUARD_TABLE = <uint64_t *>p + PT_PTRS_PER_TABLE
    _fill(GUARD_TABLE, PT_PTRS_PER_TABLE, GUARD_PTE)
    mprotect(p, 2 * PAGE_SIZE_, PROT_READ)
    return 0


_init_shared_tables()


cdef const uint64_t *pt_shared_table(uint64_t value) noexcept nogil:
    if value == 0:
        return NONE_TABLE
    if value == GUARD_PTE:
        return GUARD_TABLE
    return NULL


cdef void _pmd_share(pt_mm *mm, uint64_t *pmd, uint64_t value) noexcept nogil:
    """Point the PMD entry (none, private or shared) at the canonical table of value (0 or
    GUARD_PTE): a none entry gains a (logical) table, a private table goes to the pool."""
    cdef uint64_t e = pmd[0]
    if e == 0:
        mm.nr_pte_tables += 1
    elif not pmd_is_shared(e):
        _mm_release_table(mm, entry_table(e))
    if not pmd_is_shared(e):
        mm.nr_shared_pte_tables += 1
    pmd[0] = <uint64_t>pt_shared_table(value) | PTE_TABLE | PMD_SHARED_TABLE


cdef int pte_table_unshare(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    cdef uint64_t e = pmd[0]
    cdef uint64_t *t
    if not pmd_is_shared(e):
        return 0
    t = _mm_new_table(mm)
    if t == NULL:
        return -ENOMEM
    memcpy(t, entry_table(e), PAGE_SIZE_)
    pmd[0] = <uint64_t>t | PTE_TABLE
    mm.nr_shared_pte_tables -= 1
    return 0


cdef int _pte_table_private(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """A PTE table of this mm alone under the (non-huge) PMD entry, allocated if none."""
    if pmd[0] == 0:
        return pt_alloc_table(mm, pmd, PT_PMD_SHIFT)
    return pte_table_unshare(mm, pmd)


cdef inline void _count_table(pt_mm *mm, int level_shift, int delta) noexcept nogil:
    """level_shift names the level of the entry that points at the table."""
    if level_shift == PT_PGDIR_SHIFT:
        mm.nr_pud_tables += delta
    elif level_shift == PT_PUD_SHIFT:
        mm.nr_pmd_tables += delta
    else:
        mm.nr_pte_tables += delta


cdef int pt_alloc_table(pt_mm *mm, uint64_t *entry, int level_shift) noexcept nogil:
    """Fill the none entry (of the level with shift level_shift) with a new zeroed table."""
    cdef uint64_t *t = _mm_new_table(mm)
    if t == NULL:
        return -ENOMEM
    entry[0] = <uint64_t>t | PTE_TABLE
    _count_table(mm, level_shift, 1)
    return 0


cdef inline void _free_table(pt_mm *mm, uint64_t *entry, int level_shift) noexcept nogil:
    """Clear the entry and count its table out; a canonical shared table is not pooled."""
    if pmd_is_shared(entry[0]):
        mm.nr_shared_pte_tables -= 1
    else:
        _mm_release_table(mm, entry_table(entry[0]))
    entry[0] = 0
    _count_table(mm, level_shift, -1)


cdef uint64_t *pt_pmd_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil:
    """The PMD entry covering addr; NULL if a PGD/PUD entry is none (and not allocating) or
    an allocation failed."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    if e[0] == 0 and (not alloc or pt_alloc_table(mm, e, PT_PGDIR_SHIFT) < 0):
        return NULL
    e = entry_table(e[0]) + pt_index(addr, PT_PUD_SHIFT)
    if e[0] == 0 and (not alloc or pt_alloc_table(mm, e, PT_PUD_SHIFT) < 0):
        return NULL
    return entry_table(e[0]) + pt_index(addr, PT_PMD_SHIFT)


cdef uint64_t *_pte_entry(pt_mm *mm, uint64_t addr, bint alloc) noexcept nogil:
    """The PTE covering addr; NULL if its table is missing (and not allocating), under a
    huge PMD, or an allocation failed."""
    cdef uint64_t *pmd = pt_pmd_entry(mm, addr, alloc)
    if pmd == NULL or pmd_is_huge(pmd[0]):
        return NULL
    if pmd[0] == 0 and (not alloc or pt_alloc_table(mm, pmd, PT_PMD_SHIFT) < 0):
        return NULL
    return entry_table(pmd[0]) + pt_index(addr, PT_PAGE_SHIFT)


cdef inline void _map_frames(pt_mm *mm, uint64_t pfn, int64_t nr) noexcept nogil:
    """A new mapping of nr frames from pfn: ref + mapcount each, RSS by kind."""
    cdef int64_t i
    if pfn_is_zero(pfn):
        return
    for i in range(nr):
        fs_map(mm.fs, pfn + i)
    mm.rss[_kind(mm.fs, pfn)] += nr


cdef inline void _unmap_frames(pt_mm *mm, uint64_t pfn, int64_t nr,
                               bint pte_dirty) noexcept nogil:
    """Drop a mapping of nr frames; a dirty PTE of a page-cache page dirties the page."""
    cdef int64_t i
    cdef int kind
    if pfn_is_zero(pfn):
        return
    kind = _kind(mm.fs, pfn)
    mm.rss[kind] -= nr
    for i in range(nr):
        if pte_dirty and kind != FRAME_ANON:
            mm.fs.flags[pfn + i] |= FRAME_DIRTY
        fs_unmap(mm.fs, pfn + i)


cdef inline bint _has_deposit(frame_store *fs, uint64_t head) noexcept nogil:
    """An anon THP or the huge zero page comes with a deposited PTE table (counted in
    nr_pte_tables); file and shmem THPs do not on x86-64."""
    return _kind(fs, head) == FRAME_ANON or pfn_is_zero(head)


cdef void _zap_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """zap_huge_pmd(): unmap the whole THP; its deposited table goes with it."""
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    pmd[0] = 0
    if _has_deposit(mm.fs, head):
        mm.nr_pte_tables -= 1
    _unmap_frames(mm, head, PT_HPAGE_NR, (v & PTE_DIRTY) != 0)


cdef int pt_split_huge_pmd(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """__split_huge_pmd_locked(): an anon THP becomes 512 PTEs of the same frames, and the
    huge zero page 512 read-only PTEs of the 4 KiB zero page, in the table deposited when
    the PMD was mapped (already counted in nr_pte_tables); a file or shmem THP is simply
    unmapped, its pages refault from the page cache."""
    cdef uint64_t v = pmd[0], head = pte_pfn(v), flags, step = 1
    cdef uint64_t *t
    cdef int64_t i
    if not _has_deposit(mm.fs, head):
        pmd[0] = 0
        _unmap_frames(mm, head, PT_HPAGE_NR, (v & PTE_DIRTY) != 0)
        return 0
    t = _mm_new_table(mm)       # the deposited table, now held in host memory
    if t == NULL:
        return -ENOMEM
    flags = v & ~(PTE_PFN_MASK | PTE_PSE)
    if pfn_is_zero(head):
        head, step = FRAME_ZERO_PFN, 0
        flags = (flags & ~(PTE_RW | PTE_DIRTY)) | PTE_SPECIAL
    for i in range(PT_HPAGE_NR):
        t[i] = ((head + i * step) << PT_PAGE_SHIFT) | flags
    pmd[0] = <uint64_t>t | PTE_TABLE
    return 0


# ---------------------------------------------------------------------------------------
# The generic walk
# ---------------------------------------------------------------------------------------
cdef int pt_run_walk(pt_walk *w, pt_mm *mm, const pt_walk_ops *ops, uint64_t start,
                     uint64_t end, uint64_t arg, uint64_t arg2, void *priv) noexcept nogil:
    w.mm = mm
    w.ops = ops
    w.start = start
    w.stop = end
    w.count = 0
    w.arg = arg
    w.arg2 = arg2
    w.priv = priv
    return pt_walk_range(w, start, end)


cdef int _walk_table(pt_walk *w, uint64_t *table, int shift, uint64_t addr,
                     uint64_t end) noexcept nogil:
    """One level of the walk: the entries of `table` (a PGD, PUD or PMD table, by shift)
    over [addr, end)."""
    cdef const pt_walk_ops *ops = w.ops
    cdef uint64_t next
    cdef uint64_t *e
    cdef int r
    while True:
        next = pt_addr_end(addr, end, shift)
        e = table + pt_index(addr, shift)
        r = 0
        if shift == PT_PMD_SHIFT and pmd_is_huge(e[0]):
            r = ops.huge_pmd(w, e, addr, next) if ops.huge_pmd != NULL else WALK_NEXT
            if r == WALK_DESCEND:
                r = 0
            elif r != 0:
                return r
            else:
                addr = next
                if addr == end:
                    return 0
                continue
        if e[0] == 0:
            if not ops.alloc:
                if ops.hole != NULL:
                    r = ops.hole(w, addr, next)
                    if r:
                        return r
                addr = next
                if addr == end:
                    return 0
                continue
            if pt_alloc_table(w.mm, e, shift) < 0:
                return -ENOMEM
        if shift == PT_PMD_SHIFT:
            r = ops.pte_range(w, e, addr, next)
        else:
            r = _walk_table(w, entry_table(e[0]), shift - 9, addr, next)
        if r:
            return r
        addr = next
        if addr == end:
            return 0


cdef int pt_walk_range(pt_walk *w, uint64_t start, uint64_t end) noexcept nogil:
    if start >= end:
        return 0
    return _walk_table(w, w.mm.pgd, PT_PGDIR_SHIFT, start, end)


cdef inline uint64_t *_ptes(uint64_t *pmd, uint64_t addr) noexcept nogil:
    return entry_table(pmd[0]) + pt_index(addr, PT_PAGE_SHIFT)


cdef int _stop_here(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    w.stop = addr
    return WALK_STOP



# ---------------------------------------------------------------------------------------
# Branch-free table scans, written so that the compiler vectorizes them with x86-64's
# baseline SSE2 (which has no 64-bit compare: only shifts and bitwise operations are used),
# and called with the constant 512 for whole tables so that even -O2's cheapest
# vectorization applies.
# ---------------------------------------------------------------------------------------
cdef inline uint64_t _scan_n(const uint64_t *p, Py_ssize_t n, int64_t *guards) noexcept nogil:
    # With hi/lo the 32-bit halves of e: e is none or exactly GUARD_PTE (whose hi is all
    # ones) <=> hi is 0 or 0xFFFFFFFF, i.e. hi + (hi >> 31) == 0 mod 2**32, and lo equals
    # hi & GUARD_PTE's lo. Only the low 32 bits of each term matter, so the mask is
    # applied once, to the accumulated result. When that holds, bit 63 tells a guard from
    # a none entry.
    cdef uint64_t acc = 0, top = 0, e, low = <uint64_t>0xFFFFFFFF
    cdef uint64_t guard_lo = GUARD_PTE & low
    cdef Py_ssize_t i
    for i in range(n):
        e = p[i]
        acc |= (e ^ ((e >> 32) & guard_lo)) | ((e >> 32) + (e >> 63))
        top += e >> 63
    guards[0] = <int64_t>top
    return acc & low


cdef inline uint64_t _scan(const uint64_t *p, Py_ssize_t n, int64_t *guards) noexcept nogil:
    """Non-zero iff some entry of p[:n] is neither none nor exactly GUARD_PTE; otherwise
    *guards is the number of guard markers."""
    if n == PT_PTRS_PER_TABLE:
        return _scan_n(p, PT_PTRS_PER_TABLE, guards)
    return _scan_n(p, n, guards)


cdef inline void _fill_n(uint64_t *p, Py_ssize_t n, uint64_t v) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        p[i] = v


cdef inline void _fill(uint64_t *p, Py_ssize_t n, uint64_t v) noexcept nogil:
    if n == PT_PTRS_PER_TABLE:
        _fill_n(p, PT_PTRS_PER_TABLE, v)
    else:
        _fill_n(p, n, v)


cdef inline uint64_t _or_table(const uint64_t *p) noexcept nogil:
    """Zero iff all 512 entries of the table are none."""
    cdef uint64_t acc = 0
    cdef Py_ssize_t i
    for i in range(PT_PTRS_PER_TABLE):
        acc |= p[i]
    return acc

# ---------------------------------------------------------------------------------------
# MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (mm/madvise.c guard_install_* / guard_remove_*)
# ---------------------------------------------------------------------------------------
cdef void _share_if_uniform(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """After guards were written over part of a private table: share the table if it now
    holds nothing but guard markers. (A table left all none by a partial remove stays
    private: the same page installed and removed in turn would otherwise copy a table
    each time.)"""
    cdef int64_t guards
    cdef uint64_t *pte = entry_table(pmd[0])
    # Both ends first: a table that is not all guards almost always shows it there, and
    # this runs after every one-page install (a full scan each time was 20% of a batched
    # guard install + remove).
    if pte[0] != GUARD_PTE or pte[PT_PTRS_PER_TABLE - 1] != GUARD_PTE:
        return
    if not _scan(pte, PT_PTRS_PER_TABLE, &guards) and guards == PT_PTRS_PER_TABLE:
        _pmd_share(mm, pmd, GUARD_PTE)


cdef int _install_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e
    cdef int64_t guards
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == GUARD_TABLE:
            return WALK_NEXT            # every entry is a guard already
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if not _scan(pte, n, &guards):      # the common case: only none and guard entries
        if n == PT_PTRS_PER_TABLE:
            _pmd_share(w.mm, pmd, GUARD_PTE)
        else:
            _fill(pte, n, GUARD_PTE)
            _share_if_uniform(w.mm, pmd)
        return WALK_NEXT
    for i in range(n):
        e = pte[i]
        if e == 0:
            pte[i] = GUARD_PTE
        elif not pte_is_guard(e):
            w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)
            return WALK_STOP
    return WALK_NEXT


cdef int _install_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    """No table covers [addr, end) (at any level): allocate the PUD and PMD tables as the
    kernel's install walk does; a whole 2 MiB span names GUARD_TABLE (no PTE table is
    allocated), a partial one gets a private table."""
    cdef uint64_t next
    cdef uint64_t *pmd
    while addr < end:
        next = pt_addr_end(addr, end, PT_PMD_SHIFT)
        pmd = pt_pmd_entry(w.mm, addr, True)
        if pmd == NULL:
            return -ENOMEM
        if next - addr == PMD_SIZE_:
            _pmd_share(w.mm, pmd, GUARD_PTE)
        else:
            if pt_alloc_table(w.mm, pmd, PT_PMD_SHIFT) < 0:
                return -ENOMEM
            _fill(_ptes(pmd, addr), <Py_ssize_t>((next - addr) >> PT_PAGE_SHIFT), GUARD_PTE)
        addr = next
    return WALK_NEXT


# guard_install_walk_ops: holes get GUARD_TABLE or a table, huge PMDs stop the walk.
cdef pt_walk_ops _install_ops = pt_walk_ops(pte_range=_install_ptes, huge_pmd=_stop_here,
                                            hole=_install_hole, alloc=False)


cdef int pt_install_guards(pt_mm *mm, uint64_t start, uint64_t end,
                           uint64_t *stop) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_install_ops, start, end, 0, 0, NULL)
    stop[0] = w.stop
    return r if r < 0 else 0


cdef int _remove_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, m
    cdef int64_t guards
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == NONE_TABLE:
            return WALK_NEXT            # nothing to remove
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if not _scan(pte, n, &guards):      # the common case: only none and guard entries
        w.count += guards
        if n == PT_PTRS_PER_TABLE:
            _pmd_share(w.mm, pmd, 0)    # the kernel keeps the emptied table
        else:
            _fill(pte, n, 0)
        return WALK_NEXT
    for i in range(n):
        e = pte[i]
        m = pte_marker_bits(e)
        if m & PTE_MARKER_GUARD:
            # A guard marker with more than the exact value (soft-dirty after mremap, or
            # other marker bits): only the GUARD bit goes.
            m &= ~(<uint64_t>PTE_MARKER_GUARD)
            pte[i] = (make_marker_pte(m) | (e & SWP_FLAGS_MASK)) if m else 0
            w.count += 1
    return WALK_NEXT


# guard_remove_walk_ops: existing tables only, huge PMDs skipped.
cdef pt_walk_ops _remove_ops = pt_walk_ops(pte_range=_remove_ptes, huge_pmd=NULL, hole=NULL,
                                           alloc=False)


cdef int64_t pt_remove_guards(pt_mm *mm, uint64_t start, uint64_t end) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_remove_ops, start, end, 0, 0, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# Zap (mm/memory.c zap_pte_range / zap_pmd_range, mm/pt_reclaim.c)
# ---------------------------------------------------------------------------------------
cdef inline void _unmap_pte(pt_mm *mm, uint64_t *p, uint64_t e, bint keep_uffd) noexcept nogil:
    """Clear one present PTE and drop its page's mapping. A file VMA registered for
    uffd-wp keeps the protection as a marker."""
    _unmap_frames(mm, pte_pfn(e), 1, (e & PTE_DIRTY) != 0)
    p[0] = UFFD_WP_PTE if keep_uffd and (e & PTE_UFFD_WP) else 0


cdef inline int _zap_one(pt_mm *mm, uint64_t *p, uint64_t e, int flags) noexcept nogil:
    """Zap one non-none PTE as zap_present_ptes()/zap_nonpresent_ptes() decide; returns 1
    if the entry was cleared, 0 if it is kept."""
    cdef bint keep_uffd = (flags & ZAP_KEEP_UFFD_WP) and not (flags & ZAP_DROP_MARKERS)
    cdef uint64_t m
    if pte_present(e):
        if (flags & ZAP_KEEP_COWS) and _kind(mm.fs, pte_pfn(e)) == FRAME_ANON:
            return 0
        _unmap_pte(mm, p, e, keep_uffd)
        return 1
    if swp_type(e) == SWP_TYPE_PTE_MARKER:
        m = swp_offset(e)
        if m & PTE_MARKER_UFFD_WP:
            if keep_uffd:
                return 0
        elif m & PTE_MARKER_GUARD:
            if not (flags & ZAP_DROP_MARKERS):
                return 0
        elif m & PTE_MARKER_POISONED:
            if flags & ZAP_KEEP_COWS:
                return 0
        p[0] = 0
        return 1
    if flags & ZAP_KEEP_COWS:       # a genuine swap entry is a private anon page
        return 0
    mm.swap_ents -= 1
    p[0] = UFFD_WP_PTE if keep_uffd and (e & SWP_UFFD_WP) else 0
    return 1


cdef int _zap_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e
    cdef int flags = <int>w.arg
    cdef int64_t guards
    cdef bint emptied
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == GUARD_TABLE and not (flags & ZAP_DROP_MARKERS):
            return WALK_NEXT            # guard markers survive an ordinary zap
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if _scan(pte, n, &guards):
        for i in range(n):
            e = pte[i]
            if e != 0:
                w.count += _zap_one(w.mm, pte + i, e, flags)
        emptied = not _or_table(entry_table(pmd[0]))
    else:                               # only none and guard entries
        if flags & ZAP_DROP_MARKERS:
            w.count += guards
            if n < PT_PTRS_PER_TABLE:   # a whole table is emptied below
                _fill(pte, n, 0)
        emptied = guards == 0 or (flags & ZAP_DROP_MARKERS)
    # PT_RECLAIM: a table whose whole span was zapped and is now empty goes; without it
    # the kernel keeps the empty table, which can then be the shared NONE_TABLE.
    if end - addr == PMD_SIZE_ and emptied:
        if flags & ZAP_RECLAIM_PT:
            _free_table(w.mm, pmd, PT_PMD_SHIFT)
        else:
            _pmd_share(w.mm, pmd, 0)
    return WALK_NEXT


cdef int _zap_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef int r
    if end - addr == PMD_SIZE_:
        if (w.arg & ZAP_KEEP_COWS) and _kind(w.mm.fs, pte_pfn(pmd[0])) == FRAME_ANON:
            return WALK_NEXT
        _zap_huge_pmd(w.mm, pmd)
        w.count += PT_HPAGE_NR
        return WALK_NEXT
    r = pt_split_huge_pmd(w.mm, pmd)
    return r if r < 0 else WALK_DESCEND


cdef pt_walk_ops _zap_ops = pt_walk_ops(pte_range=_zap_ptes, huge_pmd=_zap_huge, hole=NULL,
                                        alloc=False)


cdef int64_t pt_zap(pt_mm *mm, uint64_t start, uint64_t end, int flags) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_zap_ops, start, end, <uint64_t>flags, 0, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# free_pgd_range (mm/memory.c), with a dry run that proves nothing is leaked
# ---------------------------------------------------------------------------------------
cdef int _table_clear_except(uint64_t *table, int shift, uint64_t base, Py_ssize_t lo,
                             Py_ssize_t hi, uint64_t *bad) noexcept nogil:
    """1 (and *bad) if an entry of table outside the index range [lo, hi) is not none."""
    cdef Py_ssize_t i
    for i in range(PT_PTRS_PER_TABLE):
        if (i < lo or i >= hi) and table[i] != 0:
            bad[0] = base + (<uint64_t>i << shift)
            return 1
    return 0


cdef int _free_pte_table(pt_mm *mm, uint64_t *pmd, uint64_t addr, bint dry,
                         uint64_t *bad) noexcept nogil:
    """free_pte_range(): the table must hold only none entries."""
    cdef uint64_t base = addr & PMD_MASK_
    cdef uint64_t *table
    if not pmd_is_table(pmd[0]):
        bad[0] = base
        return 1
    table = entry_table(pmd[0])
    if _table_clear_except(table, PT_PAGE_SHIFT, base, 0, 0, bad):
        return 1
    if not dry:
        _free_table(mm, pmd, PT_PMD_SHIFT)
    return 0


cdef inline bint _span_fits(uint64_t start, uint64_t end, uint64_t mask, uint64_t floor,
                            uint64_t ceiling) noexcept nogil:
    """The tail check of free_pmd_range()/free_pud_range(): may the table whose span
    starts at start & mask go, given the caller's floor and ceiling?"""
    start &= mask
    if start < floor:
        return False
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return False
    if end - 1 > ceiling - 1:
        return False
    return True


cdef int _free_pmd_range(pt_mm *mm, uint64_t *pud, uint64_t addr, uint64_t end,
                         uint64_t floor, uint64_t ceiling, bint dry,
                         uint64_t *bad) noexcept nogil:
    cdef uint64_t *table = entry_table(pud[0])
    cdef uint64_t start = addr, next
    cdef Py_ssize_t lo = pt_index(addr, PT_PMD_SHIFT), hi = lo
    while True:
        next = pt_addr_end(addr, end, PT_PMD_SHIFT)
        hi += 1
        if table[pt_index(addr, PT_PMD_SHIFT)] != 0 and \
                _free_pte_table(mm, table + pt_index(addr, PT_PMD_SHIFT), addr, dry, bad):
            return 1
        addr = next
        if addr == end:
            break
    if not _span_fits(start, end, PUD_MASK_, floor, ceiling):
        return 0
    if _table_clear_except(table, PT_PMD_SHIFT, start & PUD_MASK_, lo, hi, bad):
        return 1
    if not dry:
        _free_table(mm, pud, PT_PUD_SHIFT)
    return 0


cdef int _free_pud_range(pt_mm *mm, uint64_t *pgd, uint64_t addr, uint64_t end,
                         uint64_t floor, uint64_t ceiling, bint dry,
                         uint64_t *bad) noexcept nogil:
    cdef uint64_t *table = entry_table(pgd[0])
    cdef uint64_t start = addr, next
    cdef Py_ssize_t lo = pt_index(addr, PT_PUD_SHIFT), hi = lo, i
    while True:
        next = pt_addr_end(addr, end, PT_PUD_SHIFT)
        hi += 1
        if table[pt_index(addr, PT_PUD_SHIFT)] != 0 and \
                _free_pmd_range(mm, table + pt_index(addr, PT_PUD_SHIFT), addr, next,
                                floor, ceiling, dry, bad):
            return 1
        addr = next
        if addr == end:
            break
    # With the P4D level folded, free_p4d_range's PUD-table check uses the PGDIR span.
    if not _span_fits(start, end, PGDIR_MASK_, floor, ceiling):
        return 0
    if dry:
        # Every PMD table in [lo, hi) would have been freed (a table whose 1 GiB span
        # lies in a freed 512 GiB span always fits too); the rest must already be none.
        if _table_clear_except(table, PT_PUD_SHIFT, start & PGDIR_MASK_, lo, hi, bad):
            return 1
    else:
        for i in range(PT_PTRS_PER_TABLE):
            if table[i] != 0:
                bad[0] = (start & PGDIR_MASK_) + (<uint64_t>i << PT_PUD_SHIFT)
                return 1
        _free_table(mm, pgd, PT_PGDIR_SHIFT)
    return 0


cdef int pt_free_pgtables(pt_mm *mm, uint64_t addr, uint64_t end, uint64_t floor,
                          uint64_t ceiling, bint dry_run, uint64_t *bad) noexcept nogil:
    """free_pgd_range(addr, end, floor, ceiling). Returns 0, or 1 with *bad set to the
    address of an entry that is not none under a table that would be freed."""
    cdef uint64_t next
    cdef uint64_t *pgd
    addr &= PMD_MASK_
    if addr < floor:
        addr += PMD_SIZE_
        if not addr:
            return 0
    if ceiling:
        ceiling &= PMD_MASK_
        if not ceiling:
            return 0
    if end - 1 > ceiling - 1:
        end -= PMD_SIZE_
    if addr > end - 1:
        return 0
    while True:
        next = pt_addr_end(addr, end, PT_PGDIR_SHIFT)
        pgd = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
        if pgd[0] != 0 and _free_pud_range(mm, pgd, addr, next, floor, ceiling, dry_run, bad):
            return 1
        addr = next
        if addr == end:
            return 0


# ---------------------------------------------------------------------------------------
# fork: copy_page_range (mm/memory.c copy_p4d_range .. copy_pte_range, copy_huge_pmd)
# ---------------------------------------------------------------------------------------
cdef int64_t _copy_ptes(pt_mm *src, pt_mm *dst, uint64_t *spte, uint64_t *dpte,
                        Py_ssize_t n, int flags) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t e, m
    cdef int64_t count = 0
    for i in range(n):
        e = spte[i]
        if e == 0:
            continue
        if pte_present(e):
            _map_frames(dst, pte_pfn(e), 1)
            if (flags & COPY_COW) and (e & PTE_RW):
                e &= ~PTE_RW
                spte[i] = e
            if flags & COPY_SHARED:
                e &= ~PTE_DIRTY
            e &= ~PTE_ACCESSED
            if not (flags & COPY_UFFD_WP):
                e &= ~PTE_UFFD_WP
        elif swp_type(e) == SWP_TYPE_PTE_MARKER:
            # copy_pte_marker(): error and guard markers always, uffd-wp only to a uffd-wp
            # registered child.
            m = swp_offset(e)
            m &= PTE_MARKER_POISONED | PTE_MARKER_GUARD | \
                (PTE_MARKER_UFFD_WP if flags & COPY_UFFD_WP else 0)
            if not m:
                continue
            e = make_marker_pte(m)
        else:
            dst.swap_ents += 1
            if not (flags & COPY_UFFD_WP):
                e &= ~SWP_UFFD_WP
        dpte[i] = e
        count += 1
    return count


cdef int64_t _copy_huge(pt_mm *src, pt_mm *dst, uint64_t *spmd, uint64_t *dpmd,
                        int flags) noexcept nogil:
    cdef uint64_t v = spmd[0], head = pte_pfn(v)
    if not _has_deposit(src.fs, head):
        return 0        # copy_huge_pmd() leaves file/shmem THPs to refault in the child
    if dpmd[0] != 0:    # an empty PTE table left in the child (checked by the caller)
        _free_table(dst, dpmd, PT_PMD_SHIFT)
    _map_frames(dst, head, PT_HPAGE_NR)
    dst.nr_pte_tables += 1      # the child's deposited table
    if (flags & COPY_COW) and (v & PTE_RW):
        v &= ~PTE_RW
        spmd[0] = v
    v &= ~PTE_ACCESSED
    if not (flags & COPY_UFFD_WP):
        v &= ~PTE_UFFD_WP
    dpmd[0] = v
    return PT_HPAGE_NR


cdef int64_t _copy_level(pt_mm *src, pt_mm *dst, uint64_t *stable, uint64_t *dtable,
                         int shift, uint64_t addr, uint64_t end, int flags) noexcept nogil:
    """copy_pud_range (shift = PUD) or copy_pmd_range (shift = PMD): the destination table
    exists; each non-none source entry gets its destination entry allocated and copied."""
    cdef uint64_t next, v
    cdef uint64_t *de
    cdef int64_t count = 0, r
    while True:
        next = pt_addr_end(addr, end, shift)
        v = stable[pt_index(addr, shift)]
        de = dtable + pt_index(addr, shift)
        r = 0
        if shift == PT_PMD_SHIFT and pmd_is_huge(v):
            r = _copy_huge(src, dst, stable + pt_index(addr, shift), de, flags)
        elif shift == PT_PMD_SHIFT and pmd_is_shared(v) and de[0] == 0 and \
                next - addr == PMD_SIZE_:
            # copy_pte_range() of a whole uniform table: copy_pte_marker() gives guard
            # markers to every child, so the child names the same canonical table.
            _pmd_share(dst, de, entry_table(v)[0])
            r = PT_PTRS_PER_TABLE if entry_table(v)[0] else 0
        elif v != 0:
            if shift == PT_PMD_SHIFT:
                if _pte_table_private(dst, de) < 0:
                    return -ENOMEM
                r = _copy_ptes(src, dst, entry_table(v) + pt_index(addr, PT_PAGE_SHIFT),
                               entry_table(de[0]) + pt_index(addr, PT_PAGE_SHIFT),
                               <Py_ssize_t>((next - addr) >> PT_PAGE_SHIFT), flags)
            else:
                if de[0] == 0 and pt_alloc_table(dst, de, shift) < 0:
                    return -ENOMEM
                r = _copy_level(src, dst, entry_table(v), entry_table(de[0]), shift - 9,
                                addr, next, flags)
                if r < 0:
                    return r
        count += r
        addr = next
        if addr == end:
            return count


cdef int64_t pt_copy_range(pt_mm *src, pt_mm *dst, uint64_t start, uint64_t end,
                           int flags) noexcept nogil:
    cdef uint64_t addr = start, next, v
    cdef uint64_t *de
    cdef int64_t count = 0, r
    if start >= end:
        return 0
    while True:
        next = pt_addr_end(addr, end, PT_PGDIR_SHIFT)
        v = src.pgd[pt_index(addr, PT_PGDIR_SHIFT)]
        if v != 0:
            de = dst.pgd + pt_index(addr, PT_PGDIR_SHIFT)
            if de[0] == 0 and pt_alloc_table(dst, de, PT_PGDIR_SHIFT) < 0:
                return -ENOMEM
            r = _copy_level(src, dst, entry_table(v), entry_table(de[0]), PT_PUD_SHIFT,
                            addr, next, flags)
            if r < 0:
                return r
            count += r
        addr = next
        if addr == end:
            return count


# ---------------------------------------------------------------------------------------
# mremap: move_page_tables (mm/mremap.c)
# ---------------------------------------------------------------------------------------
cdef inline uint64_t _move_extent(uint64_t old_addr, uint64_t old_end, uint64_t new_addr,
                                  uint64_t size) noexcept nogil:
    """get_extent(): up to the next size boundary of both addresses, within the range."""
    cdef uint64_t extent = ((old_addr + size) & ~(size - 1)) - old_addr
    if extent > old_end - old_addr:
        extent = old_end - old_addr
    if extent > ((new_addr + size) & ~(size - 1)) - new_addr:
        extent = ((new_addr + size) & ~(size - 1)) - new_addr
    return extent


cdef uint64_t *_old_entry(pt_mm *mm, uint64_t addr, int shift) noexcept nogil:
    """get_old_pud()/get_old_pmd(): the non-none entry at level shift, else NULL."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    cdef int s = PT_PGDIR_SHIFT
    while s > shift:
        if e[0] == 0:
            return NULL
        s -= 9
        e = entry_table(e[0]) + pt_index(addr, s)
    return e if e[0] != 0 else NULL


cdef uint64_t *_new_entry(pt_mm *mm, uint64_t addr, int shift) noexcept nogil:
    """alloc_new_pud()/alloc_new_pmd(): the entry at level shift, allocating the tables
    above it; NULL on ENOMEM."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    cdef int s = PT_PGDIR_SHIFT
    while s > shift:
        if e[0] == 0 and pt_alloc_table(mm, e, s) < 0:
            return NULL
        s -= 9
        e = entry_table(e[0]) + pt_index(addr, s)
    return e


cdef inline uint64_t _move_soft_dirty(uint64_t e) noexcept nogil:
    """move_soft_dirty_pte(): a moved entry is soft-dirty (markers included)."""
    return e | (PTE_SOFT_DIRTY if pte_present(e) else SWP_SOFT_DIRTY)


cdef int64_t pt_move_range(pt_mm *mm, uint64_t old_addr, uint64_t new_addr,
                           uint64_t length) noexcept nogil:
    """Returns the bytes moved (length), or -ENOMEM. The destination range must be all
    none (as after the caller's unmap) and must not overlap the source."""
    cdef uint64_t old_end = old_addr + length, extent
    cdef uint64_t *old_e
    cdef uint64_t *new_e
    cdef uint64_t *src
    cdef uint64_t *dst
    cdef Py_ssize_t i, n
    cdef int r
    while old_addr < old_end:
        extent = _move_extent(old_addr, old_end, new_addr, PUD_SIZE_)
        old_e = _old_entry(mm, old_addr, PT_PUD_SHIFT)
        if old_e == NULL:
            old_addr += extent
            new_addr += extent
            continue
        new_e = _new_entry(mm, new_addr, PT_PUD_SHIFT)
        if new_e == NULL:
            return -ENOMEM
        if extent == PUD_SIZE_ and new_e[0] == 0:
            # move_normal_pud(): the whole PMD table changes hands.
            new_e[0] = old_e[0]
            old_e[0] = 0
            old_addr += extent
            new_addr += extent
            continue
        extent = _move_extent(old_addr, old_end, new_addr, PMD_SIZE_)
        old_e = _old_entry(mm, old_addr, PT_PMD_SHIFT)
        if old_e == NULL:
            old_addr += extent
            new_addr += extent
            continue
        new_e = _new_entry(mm, new_addr, PT_PMD_SHIFT)
        if new_e == NULL:
            return -ENOMEM
        if pmd_is_huge(old_e[0]):
            if extent == PMD_SIZE_ and new_e[0] == 0:
                # move_huge_pmd() (the deposited table moves along within the mm)
                new_e[0] = old_e[0] | PTE_SOFT_DIRTY
                old_e[0] = 0
                old_addr += extent
                new_addr += extent
                continue
            r = pt_split_huge_pmd(mm, old_e)
            if r < 0:
                return r
        elif extent == PMD_SIZE_ and new_e[0] == 0:
            # move_normal_pmd(): the whole PTE table changes hands.
            new_e[0] = old_e[0]
            old_e[0] = 0
            old_addr += extent
            new_addr += extent
            continue
        if old_e[0] != 0:
            # move_ptes() writes both tables: neither may be a shared one.
            if _pte_table_private(mm, new_e) < 0 or pte_table_unshare(mm, old_e) < 0:
                return -ENOMEM
            # move_ptes()
            src = _ptes(old_e, old_addr)
            dst = _ptes(new_e, new_addr)
            n = <Py_ssize_t>(extent >> PT_PAGE_SHIFT)
            for i in range(n):
                if src[i] != 0:
                    dst[i] = _move_soft_dirty(src[i])
                    src[i] = 0
        old_addr += extent
        new_addr += extent
    return <int64_t>length


# ---------------------------------------------------------------------------------------
# First-touch faults on private anonymous memory (do_anonymous_page, do_wp_page reuse)
# ---------------------------------------------------------------------------------------
cdef enum:
    FAULT_WRITE = 1
    FAULT_TOUCH = 2

cdef int _fault_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    """The pages of one PTE table: _fault_pte_run() and the counting of its new pages."""
    cdef int64_t fresh = 0
    cdef int r = _fault_pte_run(w, pmd, addr, end, &fresh)
    # One update of RSS and the frame count for the whole run (add_mm_counter() once per
    # batch, as the kernel's fault-around and folio batches do).
    w.mm.rss[FRAME_ANON] += fresh
    w.mm.fs.nr_used += fresh
    return r


cdef inline int _fault_pte_run(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end,
                               int64_t *fresh) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, pfn, prot = w.arg2
    cdef uint64_t written = PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY | PTE_ACCESSED
    cdef bint write = (w.arg & FAULT_WRITE) != 0, touch = (w.arg & FAULT_TOUCH) != 0
    cdef frame_store *fs = w.mm.fs
    cdef int64_t newpfn
    # A shared table of guards stops the walk at its first entry without writing; a
    # shared empty one is filled: it becomes this mm's own.
    if pmd_is_shared(pmd[0]) and entry_table(pmd[0]) == NONE_TABLE:
        if pte_table_unshare(w.mm, pmd) < 0:
            w.stop = addr
            return -ENOMEM
        pte = _ptes(pmd, addr)
    for i in range(n):
        e = pte[i]
        if e != 0 and (e & PTE_PRESENT) == 0:
            w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)   # marker, swap, PROT_NONE
            return WALK_STOP
        pfn = pte_pfn(e)
        if e == 0 or (write and pfn == FRAME_ZERO_PFN):
            if not write:
                pte[i] = (<uint64_t>FRAME_ZERO_PFN << PT_PAGE_SHIFT) | PTE_SPECIAL | \
                    (prot & ~(PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY))
                continue
            newpfn = _fs_take(fs)
            if newpfn < 0:
                w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)
                return <int>newpfn
            # A fresh anon page, mapped once: its one reference is the mapping's.
            fs.refcount[newpfn] = 1
            fs.mapcount[newpfn] = 1
            fs.flags[newpfn] = FRAME_ANON
            fresh[0] += 1
            pte[i] = (<uint64_t>newpfn << PT_PAGE_SHIFT) | prot | written
            continue
        if not write:
            if touch:
                pte[i] = e | PTE_ACCESSED
            continue
        if e & PTE_RW:
            if touch:
                pte[i] = e | PTE_ACCESSED | PTE_DIRTY
            continue
        if _kind(fs, pfn) == FRAME_ANON and fs.mapcount[pfn] == 1 and fs.refcount[pfn] == 1:
            pte[i] = e | written                # wp_page_reuse(): exclusive anon page
            continue
        w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)   # COW copy or a file page
        return WALK_STOP
    return WALK_NEXT


cdef int _fault_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t i
    cdef bint exclusive = _kind(fs, head) == FRAME_ANON
    if not (v & PTE_PRESENT):
        return _stop_here(w, pmd, addr, end)
    if not (w.arg & FAULT_WRITE):
        if w.arg & FAULT_TOUCH:
            pmd[0] = v | PTE_ACCESSED
        return WALK_NEXT
    if v & PTE_RW:
        if w.arg & FAULT_TOUCH:
            pmd[0] = v | PTE_ACCESSED | PTE_DIRTY
        return WALK_NEXT
    for i in range(head, head + PT_HPAGE_NR):
        exclusive = exclusive and fs.mapcount[i] == 1 and fs.refcount[i] == 1
    if not exclusive:
        return _stop_here(w, pmd, addr, end)
    pmd[0] = v | PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY | PTE_ACCESSED
    return WALK_NEXT


# Faults allocate the tables they need (__handle_mm_fault()).
cdef pt_walk_ops _fault_ops = pt_walk_ops(pte_range=_fault_ptes, huge_pmd=_fault_huge,
                                          hole=NULL, alloc=True)


cdef int pt_fault_anon(pt_mm *mm, uint64_t start, uint64_t end, bint write,
                       uint64_t pte_flags, bint touch, uint64_t *stop) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_fault_ops, start, end,
                             (FAULT_WRITE if write else 0) | (FAULT_TOUCH if touch else 0),
                             pte_flags, NULL)
    stop[0] = w.stop
    return r if r < 0 else 0


# ---------------------------------------------------------------------------------------
# mprotect: change_protection (mm/mprotect.c change_pte_range / change_huge_pmd)
# ---------------------------------------------------------------------------------------
cdef int _prot_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, ne, keep = ~w.arg2, bits = w.arg & w.arg2
    for i in range(n):
        e = pte[i]
        if pte_present(e):
            ne = (e & keep) | bits
            if ne != e:
                pte[i] = ne
                w.count += 1
    return WALK_NEXT


cdef int _prot_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t e = pmd[0], ne
    cdef int r
    if end - addr != PMD_SIZE_:
        r = pt_split_huge_pmd(w.mm, pmd)
        return r if r < 0 else WALK_DESCEND
    ne = (e & ~w.arg2) | (w.arg & w.arg2)
    if ne != e:
        pmd[0] = ne
        w.count += PT_HPAGE_NR
    return WALK_NEXT


cdef pt_walk_ops _prot_ops = pt_walk_ops(pte_range=_prot_ptes, huge_pmd=_prot_huge, hole=NULL,
                                         alloc=False)


cdef int64_t pt_change_prot(pt_mm *mm, uint64_t start, uint64_t end, uint64_t newflags,
                            uint64_t mask) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_prot_ops, start, end, newflags, mask, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# MADV_COLD / MADV_PAGEOUT (mm/madvise.c madvise_cold_or_pageout_pte_range(), then for
# PAGEOUT mm/vmscan.c reclaim_pages() -> shrink_folio_list() with no swap device)
# ---------------------------------------------------------------------------------------
cdef inline bint _reclaim_keeps(frame_store *fs, uint64_t pfn, uint64_t e) noexcept nogil:
    """shrink_folio_list() on an exclusive page mapped by PTE e: True if it stays mapped.
    With no swap, add_to_swap() fails for a swap-backed anon page; a lazyfree one is
    discarded by try_to_unmap_one() unless written since MADV_FREE, which makes it
    swap-backed again. A page-cache page (file or shmem) is unmapped whatever its
    protection; what becomes of it in the cache is decided after the walk
    (advice.pyx _reclaimed_cache_pages())."""
    if _kind(fs, pfn) != FRAME_ANON:
        return False
    if not (fs.flags[pfn] & FRAME_LAZYFREE):
        return True
    if (e & PTE_DIRTY) or (fs.flags[pfn] & FRAME_DIRTY):
        fs.flags[pfn] &= ~FRAME_LAZYFREE
        return True
    return False


cdef int _reclaim_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t e, pfn
    for i in range(n):
        e = pte[i]
        if not pte_present(e):
            continue
        pfn = pte_pfn(e)
        # vm_normal_folio() has none for the zero page; a folio mapped elsewhere too is
        # left alone (folio_mapcount() != folio_nr_pages()).
        if pfn_is_zero(pfn) or fs.mapcount[pfn] != 1:
            continue
        if not w.arg:
            pte[i] = e & ~PTE_ACCESSED          # COLD makes the PTE old
        elif not _reclaim_keeps(fs, pfn, e):
            _unmap_pte(w.mm, pte + i, e, w.arg2 != 0)
            w.count += 1
    return WALK_NEXT


cdef inline bint _all_zero(frame_store *fs, uint64_t pfn) noexcept nogil:
    """The page holds only zero bytes (memchr_inv(page, 0, PAGE_SIZE) finds nothing)."""
    cdef const uint8_t *d = fs.data[pfn]
    cdef Py_ssize_t i
    if d == NULL:
        return True
    for i in range(PAGE_SIZE_):
        if d[i]:
            return False
    return True


cdef int _split_for_reclaim(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """split_folio() of an exclusive anon THP (RMP_USE_SHARED_ZEROPAGE): the PMD becomes
    PTEs, and each subpage that holds only zeroes is freed and maps the shared zero page
    instead (mm/migrate.c try_to_map_unused_to_zeropage())."""
    cdef uint64_t *pte
    cdef uint64_t e, pfn
    cdef Py_ssize_t i
    cdef int r = pt_split_huge_pmd(mm, pmd)
    if r < 0:
        return r
    pte = entry_table(pmd[0])
    for i in range(PT_HPAGE_NR):
        e = pte[i]
        pfn = pte_pfn(e)
        if _all_zero(mm.fs, pfn):
            _unmap_frames(mm, pfn, 1, False)
            pte[i] = (<uint64_t>FRAME_ZERO_PFN << PT_PAGE_SHIFT) | PTE_SPECIAL | \
                (e & ~(PTE_PFN_MASK | PTE_RW | PTE_DIRTY | PTE_ACCESSED | PTE_SOFT_DIRTY))
    return 0


cdef int _reclaim_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef int64_t i
    cdef int r
    if pfn_is_zero(head) or fs.mapcount[head] != 1:
        return WALK_NEXT
    if _kind(fs, head) != FRAME_ANON:
        if end - addr != PMD_SIZE_:
            r = pt_split_huge_pmd(w.mm, pmd)    # a file THP's PMD is just unmapped
            return r if r < 0 else WALK_DESCEND
        if not w.arg:
            pmd[0] = v & ~PTE_ACCESSED
        else:
            _zap_huge_pmd(w.mm, pmd)
            w.count += PT_HPAGE_NR
        return WALK_NEXT
    if end - addr != PMD_SIZE_:
        # Part of the THP: it is split, and the pages in the range handled one by one.
        r = _split_for_reclaim(w.mm, pmd)
        return r if r < 0 else WALK_DESCEND
    if not w.arg:
        pmd[0] = v & ~PTE_ACCESSED
    elif not (fs.flags[head] & FRAME_LAZYFREE):
        # add_to_swap() fails for the THP; shrink_folio_list() splits it to retry its pages
        # one by one, which fail too and stay.
        r = _split_for_reclaim(w.mm, pmd)
        return r if r < 0 else WALK_NEXT
    else:
        # try_to_unmap(TTU_SPLIT_HUGE_PMD) of a lazyfree THP: the PMD is split (into the
        # deposited PTE table, which stays); then every page is dropped, unless the THP
        # was written since MADV_FREE: it is swap-backed again and stays, as PTEs.
        r = pt_split_huge_pmd(w.mm, pmd)
        if r < 0:
            return r
        if not ((v & PTE_DIRTY) or (fs.flags[head] & FRAME_DIRTY)):
            return WALK_DESCEND
        for i in range(PT_HPAGE_NR):
            fs.flags[head + i] &= ~FRAME_LAZYFREE
    return WALK_NEXT


cdef pt_walk_ops _reclaim_ops = pt_walk_ops(pte_range=_reclaim_ptes, huge_pmd=_reclaim_huge,
                                            hole=NULL, alloc=False)


cdef int64_t pt_reclaim(pt_mm *mm, uint64_t start, uint64_t end, bint pageout,
                        bint keep_uffd) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_reclaim_ops, start, end, pageout, keep_uffd, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# /proc/pid/pagemap (fs/proc/task_mmu.c pte_to_pagemap_entry, pagemap_pmd_range)
# ---------------------------------------------------------------------------------------
cdef struct pm_out:
    uint64_t *out
    Py_ssize_t stride       # in u64 elements
    uint64_t base_flags     # PM_SOFT_DIRTY when the VMA is VM_SOFTDIRTY


cdef inline uint64_t _pm_present(frame_store *fs, uint64_t pfn) noexcept nogil:
    """PM bits of a PTE-mapped page: FILE unless anon, EXCLUSIVE if mapped once; none for
    the zero page (vm_normal_page() has no page for it)."""
    cdef uint64_t f = 0
    if pfn_is_zero(pfn) or pfn >= <uint64_t>fs.high:
        return 0
    if _kind(fs, pfn) != FRAME_ANON:
        f |= PM_FILE_
    if fs.mapcount[pfn] == 1:
        f |= PM_MMAP_EXCLUSIVE_
    return f


cdef inline uint64_t _pm_folio(frame_store *fs, uint64_t head) noexcept nogil:
    """PM bits of a PMD-mapped folio, the same for every subpage: FILE unless anon (the
    huge zero folio included: pagemap takes pmd_page(), not vm_normal_page()); EXCLUSIVE
    per folio, i.e. only if no subpage is mapped anywhere else."""
    cdef uint64_t i
    if pfn_is_zero(head):
        return PM_FILE_
    for i in range(head, head + PT_HPAGE_NR):
        if fs.mapcount[i] != 1:
            return PM_FILE_ if _kind(fs, head) != FRAME_ANON else 0
    return PM_MMAP_EXCLUSIVE_ | (PM_FILE_ if _kind(fs, head) != FRAME_ANON else 0)


cdef inline uint64_t _pm_entry(frame_store *fs, uint64_t e) noexcept nogil:
    cdef uint64_t pfn, f, t, off
    if e == 0:
        return 0
    if pte_present(e):
        pfn = pte_pfn(e)
        f = PM_PRESENT_ | (pfn & PM_PFRAME_MASK_) | _pm_present(fs, pfn)
        if e & PTE_SOFT_DIRTY:
            f |= PM_SOFT_DIRTY_
        if e & PTE_UFFD_WP:
            f |= PM_UFFD_WP_
        return f
    t = swp_type(e)
    off = swp_offset(e)
    f = PM_SWAP_ | ((t | (off << SWP_TYPE_BITS)) & PM_PFRAME_MASK_)
    if e & SWP_SOFT_DIRTY:
        f |= PM_SOFT_DIRTY_
    if e & SWP_UFFD_WP:
        f |= PM_UFFD_WP_
    if t == SWP_TYPE_PTE_MARKER:
        if off & PTE_MARKER_UFFD_WP:
            f |= PM_UFFD_WP_
        if off & PTE_MARKER_GUARD:
            f |= PM_GUARD_REGION_
    return f


cdef int _pm_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    for i in range(n):
        out[i * o.stride] = _pm_entry(w.mm.fs, pte[i]) | o.base_flags
    return WALK_NEXT


cdef int _pm_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef uint64_t v = pmd[0], pfn = pte_pfn(v) + pt_index(addr, PT_PAGE_SHIFT), f
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    f = PM_PRESENT_ | o.base_flags | _pm_folio(w.mm.fs, pte_pfn(v))
    if v & PTE_SOFT_DIRTY:
        f |= PM_SOFT_DIRTY_
    if v & PTE_UFFD_WP:
        f |= PM_UFFD_WP_
    for i in range(n):
        out[i * o.stride] = f | (pfn + i)
    return WALK_NEXT


cdef int _pm_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    for i in range(n):
        out[i * o.stride] = o.base_flags
    return WALK_NEXT


cdef pt_walk_ops _pm_ops = pt_walk_ops(pte_range=_pm_ptes, huge_pmd=_pm_huge, hole=_pm_hole,
                                       alloc=False)


cdef int pt_pagemap(pt_mm *mm, uint64_t start, uint64_t end, uint64_t *out,
                    Py_ssize_t stride, bint vma_softdirty) noexcept nogil:
    cdef pt_walk w
    cdef pm_out o
    o.out = out
    o.stride = stride
    o.base_flags = PM_SOFT_DIRTY_ if vma_softdirty else 0
    return pt_run_walk(&w, mm, &_pm_ops, start, end, 0, 0, &o)


# ---------------------------------------------------------------------------------------
# /proc/pid/smaps (fs/proc/task_mmu.c smaps_pte_entry, smaps_pmd_entry, smaps_account)
# ---------------------------------------------------------------------------------------
cdef struct smaps_acc:
    int64_t rss
    int64_t pss
    int64_t pss_anon
    int64_t pss_file
    int64_t pss_shmem
    int64_t pss_dirty
    int64_t shared_clean
    int64_t shared_dirty
    int64_t private_clean
    int64_t private_dirty
    int64_t referenced
    int64_t anonymous
    int64_t lazyfree
    int64_t anon_huge
    int64_t shmem_huge
    int64_t file_huge
    int64_t swap


cdef inline void _smaps_page(smaps_acc *a, int kind, int64_t size, int64_t pss,
                             bint dirty, bint private) noexcept nogil:
    """smaps_page_accumulate()"""
    a.pss += pss
    if kind == FRAME_ANON:
        a.pss_anon += pss
    elif kind == FRAME_SHMEM:
        a.pss_shmem += pss
    else:
        a.pss_file += pss
    if dirty:
        a.pss_dirty += pss
        if private:
            a.private_dirty += size
        else:
            a.shared_dirty += size
    else:
        if private:
            a.private_clean += size
        else:
            a.shared_clean += size


cdef void _smaps_account(smaps_acc *a, frame_store *fs, uint64_t pfn, int64_t nr,
                         bint young, bint dirty) noexcept nogil:
    """smaps_account() for a folio of nr pages starting at pfn."""
    cdef int kind = _kind(fs, pfn)
    cdef int64_t size = nr << PT_PAGE_SHIFT, i, mc, pss
    cdef bint folio_dirty = (fs.flags[pfn] & FRAME_DIRTY) != 0
    a.rss += size
    if kind == FRAME_ANON:
        a.anonymous += size
        if (fs.flags[pfn] & FRAME_LAZYFREE) and not dirty and not folio_dirty:
            a.lazyfree += size
    if young:
        a.referenced += size
    dirty = dirty or folio_dirty
    if fs.refcount[pfn] == 1:
        _smaps_page(a, kind, size, size << 12, dirty, True)
        return
    for i in range(nr):
        mc = fs.mapcount[pfn + i]
        pss = <int64_t>PAGE_SIZE_ << 12
        if mc >= 2:
            pss //= mc
        _smaps_page(a, kind, PAGE_SIZE_, pss, dirty, mc < 2)


cdef int _smaps_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef smaps_acc *a = <smaps_acc *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, pfn
    for i in range(n):
        e = pte[i]
        if pte_present(e):
            pfn = pte_pfn(e)
            if not pfn_is_zero(pfn):
                _smaps_account(a, w.mm.fs, pfn, 1, (e & PTE_ACCESSED) != 0,
                               (e & PTE_DIRTY) != 0)
        elif e != 0 and swp_type(e) != SWP_TYPE_PTE_MARKER:
            a.swap += PAGE_SIZE_
    return WALK_NEXT


cdef int _smaps_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef smaps_acc *a = <smaps_acc *>w.priv
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef int kind = _kind(w.mm.fs, head)
    if pfn_is_zero(head):
        return WALK_NEXT        # vm_normal_page_pmd() has no page for the huge zero PMD
    if kind == FRAME_ANON:
        a.anon_huge += PMD_SIZE_
    elif kind == FRAME_SHMEM:
        a.shmem_huge += PMD_SIZE_
    else:
        a.file_huge += PMD_SIZE_
    _smaps_account(a, w.mm.fs, head, PT_HPAGE_NR, (v & PTE_ACCESSED) != 0,
                   (v & PTE_DIRTY) != 0)
    return WALK_NEXT


cdef pt_walk_ops _smaps_ops = pt_walk_ops(pte_range=_smaps_ptes, huge_pmd=_smaps_huge,
                                          hole=NULL, alloc=False)


# ---------------------------------------------------------------------------------------
# count() and dump() (introspection for the Python layer and tests)
# ---------------------------------------------------------------------------------------
cdef struct entry_counts:
    int64_t none
    int64_t present
    int64_t protnone
    int64_t zero_page
    int64_t guard
    int64_t poison
    int64_t uffd_wp
    int64_t swap
    int64_t huge_pmd
    int64_t pte_tables


cdef int _count_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef entry_counts *c = <entry_counts *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, m
    c.pte_tables += 1
    for i in range(n):
        e = pte[i]
        if e == 0:
            c.none += 1
        elif e & PTE_PRESENT:
            c.present += 1
            c.zero_page += pte_pfn(e) == FRAME_ZERO_PFN
        elif e & PTE_PROTNONE:
            c.protnone += 1
        elif swp_type(e) == SWP_TYPE_PTE_MARKER:
            m = swp_offset(e)
            c.guard += (m & PTE_MARKER_GUARD) != 0
            c.poison += (m & PTE_MARKER_POISONED) != 0
            c.uffd_wp += (m & PTE_MARKER_UFFD_WP) != 0
        else:
            c.swap += 1
    return WALK_NEXT


cdef int _count_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    (<entry_counts *>w.priv).huge_pmd += 1
    return WALK_NEXT


cdef int _count_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    (<entry_counts *>w.priv).none += <int64_t>((end - addr) >> PT_PAGE_SHIFT)
    return WALK_NEXT


cdef struct entry_list:
    uint64_t *items         # pairs (address, raw)
    Py_ssize_t n
    Py_ssize_t cap


cdef int _list_push(entry_list *l, uint64_t addr, uint64_t raw) noexcept nogil:
    cdef void *p
    if l.n + 2 > l.cap:
        p = realloc(l.items, (l.cap * 2 + 64) * sizeof(uint64_t))
        if p == NULL:
            return -ENOMEM
        l.items = <uint64_t *>p
        l.cap = l.cap * 2 + 64
    l.items[l.n] = addr
    l.items[l.n + 1] = raw
    l.n += 2
    return 0


cdef int _dump_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    for i in range(n):
        if pte[i] != 0 and _list_push(<entry_list *>w.priv,
                                      addr + (<uint64_t>i << PT_PAGE_SHIFT), pte[i]) < 0:
            return -ENOMEM
    return WALK_NEXT


cdef int _dump_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    return _list_push(<entry_list *>w.priv, addr & PMD_MASK_, pmd[0])


cdef pt_walk_ops _count_ops = pt_walk_ops(pte_range=_count_ptes, huge_pmd=_count_huge,
                                          hole=_count_hole, alloc=False)
cdef pt_walk_ops _dump_ops = pt_walk_ops(pte_range=_dump_ptes, huge_pmd=_dump_huge, hole=NULL,
                                         alloc=False)


# ---------------------------------------------------------------------------------------
# PageTables
# ---------------------------------------------------------------------------------------
@cython.no_gc_clear
cdef class PageTables:
    """The page tables of one address space over a shared Frames.

    Every method takes page-aligned user addresses (half-open ranges [start, end) with
    start <= end <= 1 << 47) and raises ValueError/TypeError on anything else. The methods
    keep the GIL while they walk: the Frames (free list, counts) is shared by every
    PageTables of a System, so the GIL is what serialises them. C callers of the nogil
    entry points must serialise access per Frames themselves."""

    def __cinit__(self, Frames frames not None):
        memset(&self.mm, 0, sizeof(pt_mm))
        self.mm.fs = &frames.fs
        self.mm.pgd = _mm_new_table(&self.mm)
        if self.mm.pgd == NULL:
            raise MemoryError()
        self.frames = frames

    def __dealloc__(self):
        cdef uint64_t bad
        if self.mm.pgd == NULL:
            return
        # exit_mmap(): unmap everything, then free every table.
        pt_zap(&self.mm, 0, USER_END, ZAP_DROP_MARKERS)
        pt_free_pgtables(&self.mm, 0, USER_END, 0, 0, False, &bad)
        _mm_release_table(&self.mm, self.mm.pgd)
        self.mm.pgd = NULL

    # --- counters ---------------------------------------------------------------------
    @property
    def nr_pte_tables(self):
        return self.mm.nr_pte_tables

    @property
    def nr_pmd_tables(self):
        return self.mm.nr_pmd_tables

    @property
    def nr_pud_tables(self):
        return self.mm.nr_pud_tables

    @property
    def pgtables_bytes(self):
        """mm_pgtables_bytes(): what /proc/pid/status shows as VmPTE (in bytes)."""
        return PAGE_SIZE_ * (self.mm.nr_pte_tables + self.mm.nr_pmd_tables +
                             self.mm.nr_pud_tables)

    @property
    def nr_shared_pte_tables(self):
        """Of nr_pte_tables, those naming a canonical shared table (no host memory)."""
        return self.mm.nr_shared_pte_tables

    @property
    def host_table_bytes(self):
        """Host memory the tables of this mm take (the pgd included): VmPTE less the
        shared tables and the deposited tables of unsplit huge PMDs, plus the pgd."""
        return PAGE_SIZE_ * self.mm.nr_host_tables

    @property
    def rss_anon(self):
        return self.mm.rss[FRAME_ANON]

    @property
    def rss_file(self):
        return self.mm.rss[FRAME_FILE]

    @property
    def rss_shmem(self):
        return self.mm.rss[FRAME_SHMEM]

    @property
    def swap_ents(self):
        return self.mm.swap_ents

    # --- single entries ---------------------------------------------------------------
    def get_pmd(self, addr):
        """The raw PMD entry covering addr (0 if its PMD table is missing)."""
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, _one_page(addr), False)
        return pmd[0] if pmd != NULL else 0

    def get_pte(self, addr):
        """The raw PTE at addr; for a huge PMD, the PMD entry; 0 if no table."""
        cdef uint64_t a = _one_page(addr)
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, a, False)
        if pmd == NULL or pmd[0] == 0:
            return 0
        if pmd_is_huge(pmd[0]):
            return pmd[0]
        return _ptes(pmd, a)[0]

    def prepare_fault(self, addr, bint pte_table=False):
        """Allocate the tables a page fault sets up before it knows whether it can map a
        page (mm/memory.c: __handle_mm_fault() allocates the PUD and PMD tables; an
        anonymous fault also its PTE table, in do_anonymous_page()). They stay even when
        the fault then fails, as in the kernel. Nothing is allocated under a huge PMD."""
        cdef uint64_t a = _one_page(addr)
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, a, True)
        if pmd == NULL:
            raise MemoryError()
        if pte_table and not pmd_is_huge(pmd[0]) and _pte_entry(&self.mm, a, True) == NULL:
            raise MemoryError()

    def lookup(self, addr):
        """(kind, value, raw): kind is one of ENTRY_*; value is the pfn (present,
        protnone, huge: the subpage's pfn), the marker bits, or the swap offset."""
        cdef uint64_t a = _one_page(addr)
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, a, False)
        cdef uint64_t e
        if pmd == NULL or pmd[0] == 0:
            return ENTRY_NONE, 0, 0
        if pmd_is_huge(pmd[0]):
            return ENTRY_HUGE, pte_pfn(pmd[0]) + pt_index(a, PT_PAGE_SHIFT), pmd[0]
        e = _ptes(pmd, a)[0]
        if e == 0:
            return ENTRY_NONE, 0, 0
        if e & PTE_PRESENT:
            return ENTRY_PRESENT, pte_pfn(e), e
        if e & PTE_PROTNONE:
            return ENTRY_PROTNONE, pte_pfn(e), e
        if swp_type(e) == SWP_TYPE_PTE_MARKER:
            return ENTRY_MARKER, swp_offset(e), e
        return ENTRY_SWAP, swp_offset(e), e

    cdef uint64_t *_none_pte(self, uint64_t a) except NULL:
        """The PTE at a (tables allocated), which must be none."""
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, a, True)
        cdef uint64_t *pte
        if pmd == NULL:
            raise MemoryError()
        if pmd_is_huge(pmd[0]):
            raise ValueError(f"{a:#x} is under a huge PMD")
        pte = _pte_entry(&self.mm, a, True)
        if pte == NULL:
            raise MemoryError()
        if pte[0] != 0:
            raise ValueError(f"PTE at {a:#x} is not none ({pte[0]:#x})")
        if pte_table_unshare(&self.mm, pmd) < 0:
            raise MemoryError()
        return _ptes(pmd, a)

    def set_marker(self, addr, bits):
        """Write a PTE marker (PTE_MARKER_* bits) into the none PTE at addr."""
        cdef uint64_t a = _one_page(addr)
        cdef uint64_t m = _u64(bits, "bits", PTE_MARKER_MASK)
        if m == 0:
            raise ValueError("a marker needs at least one bit")
        self._none_pte(a)[0] = make_marker_pte(m)

    def set_swap(self, addr, swp_type_, offset, flags=0):
        """Write a genuine swap entry (type 0..30; flags: SWP_* bits) into a none PTE."""
        cdef uint64_t a = _one_page(addr)
        cdef uint64_t t = _u64(swp_type_, "type", SWP_TYPE_PTE_MARKER - 1)
        cdef uint64_t o = _u64(offset, "offset", SWP_OFFSET_MASK)
        cdef uint64_t f = _u64(flags, "flags", SWP_FLAGS_MASK)
        if f & ~SWP_FLAGS_MASK:
            raise ValueError(f"swap flags {f:#x} outside bits 1..3")
        if make_swp_pte(t, o) | f == 0:
            raise ValueError("type 0 with an all-ones offset encodes as a none entry")
        self._none_pte(a)[0] = make_swp_pte(t, o) | f
        self.mm.swap_ents += 1

    def map_page(self, addr, pfn, pte_flags):
        """Install a present (or PROT_NONE) PTE pfn|pte_flags in the none PTE at addr;
        takes a reference and a mapcount on the frame and counts it in RSS."""
        cdef uint64_t a = _one_page(addr)
        cdef int64_t p = self.frames._pfn(pfn, True)
        cdef uint64_t f = _leaf_flags(pte_flags)
        cdef uint64_t *pte
        if pfn_is_zero(p) and p != FRAME_ZERO_PFN:
            raise ValueError("the huge zero page is mapped only by huge PMDs")
        pte = self._none_pte(a)
        pte[0] = (<uint64_t>p << PT_PAGE_SHIFT) | f
        _map_frames(&self.mm, p, 1)

    def map_huge_pmd(self, addr, head_pfn, pte_flags):
        """Map the 512 frames from head_pfn (or Frames.huge_zero_pfn) with one huge PMD at
        the 2 MiB-aligned addr (the PMD must be none: no PTE table). An anon THP and the
        huge zero page deposit a PTE table, counted in nr_pte_tables."""
        cdef uint64_t a = _one_page(addr)
        cdef int64_t head = self.frames._pfn(head_pfn, True), i
        cdef uint64_t f = _leaf_flags(pte_flags)
        cdef uint64_t *pmd
        if a & (PMD_SIZE_ - 1):
            raise ValueError(f"{a:#x} is not 2 MiB aligned")
        if head & (PT_HPAGE_NR - 1) or head + PT_HPAGE_NR > self.frames.fs.high:
            raise ValueError(f"pfn {head:#x} is not 512-aligned")
        for i in range(head, head + PT_HPAGE_NR):
            if not pfn_is_zero(head):
                self.frames._pfn(i, False)
            if _kind(&self.frames.fs, i) != _kind(&self.frames.fs, head):
                raise ValueError(f"pfn {i:#x} is of another kind than the head")
        pmd = pt_pmd_entry(&self.mm, a, True)
        if pmd == NULL:
            raise MemoryError()
        if pmd[0] != 0:
            raise ValueError(f"PMD at {a:#x} is not none ({pmd[0]:#x})")
        pmd[0] = (<uint64_t>head << PT_PAGE_SHIFT) | f | PTE_PSE
        _map_frames(&self.mm, head, PT_HPAGE_NR)
        if _has_deposit(&self.frames.fs, head):
            self.mm.nr_pte_tables += 1      # pgtable_trans_huge_deposit()

    def split_huge_pmd(self, addr):
        """Split the huge PMD covering addr, if any (see pt_split_huge_pmd). Returns
        whether there was one."""
        cdef uint64_t *pmd = pt_pmd_entry(&self.mm, _one_page(addr), False)
        if pmd == NULL or not pmd_is_huge(pmd[0]):
            return False
        _check_err(pt_split_huge_pmd(&self.mm, pmd))
        return True

    # --- walkers ----------------------------------------------------------------------
    def install_guards(self, start, end):
        """guard_install walk: none PTEs become guard markers (tables allocated). Returns
        end, or the address of the first entry that is neither none nor a guard (a page,
        swap entry, other marker, or a huge PMD); markers written before it stay."""
        cdef uint64_t s, e, stop
        cdef int r
        _user_range(start, end, &s, &e)
        r = pt_install_guards(&self.mm, s, e, &stop)
        _check_err(r)
        return stop

    def remove_guards(self, start, end):
        """guard_remove walk: guard markers become none (existing tables only; huge PMDs
        skipped; tables stay). Returns the number removed."""
        cdef uint64_t s, e
        cdef int64_t r
        _user_range(start, end, &s, &e)
        r = pt_remove_guards(&self.mm, s, e)
        _check_err(r)
        return r

    def zap(self, start, end, flags=0):
        """zap_page_range: clear entries per ZAP_* flags; returns entries cleared (a huge
        PMD counts its 512 pages)."""
        cdef uint64_t s, e
        cdef int64_t r
        cdef int f = <int>_u64(flags, "flags", ZAP_ALL_FLAGS)
        _user_range(start, end, &s, &e)
        if f & ~ZAP_ALL_FLAGS:
            raise ValueError(f"unknown zap flags {f:#x}")
        r = pt_zap(&self.mm, s, e, f)
        _check_err(r)
        return r

    def reclaim(self, start, end, bint pageout, bint keep_uffd=False):
        """MADV_COLD (pageout False) or MADV_PAGEOUT over [start, end) as pt_reclaim() does
        it; keep_uffd (a file VMA) leaves a uffd-wp marker where reclaim unmaps a
        write-protected PTE. Returns the pages unmapped."""
        cdef uint64_t s, e
        cdef int64_t r
        _user_range(start, end, &s, &e)
        r = pt_reclaim(&self.mm, s, e, pageout, keep_uffd)
        _check_err(r)
        return r

    def free_pgtables(self, start, end, floor, ceiling):
        """free_pgd_range(start, end, floor, ceiling); ceiling 0 means no ceiling. Raises
        ValueError (and frees nothing) if a table to be freed still has entries."""
        cdef uint64_t s, e, fl, ce, bad = 0
        _user_range(start, end, &s, &e)
        fl = _u64(floor, "floor", USER_END)
        ce = _u64(ceiling, "ceiling", USER_END)
        if pt_free_pgtables(&self.mm, s, e, fl, ce, True, &bad):
            raise ValueError(f"free_pgtables: entry at {bad:#x} is not none")
        pt_free_pgtables(&self.mm, s, e, fl, ce, False, &bad)

    cdef int _partial_huge(self, uint64_t s, uint64_t e) except -1:
        """ValueError if a huge PMD straddles either end of [s, e)."""
        cdef uint64_t a
        cdef uint64_t *pmd
        for a in (s, e):
            if a & (PMD_SIZE_ - 1) and s < e and a < USER_END:
                pmd = pt_pmd_entry(&self.mm, a, False)
                if pmd != NULL and pmd_is_huge(pmd[0]):
                    raise ValueError(f"a huge PMD straddles {a:#x}")
        return 0

    cdef int _require_none(self, uint64_t s, uint64_t e) except -1:
        c = self.count(s, e)
        if c["none"] != (e - s) >> PT_PAGE_SHIFT:
            raise ValueError(f"[{s:#x}, {e:#x}) is not all none")
        return 0

    def copy_range(self, PageTables dst not None, start, end, flags=0):
        """copy_page_range for one VMA into dst (the child), whose range must be all
        none. Returns entries copied (a huge PMD counts 512)."""
        cdef uint64_t s, e
        cdef int64_t r
        cdef int f = <int>_u64(flags, "flags", COPY_ALL_FLAGS)
        _user_range(start, end, &s, &e)
        if f & ~COPY_ALL_FLAGS:
            raise ValueError(f"unknown copy flags {f:#x}")
        if dst is self or dst.frames is not self.frames:
            raise ValueError("copy_range needs another PageTables over the same Frames")
        self._partial_huge(s, e)
        dst._require_none(s, e)
        r = pt_copy_range(&self.mm, &dst.mm, s, e, f)
        _check_err(r)
        return r

    def move_range(self, old_start, new_start, length):
        """move_page_tables(): move [old_start, +length) to new_start, whole PTE/PMD
        tables where the kernel would. The destination must be all none and must not
        overlap the source. Returns the bytes moved."""
        cdef uint64_t o = _page_addr(old_start, "old_start")
        cdef uint64_t n = _page_addr(new_start, "new_start")
        cdef uint64_t ln = _page_addr(length, "length")
        cdef int64_t r
        if o + ln > USER_END or n + ln > USER_END:
            raise ValueError("move_range beyond user space")
        if ln and o < n + ln and n < o + ln:
            raise ValueError("move_range source and destination overlap")
        self._require_none(n, n + ln)
        r = pt_move_range(&self.mm, o, n, ln)
        _check_err(r)
        return r

    def fault_anon(self, start, end, bint write, pte_flags, bint touch=False):
        """First-touch faults on private anonymous memory. pte_flags are the VMA's
        vm_page_prot bits. none -> zero page (read) or a new zeroed anon page (write);
        zero page on write -> new page; exclusive anon page on write -> made writable.
        With touch, a page that already allows the access is marked accessed (and dirty
        on write) as the MMU would. Returns end, or the first address needing the Python
        fault path (marker, swap, PROT_NONE, COW copy, file page)."""
        cdef uint64_t s, e, stop
        cdef uint64_t f = _leaf_flags(pte_flags)
        cdef int r
        _user_range(start, end, &s, &e)
        if not f & PTE_PRESENT:
            raise ValueError("fault_anon needs present pte_flags")
        r = pt_fault_anon(&self.mm, s, e, write, f, touch, &stop)
        _check_err(r)
        return stop

    def change_prot(self, start, end, newflags, mask):
        """Set the `mask` bits of every present/PROT_NONE PTE and huge PMD to `newflags`
        (a partly covered huge PMD is split). Returns entries changed (huge: 512)."""
        cdef uint64_t s, e
        cdef uint64_t nf = _u64(newflags, "newflags", 0xFFFFFFFFFFFFFFFF)
        cdef uint64_t m = _u64(mask, "mask", 0xFFFFFFFFFFFFFFFF)
        cdef uint64_t pp = PTE_PRESENT | PTE_PROTNONE
        cdef int64_t r
        _user_range(start, end, &s, &e)
        if m & (PTE_PFN_MASK | PTE_PSE):
            raise ValueError(f"mask {m:#x} covers pfn or PSE bits")
        if m & pp and ((m & pp) != pp or not nf & pp):
            raise ValueError("mask must set P/PROTNONE together, leaving one of them set")
        r = pt_change_prot(&self.mm, s, e, nf, m)
        _check_err(r)
        return r

    def pagemap(self, start, end, out, bint vma_softdirty=False):
        """Fill out (one u64 per page) with /proc/pid/pagemap entries as CAP_SYS_ADMIN
        reads them; vma_softdirty adds PM_SOFT_DIRTY to every entry."""
        cdef uint64_t s, e
        cdef uint64_t[:] view
        # A read-only buffer or one of another item type is the wrong type of argument,
        # not a bad value (Cython reports them as BufferError and ValueError).
        if out is None:
            raise TypeError("out must be a writable u64 buffer, not None")
        try:
            view = out
        except (BufferError, ValueError) as err:
            raise TypeError(f"out must be a writable u64 buffer: {err}") from None
        _user_range(start, end, &s, &e)
        if view.shape[0] != <Py_ssize_t>((e - s) >> PT_PAGE_SHIFT):
            raise ValueError(f"out has {view.shape[0]} entries for "
                             f"{(e - s) >> PT_PAGE_SHIFT} pages")
        if s == e:
            return
        pt_pagemap(&self.mm, s, e, &view[0], view.strides[0] // sizeof(uint64_t),
                   vma_softdirty)

    def smaps_stats(self, start, end):
        """The page-table half of one /proc/pid/smaps block (bytes; *_x4096 are bytes
        << 12 as the kernel's PSS_SHIFT)."""
        cdef uint64_t s, e
        cdef pt_walk w
        cdef smaps_acc a
        _user_range(start, end, &s, &e)
        memset(&a, 0, sizeof(a))
        pt_run_walk(&w, &self.mm, &_smaps_ops, s, e, 0, 0, &a)
        return {
            "rss": a.rss, "pss_x4096": a.pss, "pss_anon_x4096": a.pss_anon,
            "pss_file_x4096": a.pss_file, "pss_shmem_x4096": a.pss_shmem,
            "pss_dirty_x4096": a.pss_dirty, "shared_clean": a.shared_clean,
            "shared_dirty": a.shared_dirty, "private_clean": a.private_clean,
            "private_dirty": a.private_dirty, "referenced": a.referenced,
            "anonymous": a.anonymous, "lazyfree": a.lazyfree, "anon_huge": a.anon_huge,
            "shmem_pmd_mapped": a.shmem_huge, "file_pmd_mapped": a.file_huge,
            "swap": a.swap,
        }

    def count(self, start, end):
        """Entries of [start, end) by kind. Pages without a table count as none; pages
        under a huge PMD are counted only as its huge_pmd entry; a marker counts once
        per bit (guard, poison, uffd_wp); zero_page is a subset of present; pte_tables
        are the PTE tables intersecting the range."""
        cdef uint64_t s, e
        cdef pt_walk w
        cdef entry_counts c
        _user_range(start, end, &s, &e)
        memset(&c, 0, sizeof(c))
        pt_run_walk(&w, &self.mm, &_count_ops, s, e, 0, 0, &c)
        return {"none": c.none, "present": c.present, "protnone": c.protnone,
                "zero_page": c.zero_page, "guard": c.guard, "poison": c.poison,
                "uffd_wp": c.uffd_wp, "swap": c.swap, "huge_pmd": c.huge_pmd,
                "pte_tables": c.pte_tables}

    def dump(self, start=0, end=USER_END):
        """{address: raw} of every non-none PTE in [start, end); a huge PMD appears once,
        at its 2 MiB-aligned address."""
        cdef uint64_t s, e
        cdef pt_walk w
        cdef entry_list l
        cdef Py_ssize_t i
        cdef int r
        _user_range(start, end, &s, &e)
        memset(&l, 0, sizeof(l))
        try:
            r = pt_run_walk(&w, &self.mm, &_dump_ops, s, e, 0, 0, &l)
            _check_err(r)
            return {l.items[i]: l.items[i + 1] for i in range(0, l.n, 2)}
        finally:
            free(l.items)

    # --- invariants -------------------------------------------------------------------
    cdef int _tally(self, int32_t *maps) except -1:
        """Walk the whole tree: check every entry's form, recount tables, RSS and swap
        entries against the counters, and add each frame's mappings to maps[pfn]."""
        cdef pt_mm *mm = &self.mm
        cdef frame_store *fs = mm.fs
        cdef int64_t nud = 0, nmd = 0, npt = 0, nshared = 0, ndeposit = 0, swap = 0
        cdef int64_t rss[4]
        cdef Py_ssize_t g, u, d, t
        cdef uint64_t v, w, x, e, pfn, addr
        cdef uint64_t *pud
        cdef uint64_t *pmd
        cdef uint64_t *pte
        cdef int64_t i
        memset(rss, 0, sizeof(rss))
        if _scan(NONE_TABLE, PT_PTRS_PER_TABLE, &i) or i != 0 or \
                _scan(GUARD_TABLE, PT_PTRS_PER_TABLE, &i) or i != PT_PTRS_PER_TABLE:
            raise InvariantError("a canonical shared PTE table was written")
        for g in range(PT_PTRS_PER_TABLE):
            v = mm.pgd[g]
            if v == 0:
                continue
            if g >= PT_PTRS_PER_TABLE // 2 or (v & ~PTE_PFN_MASK) != PTE_TABLE:
                raise InvariantError(f"bad PGD entry {g}: {v:#x}")
            nud += 1
            pud = entry_table(v)
            for u in range(PT_PTRS_PER_TABLE):
                w = pud[u]
                if w == 0:
                    continue
                if (w & ~PTE_PFN_MASK) != PTE_TABLE:
                    raise InvariantError(f"bad PUD entry {g}/{u}: {w:#x}")
                nmd += 1
                pmd = entry_table(w)
                for d in range(PT_PTRS_PER_TABLE):
                    x = pmd[d]
                    addr = (<uint64_t>g << PT_PGDIR_SHIFT) | (<uint64_t>u << PT_PUD_SHIFT) \
                        | (<uint64_t>d << PT_PMD_SHIFT)
                    if x == 0:
                        continue
                    if pmd_is_huge(x):
                        pfn = pte_pfn(x)
                        if pfn & (PT_HPAGE_NR - 1) or pfn + PT_HPAGE_NR > <uint64_t>fs.high:
                            raise InvariantError(f"huge PMD at {addr:#x}: pfn {pfn:#x}")
                        if pfn_is_zero(pfn):
                            npt += 1
                            ndeposit += 1
                            continue
                        for i in range(PT_HPAGE_NR):
                            if fs.refcount[pfn + i] <= 0 or \
                                    _kind(fs, pfn + i) != _kind(fs, pfn):
                                raise InvariantError(f"huge PMD at {addr:#x}: frame "
                                                     f"{pfn + i:#x} free or mixed kind")
                            if maps != NULL:
                                maps[pfn + i] += 1
                        if _kind(fs, pfn) == FRAME_ANON:
                            npt += 1
                            ndeposit += 1
                        rss[_kind(fs, pfn)] += PT_HPAGE_NR
                        continue
                    if (x & ~PTE_PFN_MASK) == PTE_TABLE | PMD_SHARED_TABLE:
                        if entry_table(x) != NONE_TABLE and entry_table(x) != GUARD_TABLE:
                            raise InvariantError(f"shared PMD entry at {addr:#x} names no "
                                                 f"canonical table: {x:#x}")
                        nshared += 1
                    elif (x & ~PTE_PFN_MASK) != PTE_TABLE:
                        raise InvariantError(f"bad PMD entry at {addr:#x}: {x:#x}")
                    npt += 1
                    pte = entry_table(x)
                    for t in range(PT_PTRS_PER_TABLE):
                        e = pte[t]
                        if e == 0:
                            continue
                        if not pte_present(e):
                            if swp_type(e) != SWP_TYPE_PTE_MARKER:
                                swap += 1
                            elif swp_offset(e) == 0 or \
                                    swp_offset(e) & ~(<uint64_t>PTE_MARKER_MASK):
                                raise InvariantError(f"bad marker at {addr:#x}+{t}: {e:#x}")
                            continue
                        pfn = pte_pfn(e)
                        if e & PTE_PSE:
                            raise InvariantError(f"PSE in a PTE at {addr:#x}+{t}")
                        if pfn == FRAME_ZERO_PFN:
                            continue
                        if pfn_is_zero(pfn):
                            raise InvariantError(f"PTE at {addr:#x}+{t} maps the huge zero page")
                        if pfn >= <uint64_t>fs.high or fs.refcount[pfn] <= 0:
                            raise InvariantError(f"PTE at {addr + (t << 12):#x} maps free "
                                                 f"pfn {pfn:#x}")
                        if maps != NULL:
                            maps[pfn] += 1
                        rss[_kind(fs, pfn)] += 1
        if (nud, nmd, npt) != (mm.nr_pud_tables, mm.nr_pmd_tables, mm.nr_pte_tables):
            raise InvariantError(
                f"tables: counted pud/pmd/pte {mm.nr_pud_tables}/{mm.nr_pmd_tables}/"
                f"{mm.nr_pte_tables}, found {nud}/{nmd}/{npt}")
        if nshared != mm.nr_shared_pte_tables:
            raise InvariantError(f"shared PTE tables: counted {mm.nr_shared_pte_tables}, "
                                 f"found {nshared}")
        if 1 + nud + nmd + npt - nshared - ndeposit != mm.nr_host_tables:
            raise InvariantError(f"host tables: counted {mm.nr_host_tables}, found "
                                 f"{1 + nud + nmd + npt - nshared - ndeposit}")
        for i in range(FRAME_ANON, FRAME_SHMEM + 1):
            if rss[i] != mm.rss[i]:
                raise InvariantError(f"rss[{i}] is {mm.rss[i]}, found {rss[i]}")
        if swap != mm.swap_ents:
            raise InvariantError(f"swap_ents is {mm.swap_ents}, found {swap}")
        return 0

    def check(self):
        """Recount tables, RSS and swap entries, check every entry's form, and check that
        each mapped frame's mapcount covers this tree's mappings and its refcount covers
        its mapcount. Raises InvariantError (an AssertionError)."""
        cdef frame_store *fs = self.mm.fs
        cdef int32_t *maps = <int32_t *>calloc(fs.capacity, sizeof(int32_t))
        cdef int64_t pfn
        if maps == NULL:
            raise MemoryError()
        try:
            self._tally(maps)
            for pfn in range(fs.high):
                if maps[pfn] and (fs.mapcount[pfn] < maps[pfn] or
                                  fs.refcount[pfn] < fs.mapcount[pfn]):
                    raise InvariantError(
                        f"pfn {pfn:#x}: {maps[pfn]} mappings here, mapcount "
                        f"{fs.mapcount[pfn]}, refcount {fs.refcount[pfn]}")
        finally:
            free(maps)
