# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""The per-mm set of VMAs: the maple tree's role in mm/mmap.c (lib/maple_tree.c).

Ordered lookup (find_vma(), vma_lookup()), neighbours, and the gap searches of
mm/mmap.c:unmapped_area_topdown()/unmapped_area(), over blocks of VMAs searched by C
bisection with a per-block largest-hole index.
"""
cimport cython
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.string cimport memmove

cdef extern from "Python.h":
    # PyList_SetSlice() with NULL for the items deletes the slice (cpython.list declares
    # the items as an object, which cannot be NULL).
    int list_del_slice "PyList_SetSlice"(object lst, Py_ssize_t low, Py_ssize_t high,
                                         PyObject *items) except -1

from .. import constants as C
from .mm_types cimport VMA, start_gap, u64, vma_required

cdef int PAGE_SHIFT = C.PAGE_SHIFT


cdef inline VMA _at(list block, Py_ssize_t j):
    return <VMA>PyList_GET_ITEM(block, j)


# Borrowed reads of the blocks, for the lookups: they compare bounds and keep none of the
# lists or VMAs they look at, so they take no references (a `list` or `VMA` local would
# count one in and out) and test for no None (a block holds only VMAs: insert() and
# load() let nothing else in).
cdef inline PyObject *_item_of(PyObject *lst, Py_ssize_t i) noexcept:
    return PyList_GET_ITEM(<list>lst, i)


cdef inline Py_ssize_t _len(PyObject *lst) noexcept:
    return PyList_GET_SIZE(<list>lst)


@cython.nonecheck(False)
cdef inline u64 _start_at(PyObject *block, Py_ssize_t j) noexcept:
    return (<VMA>PyList_GET_ITEM(<list>block, j)).start


@cython.nonecheck(False)
cdef inline u64 _end_at(PyObject *block, Py_ssize_t j) noexcept:
    return (<VMA>PyList_GET_ITEM(<list>block, j)).end


cdef inline bint _holds(PyObject *block, Py_ssize_t j, VMA vma) noexcept:
    """The block holds this very VMA at index j (any index)."""
    return 0 <= j < _len(block) and _item_of(block, j) == <PyObject *>vma


cdef Py_ssize_t _bisect_right(PyObject *block, unsigned long long key) noexcept:
    """Number of VMAs of `block` starting at or below key."""
    cdef Py_ssize_t lo = 0, hi = _len(block), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _start_at(block, mid) <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline void _right(VMATree tree, u64 key, Py_ssize_t *k, Py_ssize_t *j) noexcept:
    """k: the last block whose first VMA starts at or below key (0 if none does); j: how
    many VMAs of block k start at or below key. The tree is not empty."""
    if not tree._finger_right(key, k, j):
        k[0] = tree._block_for(key)
        j[0] = _bisect_right(_item_of(<PyObject *>tree._blocks, k[0]), key)


cdef enum:
    HOLE_FITS, BELOW_LOW, WALK_ON

# The hole figure of a block that must be measured again: no bound, never passed over.
cdef unsigned long long UNBOUNDED = 0xFFFFFFFFFFFFFFFF


cdef inline int _hole_step(unsigned long long gap_end, unsigned long long end,
                           unsigned long long low, unsigned long long length,
                           long long *seen) noexcept:
    """One step of the top-down walk: the hole from a VMA ending at `end` up to gap_end
    (clipped at low) holds length (HOLE_FITS); or the walk has reached low (BELOW_LOW);
    or it goes on, `seen` holding the largest hole passed over (WALK_ON)."""
    cdef long long hole = <long long>gap_end - <long long>(end if end > low else low)
    if hole >= <long long>length:
        return HOLE_FITS
    if hole > seen[0]:
        seen[0] = hole
    return BELOW_LOW if end <= low else WALK_ON


cdef class VMATree:
    """The mm's VMA set, ordered by start: O(log n) lookup, insert and removal.

    Stands in for the maple tree. The VMAs sit in blocks (lists of up to 2 × load VMAs);
    a lookup bisects the blocks by their first VMA, then the block, unless the finger (the
    place of the VMA last located) already shows the answer, as a syscall's second and
    later lookups of one VMA or its neighbours do. Holes are found by
    walking down from the high limit with a hole index, the maple tree's gap tracking in
    miniature: for each block the largest hole above one of its VMAs, measured again
    lazily when the block changed, and a max tree over those figures, so that the walk
    passes over every block without a big enough hole in O(log n). The common cases
    (placement below a contiguous run) touch only a few neighbours.
    """

    def __cinit__(self):
        self._blocks = []
        self._gap = NULL
        self._dirty = NULL
        self._cap = 0
        self._seg = NULL
        self._seg_n = 0

    def __init__(self, Py_ssize_t block_load=64):
        if block_load < 2:
            raise ValueError("block_load must be at least 2")
        if self._count:
            raise ValueError("a tree's block size is chosen while it is empty")
        self._load = block_load

    def __dealloc__(self):
        PyMem_Free(self._gap)
        PyMem_Free(self._dirty)
        PyMem_Free(self._seg)

    def __len__(self):
        return self._count

    def __iter__(self):
        # A snapshot: callers may change the tree while they walk what it held.
        return iter([v for block in self._blocks for v in block])

    # --- block bookkeeping -------------------------------------------------------------
    cdef int _reserve(self, Py_ssize_t nblocks) except -1:
        cdef Py_ssize_t cap
        cdef void *g
        cdef void *d
        if nblocks <= self._cap:
            return 0
        cap = max(16, 2 * nblocks)
        g = PyMem_Realloc(self._gap, cap * sizeof(unsigned long long))
        if g == NULL:
            raise MemoryError()
        self._gap = <unsigned long long *>g
        d = PyMem_Realloc(self._dirty, cap)
        if d == NULL:
            raise MemoryError()
        self._dirty = <unsigned char *>d
        self._cap = cap
        return 0

    cdef int _add_block(self, Py_ssize_t k, list block) except -1:
        """Insert `block` as block k; its hole figure is measured when first needed."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self._blocks)
        self._reserve(n + 1)
        memmove(&self._gap[k + 1], &self._gap[k], (n - k) * sizeof(unsigned long long))
        memmove(&self._dirty[k + 1], &self._dirty[k], n - k)
        self._dirty[k] = 1
        self._blocks.insert(k, block)
        self._seg_n = 0
        return 0

    cdef int _drop_block(self, Py_ssize_t k) except -1:
        """Remove the (empty) block k: the hole above the VMA below it grows."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self._blocks)
        memmove(&self._gap[k], &self._gap[k + 1], (n - k - 1) * sizeof(unsigned long long))
        memmove(&self._dirty[k], &self._dirty[k + 1], n - k - 1)
        del self._blocks[k]
        self._seg_n = 0
        if k:
            self._dirty[k - 1] = 1
        return 0

    cdef unsigned long long _block_gap(self, Py_ssize_t k) except? 0xFFFFFFFFFFFFFFFF:
        """The largest hole above a VMA of block k, up to the next VMA (in this block or
        the first of the next); the last VMA of the tree has none."""
        cdef list block = self._blocks[k]
        cdef Py_ssize_t j, n = PyList_GET_SIZE(block)
        cdef unsigned long long best = 0, next_start
        cdef VMA v
        for j in range(n):
            v = _at(block, j)
            if j + 1 < n:
                next_start = _at(block, j + 1).start
            elif k + 1 < PyList_GET_SIZE(self._blocks):
                next_start = _at(self._blocks[k + 1], 0).start
            else:
                break
            if next_start - v.end > best:
                best = next_start - v.end
        return best

    cdef void _mark(self, Py_ssize_t k) noexcept:
        """A hole of block k may have grown: its figure is no bound any more."""
        # A dirty block's leaf is UNBOUNDED already (check() asserts it): nothing to do.
        if 0 <= k < PyList_GET_SIZE(self._blocks) and not self._dirty[k]:
            self._dirty[k] = 1
            if self._seg_n:
                self._seg_set(k, UNBOUNDED)

    cdef int _settle(self, Py_ssize_t k) except -1:
        """Measure block k's figure exactly."""
        self._gap[k] = self._block_gap(k)
        self._dirty[k] = 0
        if self._seg_n:
            self._seg_set(k, self._gap[k])
        return 0

    cdef void _seg_set(self, Py_ssize_t k, unsigned long long value) noexcept:
        cdef Py_ssize_t i = k + self._seg_n
        cdef unsigned long long *seg = self._seg
        seg[i] = value
        i >>= 1
        while i:
            seg[i] = seg[2 * i] if seg[2 * i] > seg[2 * i + 1] else seg[2 * i + 1]
            i >>= 1

    cdef int _seg_build(self) except -1:
        cdef Py_ssize_t nblocks = PyList_GET_SIZE(self._blocks), n = 2, i
        cdef void *mem
        cdef unsigned long long *seg
        while n < nblocks:
            n <<= 1
        mem = PyMem_Realloc(self._seg, 2 * n * sizeof(unsigned long long))
        if mem == NULL:
            raise MemoryError()
        seg = self._seg = <unsigned long long *>mem
        for i in range(n):
            seg[n + i] = 0 if i >= nblocks else UNBOUNDED if self._dirty[i] else self._gap[i]
        for i in range(n - 1, 0, -1):
            seg[i] = seg[2 * i] if seg[2 * i] > seg[2 * i + 1] else seg[2 * i + 1]
        self._seg_n = n
        return 0

    cdef Py_ssize_t _seg_rightmost(self, Py_ssize_t k, unsigned long long length) noexcept:
        """The last block at or before k whose figure is at least length, or -1."""
        cdef unsigned long long *seg = self._seg
        cdef Py_ssize_t n = self._seg_n, i = k + n
        if k < 0:
            return -1
        while True:
            if seg[i] >= length:
                while i < n:                    # down to the rightmost such leaf
                    i = 2 * i + 1 if seg[2 * i + 1] >= length else 2 * i
                return i - n
            while not i & 1:                    # a left child: up to where a left
                i >>= 1                         # neighbour exists
                if i == 1:
                    return -1
            i -= 1

    cdef Py_ssize_t _seg_leftmost(self, Py_ssize_t k, unsigned long long length) noexcept:
        """The first block at or after k whose figure is at least length, or the number
        of blocks if none is."""
        cdef unsigned long long *seg = self._seg
        cdef Py_ssize_t n = self._seg_n, nblocks = PyList_GET_SIZE(self._blocks)
        cdef Py_ssize_t i = k + n
        if k >= nblocks:
            return nblocks
        while True:
            if seg[i] >= length:
                while i < n:                    # down to the leftmost such leaf
                    i = 2 * i if seg[2 * i] >= length else 2 * i + 1
                return i - n if i - n < nblocks else nblocks
            while i & 1:                        # a right child: up to where a right
                i >>= 1                         # neighbour exists
                if i == 1:
                    return nblocks
            i += 1

    cdef Py_ssize_t _block_for(self, unsigned long long key) noexcept:
        """The last block whose first VMA starts at or below key (0 if none does)."""
        cdef PyObject *blocks = <PyObject *>self._blocks
        cdef Py_ssize_t lo = 0, hi = _len(blocks), mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if _start_at(_item_of(blocks, mid), 0) <= key:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1 if lo else 0

    cdef Py_ssize_t _position(self, VMA vma, Py_ssize_t *k) except -1:
        """Block and index of this very VMA; ValueError if the tree does not hold it. The
        finger's VMA and the two beside it are tried first: a syscall locates one VMA
        several times, and its neighbours after an insert or a removal beside it."""
        cdef PyObject *blocks = <PyObject *>self._blocks
        cdef PyObject *block
        cdef Py_ssize_t j, fk = self._finger_k, fj = self._finger_j
        if fk < _len(blocks):
            block = _item_of(blocks, fk)
            j = (fj if _holds(block, fj, vma) else fj + 1 if _holds(block, fj + 1, vma)
                 else fj - 1 if _holds(block, fj - 1, vma) else -1)
            if j >= 0:
                k[0] = fk
                self._finger_j = j
                return j
        return self._search_position(vma, k)

    cdef Py_ssize_t _search_position(self, VMA vma, Py_ssize_t *k) except -1:
        """_position() where the finger does not show the VMA."""
        cdef Py_ssize_t j
        vma_required(vma)
        if self._count:
            _right(self, vma.start, k, &j)
            j -= 1
            if _holds(_item_of(<PyObject *>self._blocks, k[0]), j, vma):
                self._finger_k, self._finger_j = k[0], j
                return j
        raise ValueError(f"{vma!r} is not in the tree")

    cdef bint _finger_right(self, unsigned long long key, Py_ssize_t *k,
                            Py_ssize_t *j) noexcept:
        """_right() without a search, when key lies between the finger's VMA's start and
        the next VMA's start, or between the start of the VMA before it and its own:
        False when it does not (or the finger points past a block)."""
        cdef PyObject *blocks = <PyObject *>self._blocks
        cdef PyObject *block
        cdef Py_ssize_t fk = self._finger_k, i = self._finger_j, n
        if fk >= _len(blocks):
            return False
        block = _item_of(blocks, fk)
        n = _len(block)
        if i >= n:
            return False
        if _start_at(block, i) <= key:
            i += 1
            if i < n:
                if _start_at(block, i) <= key:
                    return False
            elif fk + 1 < _len(blocks) and _start_at(_item_of(blocks, fk + 1), 0) <= key:
                return False
        elif i:
            if _start_at(block, i - 1) > key:
                return False
        elif fk:                    # below the first VMA of a block after the first
            return False
        k[0], j[0] = fk, i
        return True

    cdef VMA _item(self, Py_ssize_t k, Py_ssize_t j):
        """The VMA at (k, j), stepping into the neighbouring blocks when j runs off either
        end; None past the ends of the tree. (k, j) is a place the tree has, or one off
        either end of a block."""
        return <VMA>self._item_ref(k, j)

    cdef PyObject *_item_ref(self, Py_ssize_t k, Py_ssize_t j) noexcept:
        """_item() as a borrowed reference (None too)."""
        cdef PyObject *blocks = <PyObject *>self._blocks
        cdef PyObject *block
        if j < 0:
            if k == 0:
                return <PyObject *>None
            block = _item_of(blocks, k - 1)
            return _item_of(block, _len(block) - 1)
        block = _item_of(blocks, k)
        if j < _len(block):
            return _item_of(block, j)
        if k + 1 < _len(blocks):
            return _item_of(_item_of(blocks, k + 1), 0)
        return <PyObject *>None

    cdef int _locate_left(self, unsigned long long key, Py_ssize_t *k,
                          Py_ssize_t *j) except -1:
        """(k, j) of the first VMA starting at or above key; j may be len(block k) only
        when no block holds one."""
        k[0] = j[0] = 0
        if not self._count:
            return 0
        if key:                         # VMAs starting below key start at or below key - 1
            _right(self, key - 1, k, j)
        if j[0] == PyList_GET_SIZE(self._blocks[k[0]]) and \
                k[0] + 1 < PyList_GET_SIZE(self._blocks):
            k[0] += 1
            j[0] = 0
        return 0

    # --- changes -----------------------------------------------------------------------
    cpdef insert(self, VMA vma):
        """Add a VMA. Inside a block it only splits a hole, so the block's largest-hole
        figure stays a valid upper bound; at either end of a block it turns the hole to
        the neighbouring block into an inner one, which must be counted."""
        cdef list block, upper
        cdef Py_ssize_t k, j, n, half
        cdef VMA prev, nxt
        vma_required(vma)
        if vma.start >= vma.end:
            raise ValueError(f"{vma!r} is empty")
        if not self._count:
            self._add_block(0, [vma])
            self._count = 1
            return
        _right(self, vma.start, &k, &j)
        block = self._blocks[k]
        prev, nxt = self._item(k, j - 1), self._item(k, j)
        if (prev is not None and prev.end > vma.start) or (nxt is not None
                                                           and nxt.start < vma.end):
            raise ValueError(f"{vma!r} overlaps a VMA of the tree")
        block.insert(j, vma)
        self._count += 1
        self._finger_k, self._finger_j = k, j
        n = PyList_GET_SIZE(block)
        if n > 2 * self._load:
            half = n >> 1
            upper = block[half:]
            del block[half:]
            self._dirty[k] = 1
            self._add_block(k + 1, upper)
            if j >= half:
                self._finger_k, self._finger_j = k + 1, j - half
        elif j == 0 or j == n - 1:
            # A new first VMA takes over part of a hole that belonged to the block below
            # (or to no block, below the lowest VMA); a new last VMA of the tree gives
            # the VMA below it a hole it did not have.
            self._mark(k)

    cpdef remove(self, VMA vma, bint range_stays_mapped=False):
        """Take vma out of the tree. Callers that re-key or merge it away, so that its
        range stays covered, say so: no hole grew, and the free-area cache stands."""
        cdef Py_ssize_t k, j, n
        cdef list block, other
        vma_required(vma)
        j = self._position(vma, &k)
        block = self._blocks[k]
        list_del_slice(block, j, j + 1, NULL)       # del block[j], without boxing j
        self._count -= 1
        n = PyList_GET_SIZE(block)
        # The VMA below takes over vma's hole: it may grow (with the range), and it
        # changes block when vma was the first of its block.
        if j == 0:
            self._mark(k - 1)
        if not range_stays_mapped:
            self._mark(k)
            if self._cache_valid and vma.end > self._cache_addr:
                self._cache_valid = False
        if n == 0:
            self._drop_block(k)
        elif n < self._load // 2 and PyList_GET_SIZE(self._blocks) > 1:
            # Join a small block with a neighbour, splitting again if that overfills it.
            if k + 1 == PyList_GET_SIZE(self._blocks):
                k -= 1
            block = self._blocks[k]
            other = self._blocks[k + 1]
            block.extend(other)
            self._drop_block(k + 1)
            self._mark(k)
            n = PyList_GET_SIZE(block)
            if n > 2 * self._load:
                other = block[n >> 1:]
                del block[n >> 1:]
                self._add_block(k + 1, other)

    cpdef set_end(self, VMA vma, unsigned long long end):
        """Move a VMA's end within its neighbours. Only a shrink can grow a hole."""
        cdef Py_ssize_t k, j
        cdef VMA nxt
        vma_required(vma)
        j = self._position(vma, &k)
        nxt = self._item(k, j + 1)
        if end <= vma.start or (nxt is not None and end > nxt.start):
            raise ValueError(f"{vma!r}: end {end:#x} would empty it or overlap a neighbour")
        if end < vma.end:
            self._mark(k)
        vma.end = end

    cpdef set_start(self, VMA vma, unsigned long long start):
        """Move a VMA's start within its neighbours (pgoff follows); for callers whose
        range stays covered, as remove(range_stays_mapped=True)."""
        cdef Py_ssize_t k, j
        cdef VMA prev
        vma_required(vma)
        j = self._position(vma, &k)
        prev = self._item(k, j - 1)
        if start >= vma.end or (prev is not None and start < prev.end):
            raise ValueError(f"{vma!r}: start {start:#x} would empty it or overlap a "
                             f"neighbour")
        if start > vma.start:
            # The hole below grows; it belongs to the block of the VMA below.
            self._mark(k if j else k - 1)
            vma.pgoff += (start - vma.start) >> PAGE_SHIFT
        else:
            vma.pgoff -= (vma.start - start) >> PAGE_SHIFT
        vma.start = start

    def load(self, vmas):
        """Fill an empty tree with VMAs in address order, in one go (dup_mmap())."""
        cdef Py_ssize_t i, n
        cdef list items = list(vmas)
        cdef VMA v, prev = None
        if self._count:
            raise ValueError("load() fills an empty tree")
        # The blocks are read through unchecked casts: only non-empty VMAs, in order and
        # apart, may enter them.
        for item in items:
            if not isinstance(item, VMA):
                raise TypeError(f"load() takes VMAs, not {type(item).__name__}")
            v = item
            if v.start >= v.end or (prev is not None and prev.end > v.start):
                raise ValueError(f"load() takes non-empty VMAs in address order: {v!r}")
            prev = v
        n = len(items)
        for i in range(0, n, self._load):
            self._add_block(PyList_GET_SIZE(self._blocks), items[i:i + self._load])
        self._count = n

    def clear(self):
        """Drop every VMA (exit_mmap(), once the page tables are torn down)."""
        self._blocks = []
        self._count = 0
        self._seg_n = 0
        self._cache_valid = False
        self._hit_upper = None

    def inherit_search_state(self, VMATree parent not None):
        """A forked child's tree has the parent's holes: it keeps its free-area cache."""
        self._cache_valid = parent._cache_valid
        self._cache_high = parent._cache_high
        self._cache_addr = parent._cache_addr
        self._cache_hole = parent._cache_hole

    # --- lookups -----------------------------------------------------------------------
    cdef VMA _find(self, unsigned long long addr):
        cdef Py_ssize_t k = self._finger_k, j = self._finger_j
        cdef PyObject *blocks = <PyObject *>self._blocks
        cdef PyObject *block
        if not self._count:
            return None
        if k < _len(blocks):                        # the finger's VMA holds addr
            block = _item_of(blocks, k)
            if j < _len(block) and _start_at(block, j) <= addr < _end_at(block, j):
                return <VMA>_item_of(block, j)
        _right(self, addr, &k, &j)
        if j and _end_at(_item_of(blocks, k), j - 1) > addr:
            j -= 1
        elif j == _len(_item_of(blocks, k)):       # addr above the block's last VMA
            if k + 1 == _len(blocks):
                return None
            k += 1
            j = 0
        self._finger_k, self._finger_j = k, j
        return <VMA>_item_of(_item_of(blocks, k), j)

    def find(self, unsigned long long addr):
        """find_vma(): the first VMA with end > addr (it may start above addr)."""
        return self._find(addr)

    def lookup(self, unsigned long long addr):
        """The VMA containing addr, or None (vma_lookup())."""
        cdef VMA v = self._find(addr)
        return v if v is not None and v.start <= addr else None

    cdef tuple _neighbours(self, VMA vma):
        cdef PyObject *prev
        cdef PyObject *nxt
        self._neighbours_into(vma, &prev, &nxt)
        return <VMA>prev, <VMA>nxt

    cdef int _neighbours_into(self, VMA vma, PyObject **prev, PyObject **nxt) except -1:
        """_neighbours() without a tuple: the VMAs before and after vma (None where there
        is none) as borrowed references, which the tree holds until it changes; a typed
        local takes its own (`prev = <VMA>p`). ValueError if vma is not in the tree."""
        cdef Py_ssize_t k, j
        j = self._position(vma, &k)
        prev[0] = self._item_ref(k, j - 1)
        nxt[0] = self._item_ref(k, j + 1)
        return 0

    def neighbours(self, VMA vma not None):
        """(the VMA before vma, the VMA after it), None where there is none."""
        return self._neighbours(vma)

    def prev_next(self, unsigned long long start, unsigned long long end):
        """The VMAs just below `start` and at or above `end` (vma_prev()/vma_next() of a
        free range)."""
        return self._prev_next(start, end)

    cdef tuple _prev_next(self, unsigned long long start, unsigned long long end):
        cdef PyObject *prev
        cdef PyObject *nxt
        self._prev_next_into(start, end, &prev, &nxt)
        return <VMA>prev, <VMA>nxt

    cdef int _prev_next_into(self, unsigned long long start, unsigned long long end,
                             PyObject **prev, PyObject **nxt) except -1:
        """_prev_next() without a tuple, as borrowed references (see _neighbours_into())."""
        cdef Py_ssize_t k, j
        prev[0] = nxt[0] = <PyObject *>None
        if self._count:
            self._locate_left(start, &k, &j)
            prev[0] = self._item_ref(k, j - 1)
            self._locate_left(end, &k, &j)
            nxt[0] = self._item_ref(k, j)
        return 0

    def overlapping(self, unsigned long long start, unsigned long long end):
        """VMAs intersecting [start, end), in address order (a snapshot list)."""
        return self._overlapping(start, end)

    cdef list _overlapping(self, unsigned long long start, unsigned long long end):
        cdef list out = []
        cdef VMA v = self._find(start)
        cdef Py_ssize_t k, j
        if v is None or v.start >= end:
            return out
        j = self._position(v, &k)
        cdef list blocks = self._blocks
        cdef list block = blocks[k]
        while True:
            if j == PyList_GET_SIZE(block):
                k += 1
                if k == PyList_GET_SIZE(blocks):
                    return out
                block = blocks[k]
                j = 0
            v = _at(block, j)
            if v.start >= end:
                return out
            out.append(v)
            j += 1

    def range_is_free(self, unsigned long long start, unsigned long long end):
        return self._range_is_free(start, end)

    cdef bint _range_is_free(self, unsigned long long start, unsigned long long end):
        cdef VMA v = self._find(start)
        return v is None or v.start >= end

    # --- the unmapped-area searches ----------------------------------------------------
    def highest_gap(self, unsigned long long length, unsigned long long low,
                    unsigned long long high):
        """The highest `start` with [start, start+length) free inside [low, high), or
        None: _highest_gap() for Python callers."""
        cdef unsigned long long found
        return found if self._highest_gap(length, low, high, &found) else None

    cdef bint _highest_gap(self, unsigned long long length, unsigned long long low,
                           unsigned long long high, unsigned long long *result) except -1:
        """Top-down unmapped-area search (mm/mmap.c:unmapped_area_topdown()): the highest
        `start` with [start, start+length) free inside [low, high), in *result; False if
        none.

        As in the kernel, the search first looks for a plain hole and only then looks at
        the VMA right above it: if that one grows down and its stack guard gap reaches into
        the hole, the search starts again below the guard gap, skipping everything (holes
        and VMAs alike) inside it. A hole under a growsdown VMA that is too small even
        without the gap is simply passed over.

        The free-area cache, as mm/mmap.c kept before the maple tree: (high, addr, hole)
        says every hole between addr and high is at most `hole` bytes, so a search for
        more can start at addr. Removing a VMA above addr invalidates it."""
        cdef unsigned long long top = high, seen = 0, gap_end, skipped
        cdef bint restarted = False
        cdef VMA upper
        if self._cache_valid and self._cache_high == high and length > self._cache_hole:
            top, seen = self._cache_addr, self._cache_hole
        while True:
            if not self._hole_below(top, length, low, high, &gap_end, &skipped):
                return False
            upper = self._hit_upper
            if skipped > seen:
                seen = skipped
            if upper is not None and start_gap(upper) < gap_end:
                top = high = start_gap(upper)
                restarted = True
                continue
            # Every hole above gap_end is at most `seen` (a guard-gap restart skipped
            # holes that might fit other lengths: no cache then).
            self._cache_valid = not restarted
            self._cache_high, self._cache_addr, self._cache_hole = high, gap_end, seen
            result[0] = gap_end - length
            return True

    cdef bint _hole_below(self, unsigned long long top, unsigned long long length,
                          unsigned long long low, unsigned long long high,
                          unsigned long long *hole_end,
                          unsigned long long *passed) except -1:
        """The highest hole of at least `length` below `top` (clipped to [low, high)):
        its end, the VMA right above it or None (in _hit_upper), and the largest hole
        passed over; False if there is none. The walk goes down VMA by VMA through the
        block it starts in, then leaps to the next block below whose figure could hold
        the request (the segment tree), and walks that one."""
        cdef list blocks = self._blocks
        cdef list block
        cdef Py_ssize_t k, j, found
        cdef long long seen = 0
        cdef unsigned long long gap_end
        cdef int step
        cdef VMA upper, below
        if not self._count:
            self._hit_upper, hole_end[0], passed[0] = None, high, 0
            return high >= low and high - low >= length
        self._locate_left(top, &k, &j)
        upper = self._item(k, j)
        gap_end = high if upper is None or upper.start > high else upper.start
        if j == 0 and k == 0:
            self._hit_upper, hole_end[0], passed[0] = upper, gap_end, 0
            return gap_end >= low and gap_end - low >= length
        if j == 0:                         # start at the VMA below upper
            k -= 1
            j = PyList_GET_SIZE(blocks[k]) - 1
        else:
            j -= 1
        while True:
            block = blocks[k]
            while j >= 0:
                below = _at(block, j)
                step = _hole_step(gap_end, below.end, low, length, &seen)
                if step == HOLE_FITS:
                    self._hit_upper, hole_end[0], passed[0] = upper, gap_end, seen
                    return True
                if step == BELOW_LOW:
                    return False
                upper = below
                gap_end = below.start if below.start < high else high
                j -= 1
            if self._dirty[k]:
                self._settle(k)            # walked through: no hole in it fitted
            if not self._seg_n:
                self._seg_build()          # blocks were split or joined since the last leap
            found = self._seg_rightmost(k - 1, length)
            if found < k - 1:
                # Blocks passed over whole: each of their holes is under length.
                if seen < <long long>length - 1:
                    seen = <long long>length - 1
                upper = _at(blocks[found + 1], 0)
                gap_end = upper.start if upper.start < high else high
            if found < 0:                  # the hole below the lowest VMA
                self._hit_upper, hole_end[0], passed[0] = upper, gap_end, seen
                return gap_end >= low and gap_end - low >= length
            k = found
            j = PyList_GET_SIZE(blocks[k]) - 1

    def lowest_gap(self, unsigned long long length, unsigned long long low,
                   unsigned long long high):
        """The lowest free start at or above low, or None: _lowest_gap() for Python
        callers."""
        cdef unsigned long long found
        return found if self._lowest_gap(length, low, high, &found) else None

    cdef bint _lowest_gap(self, unsigned long long length, unsigned long long low,
                          unsigned long long high, unsigned long long *result) except -1:
        """Bottom-up search (unmapped_area()): the lowest free start at or above low, in
        *result; False if none. It
        walks up VMA by VMA, leaping from the start of a block to the next block whose
        figure could hold the request."""
        cdef unsigned long long gap_start = low, gap_end
        cdef VMA upper = self._find(low)
        cdef Py_ssize_t k = 0, j = 0, found
        cdef VMA prev
        cdef list blocks = self._blocks
        if upper is not None:
            j = self._position(upper, &k)
            prev = self._item(k, j - 1)
        else:
            prev = self._last()
        if prev is not None and prev.end > gap_start:
            gap_start = prev.end
        while True:
            gap_end = high
            if upper is not None and start_gap(upper) < high:
                gap_end = start_gap(upper)
            if gap_end >= gap_start and gap_end - gap_start >= length:
                result[0] = gap_start
                return True
            if upper is None or upper.end >= high:
                return False
            if upper.end > gap_start:
                gap_start = upper.end
            j += 1
            if j < PyList_GET_SIZE(blocks[k]):
                upper = _at(blocks[k], j)
                continue
            # Past block k: the next hole (above its last VMA) is k's; the holes of the
            # blocks after it are passed over while their figures are under length.
            k += 1
            j = 0
            if k == PyList_GET_SIZE(blocks):
                upper = None
                continue
            upper = _at(blocks[k], 0)
            gap_end = high if start_gap(upper) >= high else start_gap(upper)
            if gap_end >= gap_start and gap_end - gap_start >= length:
                result[0] = gap_start
                return True
            if not self._seg_n:
                self._seg_build()
            found = self._seg_leftmost(k, length)
            if found > k:
                prev = _at(blocks[found - 1], PyList_GET_SIZE(blocks[found - 1]) - 1)
                if prev.end >= high:
                    return False
                if prev.end > gap_start:
                    gap_start = prev.end
                k = found
                upper = _at(blocks[k], 0) if k < PyList_GET_SIZE(blocks) else None

    cdef VMA _last(self):
        if not self._count:
            return None
        block = self._blocks[PyList_GET_SIZE(self._blocks) - 1]
        return _at(block, PyList_GET_SIZE(block) - 1)

    def check(self):
        """The tree's own invariants (for tests): order, no overlap, block sizes, count,
        hole figures that bound the real holes, and the segment tree over them."""
        cdef Py_ssize_t k, i, total = 0, n = self._seg_n
        cdef Py_ssize_t nblocks = PyList_GET_SIZE(self._blocks)
        cdef VMA prev = None, v
        for k in range(nblocks):
            block = self._blocks[k]
            assert 0 < len(block) <= 2 * self._load, f"block {k} holds {len(block)}"
            if not self._dirty[k]:
                assert self._gap[k] >= self._block_gap(k), f"block {k} hole figure"
            for v in block:
                assert v.start < v.end, repr(v)
                assert prev is None or prev.end <= v.start, f"{prev!r} overlaps {v!r}"
                prev = v
            total += len(block)
        assert total == self._count, (total, self._count)
        if n:
            assert n >= nblocks, "segment tree smaller than the blocks"
            for i in range(n):
                assert self._seg[n + i] == (0 if i >= nblocks else UNBOUNDED
                                            if self._dirty[i] else self._gap[i]), f"leaf {i}"
            for i in range(1, n):
                assert self._seg[i] == max(self._seg[2 * i], self._seg[2 * i + 1]), f"node {i}"
