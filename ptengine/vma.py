"""VMAs, the per-mm VMA set, and the kernel's merge rules.

Mirrors include/linux/mm_types.h:vm_area_struct (the fields the simulator needs), the maple
tree's role in mm/mmap.c (ordered lookup and gap search), and the mergeability tests of
mm/vma.c (is_mergeable_vma(), is_mergeable_anon_vma(), can_vma_merge_before/after()).
"""
from sortedcontainers import SortedKeyList

from .constants import (PAGE_SHIFT, STACK_GUARD_GAP, VM_ACCESS_FLAGS, VM_GROWSDOWN, VM_SHARED,
                        VM_SOFTDIRTY, VM_SPECIAL, VM_STICKY, VmFlag)


class AnonVma:
    """Identity of an anon_vma (mm/rmap.c). Two VMAs can merge only if they share one,
    or at most one of them has one. `forked` marks a child's anon_vma, whose chain holds
    the parent's too, so it is never reused by a neighbour (list_is_singular())."""
    __slots__ = ("forked",)

    def __init__(self, forked=False):
        self.forked = forked


class VMA:
    """One vm_area_struct: [start, end) with vm_flags, file offset in pages and identity."""
    __slots__ = ("start", "end", "flags", "pgoff", "file", "anon_vma", "anon_name")

    def __init__(self, start, end, flags, pgoff=0, file=None, anon_vma=None, anon_name=None):
        self.start = start
        self.end = end
        self.flags = flags
        self.pgoff = pgoff
        self.file = file
        self.anon_vma = anon_vma
        self.anon_name = anon_name

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

    def pgoff_at(self, addr):
        """File page index that `addr` maps (linear_page_index())."""
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def copy(self, start=None, end=None):
        """vm_area_dup(): same identity, optionally clipped (pgoff follows the start)."""
        start = self.start if start is None else start
        end = self.end if end is None else end
        return VMA(start, end, self.flags, self.pgoff_at(start), self.file, self.anon_vma,
                   self.anon_name)

    def __repr__(self):
        return (f"VMA({self.start:#x}-{self.end:#x} {VmFlag(self.flags)!s} "
                f"pgoff={self.pgoff:#x}{' ' + self.name if self.name else ''})")

    def __eq__(self, other):
        return (isinstance(other, VMA) and self.start == other.start and self.end == other.end
                and self.flags == other.flags and self.pgoff == other.pgoff
                and self.file is other.file and self.anon_name == other.anon_name)

    __hash__ = object.__hash__


def vm_start_gap(vma):
    """The lowest address a new mapping may end at below `vma` (stack guard gap)."""
    if vma.flags & VM_GROWSDOWN:
        return max(vma.start - STACK_GUARD_GAP, 0)
    return vma.start


# --- merge rules (mm/vma.c) --------------------------------------------------------------

def same_file(a_file, b_file):
    if a_file is None or b_file is None:
        return a_file is None and b_file is None
    return a_file.inode is b_file.inode


def anon_vma_compatible(a, b):
    """is_mergeable_anon_vma(): either side has none, or they are the same anon_vma."""
    return a is None or b is None or a is b


def mergeable_attrs(flags, file, anon_name, other):
    """is_mergeable_vma(): flags equal apart from the sticky ones, same file, same name."""
    if (flags ^ other.flags) & ~VM_STICKY:
        return False
    if not same_file(file, other.file):
        return False
    return anon_name == other.anon_name


def can_merge_after(prev, start, flags, pgoff, file, anon_vma, anon_name):
    """can_vma_merge_after(): may a range starting at prev.end join `prev`?"""
    if prev is None or prev.end != start or (flags | prev.flags) & VM_SPECIAL:
        return False
    if not mergeable_attrs(flags, file, anon_name, prev):
        return False
    if not anon_vma_compatible(prev.anon_vma, anon_vma):
        return False
    return prev.pgoff + prev.pages == pgoff


def can_merge_before(nxt, end, flags, pgoff, npages, file, anon_vma, anon_name):
    """can_vma_merge_before(): may a range ending at nxt.start join `nxt`?"""
    if nxt is None or nxt.start != end or (flags | nxt.flags) & VM_SPECIAL:
        return False
    if not mergeable_attrs(flags, file, anon_name, nxt):
        return False
    if not anon_vma_compatible(nxt.anon_vma, anon_vma):
        return False
    return pgoff + npages == nxt.pgoff


def anon_vma_reusable(vma, neighbour):
    """reusable_anon_vma()/anon_vma_compatible() in mm/rmap.c: a neighbour's anon_vma can be
    shared by `vma` when they touch, map contiguous offsets and differ at most in access
    and soft-dirty flags, so that a later mprotect can merge them."""
    if neighbour is None or neighbour.anon_vma is None or neighbour.anon_vma.forked:
        return None
    lo, hi = (neighbour, vma) if neighbour.end == vma.start else (vma, neighbour)
    if lo.end != hi.start:
        return None
    ignore = VM_ACCESS_FLAGS | VM_SOFTDIRTY | VM_STICKY
    if (lo.flags ^ hi.flags) & ~ignore or not same_file(lo.file, hi.file):
        return None
    if lo.pgoff + lo.pages != hi.pgoff:
        return None
    return neighbour.anon_vma


class VMATree:
    """The mm's VMA set, ordered by start: O(log n) lookup, insert and removal.

    Stands in for the maple tree. Holes are found by walking down from the high limit; the
    common cases (placement below a contiguous run) touch only a few neighbours.
    """

    def __init__(self):
        self._list = SortedKeyList(key=_start_key)
        # Free-area cache, as mm/mmap.c kept before the maple tree: (high, addr, hole)
        # says every hole between addr and high is at most `hole` bytes, so a top-down
        # search for more can start at addr. Removing a VMA above addr invalidates it.
        self._gap_cache = None

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)

    def insert(self, vma):
        self._list.add(vma)

    def remove(self, vma, range_stays_mapped=False):
        """Take vma out of the tree. Callers that re-key or merge it away, so that its
        range stays covered, say so and keep the free-area cache."""
        self._list.remove(vma)
        if not range_stays_mapped and self._gap_cache is not None \
                and vma.end > self._gap_cache[1]:
            self._gap_cache = None

    def index_of(self, vma):
        return self._list.index(vma)

    def at(self, index):
        if 0 <= index < len(self._list):
            return self._list[index]
        return None

    def find(self, addr):
        """find_vma(): the first VMA with end > addr (it may start above addr)."""
        lst = self._list
        i = lst.bisect_key_right(addr) - 1
        if i >= 0:
            v = lst[i]
            if v.end > addr:
                return v
        i += 1
        return lst[i] if i < len(lst) else None

    def find_index(self, addr):
        """Index of the first VMA with end > addr, or len() if none."""
        lst = self._list
        i = lst.bisect_key_right(addr) - 1
        if i >= 0 and lst[i].end > addr:
            return i
        return i + 1

    def lookup(self, addr):
        """The VMA containing addr, or None (vma_lookup())."""
        v = self.find(addr)
        return v if v is not None and v.start <= addr else None

    def prev_next(self, start, end):
        """The VMAs just below `start` and at or above `end` (vma_prev()/vma_next() of a
        free range)."""
        lst = self._list
        i = lst.bisect_key_left(start)
        prev = lst[i - 1] if i > 0 else None
        j = lst.bisect_key_left(end)
        nxt = lst[j] if j < len(lst) else None
        return prev, nxt

    def overlapping(self, start, end):
        """VMAs intersecting [start, end), in address order (a snapshot list)."""
        lst = self._list
        i = self.find_index(start)
        out = []
        n = len(lst)
        while i < n:
            v = lst[i]
            if v.start >= end:
                break
            out.append(v)
            i += 1
        return out

    def range_is_free(self, start, end):
        v = self.find(start)
        return v is None or v.start >= end

    def highest_gap(self, length, low, high):
        """Top-down unmapped-area search (mm/mmap.c:unmapped_area_topdown()): the highest
        `start` with [start, start+length) free inside [low, high). None if none.

        As in the kernel, the search first looks for a plain hole and only then looks at
        the VMA right above it: if that one grows down and its stack guard gap reaches into
        the hole, the search starts again below the guard gap, skipping everything (holes
        and VMAs alike) inside it. A hole under a growsdown VMA that is too small even
        without the gap is simply passed over."""
        lst = self._list
        top, seen = high, 0
        cache = self._gap_cache
        if cache is not None and cache[0] == high and length > cache[2]:
            top, seen = cache[1], cache[2]
        restarted = False
        while True:
            i = lst.bisect_key_left(top)
            upper = lst[i] if i < len(lst) else None
            gap_end = high if upper is None else min(high, upper.start)
            # The VMAs below `top`, highest first, through the list's own iterator.
            for below in lst.irange_key(max_key=top, inclusive=(True, False), reverse=True):
                end = below.end
                hole = gap_end - (end if end > low else low)
                if hole >= length:
                    break
                if hole > seen:
                    seen = hole
                if end <= low:
                    return None
                upper = below
                gap_end = below.start if below.start < high else high
            else:
                if gap_end - low < length:      # the hole down to `low` is too small too
                    return None
            if upper is not None and vm_start_gap(upper) < gap_end:
                top = high = vm_start_gap(upper)
                restarted = True
                continue
            # Every hole above gap_end is at most `seen` (a guard-gap restart skipped
            # holes that might fit other lengths: no cache then).
            self._gap_cache = None if restarted else (high, gap_end, seen)
            return gap_end - length

    def lowest_gap(self, length, low, high):
        """Bottom-up search (unmapped_area()): the lowest free start at or above low."""
        lst = self._list
        i = self.find_index(low)
        gap_start = low
        if i > 0:
            gap_start = max(low, lst[i - 1].end)
        while True:
            upper = lst[i] if i < len(lst) else None
            gap_end = high if upper is None else min(high, vm_start_gap(upper))
            if gap_end - gap_start >= length:
                return gap_start
            if upper is None or upper.end >= high:
                return None
            gap_start = max(gap_start, upper.end)
            i += 1


def _start_key(vma):
    return vma.start
