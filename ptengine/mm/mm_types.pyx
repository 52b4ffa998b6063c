# cython: boundscheck=True, wraparound=True, cdivision=False, nonecheck=True
# Python semantics for indexing and division, and None checks on typed objects:
# the hot loops index through PyList_GET_ITEM and C arrays, not through these.
"""VMAs: include/linux/mm_types.h:vm_area_struct and struct anon_vma (mm/rmap.c).

The fields the simulator needs, as C integers where every syscall reads them (addresses,
flags, pgoff); vm_start_gap() of include/linux/mm.h. The per-mm set of VMAs is
vmatree.pyx, the merge rules and the operations on VMAs of one mm are vma.pyx.
"""
cimport cython

from .. import constants as C
from ..proc.text import render_maps_line, vmflags_mnemonics

cdef int PAGE_SHIFT = C.PAGE_SHIFT
cdef unsigned long long VM_SHARED = C.VM_SHARED
cdef u64 VM_GROWSDOWN = C.VM_GROWSDOWN, STACK_GUARD_GAP = C.STACK_GUARD_GAP


cdef class AnonVma:
    """Identity of an anon_vma (mm/rmap.c). Two VMAs can merge only if they share one,
    or at most one of them has one. `forked` marks a child's anon_vma, whose chain holds
    the parent's too, so it is never reused by a neighbour (list_is_singular())."""

    def __init__(self, forked=False):
        self.forked = forked


@cython.freelist(64)
cdef class VMA:
    """One vm_area_struct: [start, end) with vm_flags, file offset in pages and identity."""

    def __init__(self, unsigned long long start, unsigned long long end,
                 unsigned long long flags, unsigned long long pgoff=0, file=None,
                 anon_vma=None, anon_name=None):
        # Once only: a VMA in a tree must not get new bounds behind the tree's back (one
        # that never had an end, a new one or an empty one, is in no tree).
        if self.end:
            raise TypeError(f"{self!r} is already initialised")
        if end < start:
            raise ValueError(f"VMA end {end:#x} below start {start:#x}")
        _set_fields(self, start, end, flags, pgoff, file, anon_vma, anon_name)

    # --- derived properties -------------------------------------------------------------
    @property
    def size(self):
        return self.end - self.start

    @property
    def pages(self):
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def is_anonymous(self):
        """vma_is_anonymous(): no file and no vm_ops (shared anonymous is shmem)."""
        return self.file is None

    @property
    def is_shared(self):
        return bool(self.flags & VM_SHARED)

    @property
    def is_private_anon(self):
        return self.file is None

    @property
    def is_shmem(self):
        return self.file is not None and self.file.inode.is_shmem

    @property
    def name(self):
        """What /proc/PID/maps prints after the inode (without [heap]/[stack])."""
        if self.file is not None:
            return self.file.display_path
        if self.anon_name is not None:
            return f"[anon:{self.anon_name}]"
        return ""

    def pgoff_at(self, unsigned long long addr):
        """File page index that `addr` maps (linear_page_index())."""
        if not self.start <= addr <= self.end:
            raise ValueError(f"{addr:#x} is outside {self!r}")
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    cpdef VMA copy(self, start=None, end=None):
        """vm_area_dup(): same identity, optionally clipped (pgoff follows the start)."""
        cdef unsigned long long lo = self.start if start is None else start
        cdef unsigned long long hi = self.end if end is None else end
        if not self.start <= lo <= hi <= self.end:
            raise ValueError(f"[{lo:#x}, {hi:#x}) is not a piece of {self!r}")
        return self.piece(lo, hi)

    cdef VMA piece(self, u64 lo, u64 hi):
        """copy(lo, hi) for the compiled callers, whose [lo, hi) is inside this VMA."""
        return new_vma(lo, hi, self.flags, self.pgoff + ((lo - self.start) >> PAGE_SHIFT),
                       self.file, self.anon_vma, self.anon_name)

    def __reduce__(self):
        # A copy is made by the constructor: no state is written into a live VMA (whose
        # bounds the tree keys).
        return VMA, (self.start, self.end, self.flags, self.pgoff, self.file, self.anon_vma,
                     self.anon_name)

    def __repr__(self):
        """What a reader looks for: the maps range and perms (and, for a file, the offset),
        the smaps VmFlags mnemonics and the name (show_map_vma(), show_smap_vma_flags())."""
        fields = render_maps_line(self).split()
        shown = fields[:3] if self.file is not None else fields[:2]
        shown += vmflags_mnemonics(self.flags)
        if self.name:
            shown.append(self.name)
        return f"VMA({' '.join(shown)})"

    def __eq__(self, other):
        if not isinstance(other, VMA):
            return NotImplemented
        cdef VMA o = other
        return (self.start == o.start and self.end == o.end and self.flags == o.flags
                and self.pgoff == o.pgoff and self.file is o.file
                and self.anon_name == o.anon_name)

    # Equal VMAs are equal records (what tests and users compare: maps before and after);
    # a VMA is mutable (flags, pgoff, the tree moves its bounds), so it cannot hash by value,
    # and an identity hash would break "equal objects hash equal". The tree keys VMAs by
    # identity and never hashes them; key a dict by id(vma) where identity is meant.
    __hash__ = None


cdef VMA new_vma(u64 start, u64 end, u64 flags, u64 pgoff, object file, object anon_vma,
                 object anon_name):
    """VMA(start, end, ...) for the compiled callers, whose bounds are already checked:
    no type call and no argument parsing (vm_area_alloc() from the freelist)."""
    cdef VMA vma = VMA.__new__(VMA)
    _set_fields(vma, start, end, flags, pgoff, file, anon_vma, anon_name)
    return vma


cdef inline void _set_fields(VMA vma, u64 start, u64 end, u64 flags, u64 pgoff, object file,
                             object anon_vma, object anon_name):
    vma.start = start
    vma.end = end
    vma.flags = flags
    vma.pgoff = pgoff
    vma.file = file
    vma.anon_vma = anon_vma
    vma.anon_name = anon_name


cdef int vma_piece(VMA vma, u64 start, u64 end) except -1:
    """A per-VMA step works on a page-aligned piece [start, end) of its VMA."""
    vma_required(vma)
    if not vma.start <= start < end <= vma.end or (start | end) & ((1 << PAGE_SHIFT) - 1):
        raise ValueError(f"[{start:#x}, {end:#x}) is not a page-aligned piece of {vma!r}")
    return 0


cpdef unsigned long long vm_start_gap(VMA vma):
    """The lowest address a new mapping may end at below `vma` (stack guard gap)."""
    vma_required(vma)
    return start_gap(vma)


cdef u64 start_gap(VMA vma) noexcept:
    """A growsdown VMA keeps the stack guard gap below it free."""
    if vma.flags & VM_GROWSDOWN:
        return vma.start - STACK_GUARD_GAP if vma.start > STACK_GUARD_GAP else 0
    return vma.start
