# cython: language_level=3
"""The Python face of ptengine.core: Frames (mm/page_alloc.c's frames, as Python sees
them) and PageTables (the validating wrapper over one pt_mm), with the debug checks of
mm/debug.c (CONFIG_DEBUG_VM) over both (Frames.check, PageTables.check: check.pyx).
Frames sits here, not in frames.pyx, because its check reads every PageTables' tables
while a PageTables holds its Frames: apart, the two modules would import each other.
Only tests, the cimport example and introspection use the def methods; no syscall path
calls them but through the nogil entry points.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from ptengine.core.args cimport *
from ptengine.core.check cimport check_frames, check_tables
from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.proc cimport *
from ptengine.core.tables cimport *
from ptengine.core.walk cimport *
from ptengine.core.walkers cimport *

from .entry import (ENTRY_HUGE, ENTRY_MARKER, ENTRY_NONE, ENTRY_PRESENT, ENTRY_PROTNONE,
                    ENTRY_SWAP)

cdef int ZAP_ALL_FLAGS = ZAP_DROP_MARKERS | ZAP_KEEP_UFFD_WP | ZAP_RECLAIM_PT | ZAP_KEEP_COWS
cdef int COPY_ALL_FLAGS = COPY_COW | COPY_UFFD_WP | COPY_SHARED


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
        cdef list tl = list(tables)
        cdef pt_mm **mms
        cdef Py_ssize_t i
        for t in tl:
            if (<PageTables?>t).frames is not self:
                raise ValueError("a PageTables of another Frames")
        mms = <pt_mm **>malloc((len(tl) + 1) * sizeof(pt_mm *))   # + 1: malloc(0) may be NULL
        if mms == NULL:
            raise MemoryError()
        try:
            for i in range(len(tl)):
                mms[i] = &(<PageTables>tl[i]).mm
            check_frames(&self.fs, mms, len(tl))
        finally:
            free(mms)


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
        pt_smaps(&w, &self.mm, s, e, &a)
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
        pt_count(&w, &self.mm, s, e, &c)
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
            r = pt_dump(&w, &self.mm, s, e, &l)
            _check_err(r)
            return {l.items[i]: l.items[i + 1] for i in range(0, l.n, 2)}
        finally:
            free(l.items)

    # --- invariants -------------------------------------------------------------------
    def check(self):
        """Recount tables, RSS and swap entries, check every entry's form, and check that
        each mapped frame's mapcount covers this tree's mappings and its refcount covers
        its mapcount. Raises InvariantError (an AssertionError)."""
        check_tables(&self.mm)
