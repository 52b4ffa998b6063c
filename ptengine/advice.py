"""madvise(2), process_madvise(2), guard regions and poison markers.

mirrors mm/madvise.c: do_madvise() validates and walks the VMAs of the range
(madvise_walk_vmas), madvise_vma_behavior() dispatches per VMA; guard install is
"try optimistically, on the first populated entry zap and retry" (madvise_guard_install()).
"""
import errno

from . import _core
from .constants import (MADV_COLD, MADV_COLLAPSE, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP,
                        MADV_DONTFORK, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE,
                        MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_HWPOISON,
                        MADV_KEEPONFORK, MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_NORMAL,
                        MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_RANDOM,
                        MADV_REMOVE, MADV_SEQUENTIAL, MADV_SOFT_OFFLINE, MADV_UNMERGEABLE,
                        MADV_WILLNEED, MADV_WIPEONFORK, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE,
                        PMD_SIZE, UIO_MAXIOV, VM_DONTCOPY, VM_DONTDUMP, VM_DONTEXPAND,
                        VM_DROPPABLE, VM_HUGEPAGE, VM_HUGETLB, VM_IO, VM_LOCKED, VM_MAYBE_GUARD,
                        VM_MAYSHARE, VM_MAYWRITE, VM_MERGEABLE, VM_MIXEDMAP, VM_NOHUGEPAGE, VM_PFNMAP,
                        VM_RAND_READ, VM_SEALED, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WIPEONFORK,
                        VM_WRITE)
from .errors import raise_errno

VALID_ADVICE = frozenset({
    MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
    MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE,
    MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_COLD,
    MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_DONTNEED_LOCKED,
    MADV_COLLAPSE, MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE})
# Advice that discards memory: refused on sealed read-only anonymous VMAs (mm/mseal.c).
DISCARD_ADVICE = frozenset({MADV_FREE, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_REMOVE,
                            MADV_DONTFORK, MADV_WIPEONFORK, MADV_GUARD_INSTALL})
# Advice that only changes vm_flags; it takes the mmap lock for writing.
FLAG_ADVICE = frozenset({MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTFORK,
                         MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTDUMP,
                         MADV_DODUMP, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE,
                         MADV_NOHUGEPAGE})
MAX_GUARD_RETRIES = 3
# Read-ahead window of a regular file's first mmap fault (ra_pages, 128 KiB).
RA_PAGES = 32


def is_valid_guard_vma(vma, allow_locked):
    """mm/madvise.c:is_valid_guard_vma()."""
    disallowed = VM_SPECIAL | VM_HUGETLB | (0 if allow_locked else VM_LOCKED)
    return not vma.flags & disallowed


def is_ro_anon(vma):
    return vma.file is None and not vma.flags & VM_SHARED and not vma.flags & VM_WRITE


def new_behaviour_flags(vma, advice):
    """The vm_flags a flag-only advice gives a VMA (madvise_vma_behavior()); EINVAL where
    the kernel refuses."""
    f = vma.flags
    if advice == MADV_NORMAL:
        return f & ~(VM_RAND_READ | VM_SEQ_READ)
    if advice == MADV_SEQUENTIAL:
        return (f & ~VM_RAND_READ) | VM_SEQ_READ
    if advice == MADV_RANDOM:
        return (f & ~VM_SEQ_READ) | VM_RAND_READ
    if advice == MADV_DONTFORK:
        return f | VM_DONTCOPY
    if advice == MADV_DOFORK:
        if f & VM_IO:
            raise_errno(errno.EINVAL)
        return f & ~VM_DONTCOPY
    if advice == MADV_WIPEONFORK:
        if vma.file is not None or f & VM_SHARED:
            raise_errno(errno.EINVAL)
        return f | VM_WIPEONFORK
    if advice == MADV_KEEPONFORK:
        if f & VM_DROPPABLE:
            raise_errno(errno.EINVAL)
        return f & ~VM_WIPEONFORK
    if advice == MADV_DONTDUMP:
        return f | VM_DONTDUMP
    if advice == MADV_DODUMP:
        if (not f & VM_HUGETLB and f & VM_SPECIAL) or f & VM_DROPPABLE:
            raise_errno(errno.EINVAL)
        return f & ~VM_DONTDUMP
    if advice == MADV_HUGEPAGE:
        return (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
    if advice == MADV_NOHUGEPAGE:
        return (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
    if advice == MADV_MERGEABLE:
        if f & (VM_MERGEABLE | VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND
                | VM_HUGETLB | VM_MIXEDMAP | VM_DROPPABLE):
            return f
        return f | VM_MERGEABLE
    if advice == MADV_UNMERGEABLE:
        return f & ~VM_MERGEABLE
    raise AssertionError(advice)


class AdviceSyscalls:

    # mirrors mm/madvise.c:do_madvise()
    def madvise(self, addr, length, advice):
        from .mm import as_int
        self._alive()
        start, length, advice = as_int(addr, "addr"), as_int(length, "length"), as_int(advice, "advice")
        self._madvise(start, length, advice)

    def _madvise(self, start, length, advice):
        if advice not in VALID_ADVICE:
            raise_errno(errno.EINVAL)
        if start < 0 or start & ~PAGE_MASK:
            raise_errno(errno.EINVAL)
        if length < 0:
            raise_errno(errno.EINVAL)
        aligned = (length + PAGE_SIZE - 1) & PAGE_MASK
        end = start + aligned
        if end >= 1 << 64:
            raise_errno(errno.EINVAL)
        if end == start:
            return
        if advice in (MADV_HWPOISON, MADV_SOFT_OFFLINE):
            raise_errno(errno.EPERM)
        if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
            err = self.madvise_populate(start, end, advice == MADV_POPULATE_WRITE)
            if err:
                raise_errno(err)
            return
        self.walk_vmas(start, end, lambda vma, lo, hi: self._advise_vma(vma, lo, hi, advice))

    def _advise_vma(self, vma, start, end, advice):
        """madvise_vma_behavior(): returns the VMA covering [start, end) afterwards."""
        if vma.flags & VM_SEALED and advice in DISCARD_ADVICE and is_ro_anon(vma):
            raise_errno(errno.EPERM)
        if advice in FLAG_ADVICE:
            try:
                return self.modify_range(vma, start, end, new_behaviour_flags(vma, advice))
            except OSError as e:
                # madvise_update_vma() reports a failed split as EAGAIN.
                if e.errno == errno.ENOMEM:
                    raise_errno(errno.EAGAIN)
                raise
        handler = _HANDLERS[advice]
        handler(self, vma, start, end)
        return vma

    # --- guard regions -------------------------------------------------------------------
    def _guard_install(self, vma, start, end):
        """madvise_guard_install(): flag the VMA (VM_MAYBE_GUARD, no split), prepare its
        anon_vma, then install markers; populated entries are zapped and the walk retried."""
        if not is_valid_guard_vma(vma, allow_locked=False):
            raise_errno(errno.EINVAL)
        if self.system.maybe_guard:
            vma.flags |= VM_MAYBE_GUARD
            if vma.is_anonymous:
                self.anon_vma_prepare(vma)
        else:
            self.anon_vma_prepare(vma)
        zap_flags = 0 if vma.is_anonymous else _core.ZAP_KEEP_UFFD_WP
        for _ in range(MAX_GUARD_RETRIES):
            if self.pt.install_guards(start, end) == end:
                return
            self.pt.zap(start, end, zap_flags)
        # The kernel restarts the syscall; only a marker an ordinary zap keeps (uffd-wp in
        # a file VMA) can get here, and this simulator never creates one.
        raise RuntimeError("guard install would restart forever")

    def _guard_remove(self, vma, start, end):
        if not is_valid_guard_vma(vma, allow_locked=True):
            raise_errno(errno.EINVAL)
        self.pt.remove_guards(start, end)

    # --- discarding advice ---------------------------------------------------------------
    def _dontneed(self, vma, start, end, locked_ok=False):
        forbidden = VM_PFNMAP | (0 if locked_ok else VM_LOCKED)
        if vma.flags & VM_HUGETLB or vma.flags & forbidden:
            raise_errno(errno.EINVAL)
        flags = _core.ZAP_RECLAIM_PT | (0 if vma.is_anonymous else _core.ZAP_KEEP_UFFD_WP)
        self.split_huge_edges(start, end)
        self.pt.zap(start, end, flags)

    def _dontneed_locked(self, vma, start, end):
        self._dontneed(vma, start, end, locked_ok=True)

    def _free(self, vma, start, end):
        """MADV_FREE: anonymous only; pages stay until memory pressure (there is none
        here); poison markers are cleared, guard markers kept."""
        if vma.flags & (VM_PFNMAP | VM_LOCKED | VM_HUGETLB):
            raise_errno(errno.EINVAL)
        if not vma.is_anonymous:
            raise_errno(errno.EINVAL)
        if self.pt.count(start, end)["poison"]:
            for addr in range(start, end, PAGE_SIZE):
                kind, bits, _ = self.pt.lookup(addr)
                if kind == _core.ENTRY_MARKER and bits & _core.PTE_MARKER_POISONED:
                    self.pt.zap(addr, addr + PAGE_SIZE, 0)

    def _remove(self, vma, start, end):
        """MADV_REMOVE: punch the file range behind a shared writable mapping."""
        if vma.flags & VM_LOCKED:
            raise_errno(errno.EINVAL)
        if vma.file is None:
            raise_errno(errno.EINVAL)
        if not (vma.flags & VM_SHARED and vma.flags & VM_MAYWRITE):
            raise_errno(errno.EACCES)
        offset = vma.pgoff_at(start) << PAGE_SHIFT
        vma.file.inode.punch(offset, end - start)

    def _willneed(self, vma, start, end):
        """Read-ahead into the page cache for files; nothing to swap in for anon."""
        if vma.file is not None and not vma.file.inode.is_shmem:
            inode = vma.file.inode
            for index in range(vma.pgoff_at(start), min(vma.pgoff_at(end), inode.nr_pages)):
                inode.get_page(index)

    def _cold(self, vma, start, end):
        if vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
            raise_errno(errno.EINVAL)

    def _pageout(self, vma, start, end):
        """MADV_PAGEOUT with no swap: only clean file pages mapped once can be reclaimed;
        anonymous and shmem pages stay. Markers are untouched."""
        self._cold(vma, start, end)
        if vma.file is None or vma.file.inode.is_shmem:
            return
        frames = self.frames
        for addr in range(start, end, PAGE_SIZE):
            kind, pfn, raw = self.pt.lookup(addr)
            if kind == _core.ENTRY_PRESENT and frames.kind(pfn) == _core.FRAME_FILE \
                    and frames.mapcount(pfn) == 1 and not frames.is_dirty(pfn) \
                    and not raw & _core.PTE_DIRTY:
                self.pt.zap(addr, addr + PAGE_SIZE, _core.ZAP_KEEP_UFFD_WP)

    def _collapse(self, vma, start, end):
        """MADV_COLLAPSE: a PMD range holding any marker (or other non-present entry) cannot
        collapse (SCAN_PTE_NON_PRESENT -> EINVAL)."""
        if vma.flags & VM_NOHUGEPAGE or vma.flags & (VM_SPECIAL | VM_HUGETLB):
            raise_errno(errno.EINVAL)
        lo = (start + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
        hi = end & ~(PMD_SIZE - 1)
        if lo >= hi:
            return
        counts = self.pt.count(lo, hi)
        if counts["guard"] or counts["poison"] or counts["uffd_wp"] or counts["swap"]:
            raise_errno(errno.EINVAL)

    def split_huge_edges(self, start, end):
        for addr in (start, end):
            if addr & (PMD_SIZE - 1):
                self.split_huge_at(addr)

    # --- process_madvise (mm/madvise.c:vector_madvise()) ----------------------------------
    def process_madvise(self, iovecs, advice, flags=0):
        from .mm import as_int
        self._alive()
        advice, flags = as_int(advice, "advice"), as_int(flags, "flags")
        vec = [(as_int(a, "iov_base"), as_int(n, "iov_len")) for a, n in iovecs]
        if flags:
            raise_errno(errno.EINVAL)
        if len(vec) > UIO_MAXIOV:
            raise_errno(errno.EINVAL)
        if any(n < 0 for _, n in vec):
            raise_errno(errno.EINVAL)
        if advice not in VALID_ADVICE:
            raise_errno(errno.EINVAL)
        total = 0
        for addr, length in vec:
            if length == 0:
                continue
            try:
                self._madvise(addr, length, advice)
            except OSError:
                if total == 0:
                    raise
                break
            total += length
        return total

    # --- poison (UFFDIO_POISON) ----------------------------------------------------------
    def install_poison(self, addr, length):
        """Install poison markers as UFFDIO_POISON does: the range must lie in one
        anonymous or shmem VMA (ENOENT otherwise); an entry that is not none gives EEXIST,
        with the pages before it already poisoned."""
        from .mm import page_range
        self._alive()
        start, end = page_range(addr, length)
        if end == start:
            raise_errno(errno.EINVAL)
        vma = self.vma_tree.lookup(start)
        if vma is None or vma.end < end:
            raise_errno(errno.ENOENT)
        if vma.file is not None and not vma.file.inode.is_shmem:
            raise_errno(errno.EINVAL)
        for page in range(start, end, PAGE_SIZE):
            if self.pt.lookup(page)[0] != _core.ENTRY_NONE:
                raise_errno(errno.EEXIST)
            self.pt.set_marker(page, _core.PTE_MARKER_POISONED)


_HANDLERS = {
    MADV_GUARD_INSTALL: AdviceSyscalls._guard_install,
    MADV_GUARD_REMOVE: AdviceSyscalls._guard_remove,
    MADV_DONTNEED: AdviceSyscalls._dontneed,
    MADV_DONTNEED_LOCKED: AdviceSyscalls._dontneed_locked,
    MADV_FREE: AdviceSyscalls._free,
    MADV_REMOVE: AdviceSyscalls._remove,
    MADV_WILLNEED: AdviceSyscalls._willneed,
    MADV_COLD: AdviceSyscalls._cold,
    MADV_PAGEOUT: AdviceSyscalls._pageout,
    MADV_COLLAPSE: AdviceSyscalls._collapse,
}
