"""VMAs, the per-mm VMA set, and the kernel's merge rules.

Mirrors include/linux/mm_types.h:vm_area_struct (the fields the simulator needs), the maple
tree's role in mm/mmap.c (ordered lookup and gap search), and the mergeability tests of
mm/vma.c (is_mergeable_vma(), is_mergeable_anon_vma(), can_vma_merge_before/after()).
"""
import bisect

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
        if start is None and end is None:
            return VMA(self.start, self.end, self.flags, self.pgoff, self.file,
                       self.anon_vma, self.anon_name)
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

    # VMAs per block of the list: the unit the hole index skips over.
    BLOCK_LOAD = 64

    def __init__(self):
        self._list = SortedKeyList(key=_start_key)
        self._list._reset(self.BLOCK_LOAD)
        # Hole index, the maple tree's gap tracking in miniature: for each block of the
        # list (sortedcontainers' sublists), the largest hole between two of its VMAs.
        # Blocks whose VMAs changed are recomputed lazily, all of them if blocks were
        # split or joined.
        self._block_gap = []
        self._dirty = set()
        self._all_dirty = True
        # Free-area cache, as mm/mmap.c kept before the maple tree: (high, addr, hole)
        # says every hole between addr and high is at most `hole` bytes, so a top-down
        # search for more can start at addr. Removing a VMA above addr invalidates it.
        self._gap_cache = None

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)

    def insert(self, vma):
        """Add a VMA. Inside a block it only splits a hole, so the block's largest-hole
        figure stays a valid upper bound; at either end of a block it turns the hole to
        the neighbouring block into an inner one, which must be counted."""
        lists = self._list._lists
        blocks = len(lists)
        self._list.add(vma)
        if len(lists) != blocks:
            self._all_dirty = True
        elif not self._all_dirty:
            k = self._block_of(vma.start)
            if lists[k][0] is vma or lists[k][-1] is vma:
                self._dirty.add(k)

    def load(self, vmas):
        """Fill an empty tree with VMAs in address order, in one go (dup_mmap())."""
        assert not len(self._list)
        self._list.update(vmas)
        self._all_dirty = True

    def set_end(self, vma, end):
        """Move a VMA's end (a VMA's start is its key: re-insert it to move that). Only a
        shrink can grow a hole."""
        if end < vma.end and not self._all_dirty:
            self._dirty.add(self._block_of(vma.start))
        vma.end = end

    def _block_of(self, key):
        maxes = self._list._maxes
        k = bisect.bisect_left(maxes, key)
        return min(k, len(maxes) - 1)

    def _block_gaps(self):
        """The per-block largest inner hole, brought up to date."""
        lists = self._list._lists
        if self._all_dirty:
            self._block_gap = [_largest_hole(b) for b in lists]
            self._all_dirty = False
            self._dirty.clear()
        elif self._dirty:
            for k in self._dirty:
                if k < len(lists):
                    self._block_gap[k] = _largest_hole(lists[k])
            self._dirty.clear()
        return self._block_gap

    def remove(self, vma, range_stays_mapped=False):
        """Take vma out of the tree. Callers that re-key or merge it away, so that its
        range stays covered, say so and keep the free-area cache."""
        blocks = len(self._list._lists)
        k = self._block_of(vma.start)
        self._list.remove(vma)
        if len(self._list._lists) != blocks:
            self._all_dirty = True
        elif range_stays_mapped:
            return          # a neighbour covers the range: no hole grew
        elif not self._all_dirty:
            self._dirty.add(k)
        if self._gap_cache is not None and vma.end > self._gap_cache[1]:
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
        top, seen = high, 0
        cache = self._gap_cache
        if cache is not None and cache[0] == high and length > cache[2]:
            top, seen = cache[1], cache[2]
        restarted = False
        while True:
            hit = self._hole_below(top, length, low, high)
            if hit is None:
                return None
            gap_end, upper, skipped = hit
            if skipped > seen:
                seen = skipped
            if upper is not None and vm_start_gap(upper) < gap_end:
                top = high = vm_start_gap(upper)
                restarted = True
                continue
            # Every hole above gap_end is at most `seen` (a guard-gap restart skipped
            # holes that might fit other lengths: no cache then).
            self._gap_cache = None if restarted else (high, gap_end, seen)
            return gap_end - length

    def _hole_below(self, top, length, low, high):
        """The highest hole of at least `length` below `top` (clipped to [low, high)):
        (its end, the VMA right above it or None, the largest hole passed over), or None.
        Blocks whose largest inner hole is too small are passed over whole."""
        lst = self._list
        lists = lst._lists
        gaps = self._block_gaps()
        i = lst.bisect_key_left(top)
        upper = lst[i] if i < len(lst) else None
        gap_end = high if upper is None else min(high, upper.start)
        seen = 0
        if i == 0:
            return (gap_end, upper, seen) if gap_end - low >= length else None
        k, j = lst._pos(i - 1)
        rescanned = None           # a block entered whole: its largest hole gets measured
        while True:
            block = lists[k]
            inner = 0
            last_j = len(block) - 1
            while j >= 0:
                below = block[j]
                end = below.end
                hole = gap_end - (end if end > low else low)
                if hole >= length:
                    return gap_end, upper, seen
                if hole > seen:
                    seen = hole
                if end <= low:
                    return None
                if j < last_j and block[j + 1].start - end > inner:
                    inner = block[j + 1].start - end
                upper = below
                gap_end = below.start if below.start < high else high
                j -= 1
            if rescanned == k:
                gaps[k] = inner     # measured exactly: no hole in it fitted
            k -= 1
            # Pass over blocks that cannot hold the request, checking only the hole
            # between each and the VMA above it.
            while k >= 0:
                block = lists[k]
                last = block[-1]
                end = last.end
                hole = gap_end - (end if end > low else low)
                if hole >= length:
                    return gap_end, upper, seen
                if hole > seen:
                    seen = hole
                if end <= low:
                    return None
                if gaps[k] >= length:
                    upper = last
                    gap_end = last.start if last.start < high else high
                    j = len(block) - 2
                    rescanned = k
                    break
                if gaps[k] > seen:
                    seen = gaps[k]
                upper = block[0]
                if upper.start <= low:
                    return None
                gap_end = upper.start if upper.start < high else high
                k -= 1
            else:
                return (gap_end, upper, seen) if gap_end - low >= length else None

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


def _largest_hole(block):
    """The largest hole between consecutive VMAs of one block."""
    best = 0
    prev_end = None
    for v in block:
        if prev_end is not None and v.start - prev_end > best:
            best = v.start - prev_end
        prev_end = v.end
    return best
