"""Files, memfds and the page cache (mm/filemap.c, mm/truncate.c, mm/shmem.c, mm/memfd.c).

An `Inode` is a file's identity, size and page cache; a `File` is an open file description
of one (what a caller holds, as an fd). The machine they live on (fs/machine.py) owns the
frames their pages are in and the reverse map that truncate and hole punching unmap with.
"""
import errno
import operator

from .. import core as _core
from ..constants import (F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL,
                         F_SEAL_SHRINK, F_SEAL_WRITE, PAGE_SHIFT, PAGE_SIZE)
from ..errors import raise_errno

ALL_SEALS = (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
             | F_SEAL_EXEC)
# The anonymous device tmpfs/shmem inodes report (regular files are on the profile's
# root_dev).
SHMEM_DEV = (0x00, 0x01)


class Inode:
    """A file's identity, size and page cache: page index -> frame number."""

    def __init__(self, system, kind, path, dev, ino, size=0):
        self.system = system
        self.kind = kind            # "file", "memfd" or "shmem_anon"
        self.path = path
        self.dev = dev
        self.ino = ino
        self.size = size
        self.pages = {}
        self.seals = F_SEAL_SEAL    # a memfd without MFD_ALLOW_SEALING is sealed shut

    @property
    def is_shmem(self):
        return self.kind != "file"

    @property
    def frame_kind(self):
        return _core.FRAME_SHMEM if self.is_shmem else _core.FRAME_FILE

    @property
    def nr_pages(self):
        """Pages inside i_size: a fault past these is SIGBUS (filemap_fault())."""
        return (self.size + PAGE_SIZE - 1) >> PAGE_SHIFT

    # --- page cache (mm/filemap.c, mm/shmem.c) ------------------------------------------
    def find_page(self, index):
        return self.pages.get(index)

    def get_page(self, index):
        """The page cache page at `index`, reading a hole in as a zeroed page."""
        pfn = self.pages.get(index)
        if pfn is None:
            pfn = self.system.frames.alloc(self.frame_kind)
            self.pages[index] = pfn
        return pfn

    def read(self, offset, n):
        out = bytearray()
        end = min(offset + n, self.size)
        frames = self.system.frames
        while offset < end:
            index, inpage = divmod(offset, PAGE_SIZE)
            chunk = min(PAGE_SIZE - inpage, end - offset)
            pfn = self.pages.get(index)
            if pfn is not None:
                # filemap_read(): a PG_readahead mark (set by reclaim, see mm/madvise.pyx
                # _reclaimed_cache_pages()) starts async readahead, which clears it.
                frames.clear_reclaim(pfn)
            out += frames.read(pfn, inpage, chunk) if pfn is not None else bytes(chunk)
            offset += chunk
        return bytes(out)

    def write(self, offset, data):
        frames = self.system.frames
        pos, view = offset, memoryview(data)
        while view:
            index, inpage = divmod(pos, PAGE_SIZE)
            chunk = min(PAGE_SIZE - inpage, len(view))
            pfn = self.get_page(index)
            frames.write(pfn, inpage, bytes(view[:chunk]))
            frames.set_dirty(pfn)
            view = view[chunk:]
            pos += chunk
        self.size = max(self.size, offset + len(data))

    def set_size(self, size):
        """truncate: shrinking unmaps and drops the pages past the new end, even private
        COW copies (truncate_pagecache() uses even_cows); guard markers stay."""
        old = self.size
        if size < old:
            first = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
            self.system.unmap_mapping_range(self, first, None, even_cows=True)
            self._drop_pages(first, None)
            if size % PAGE_SIZE:
                pfn = self.pages.get(size >> PAGE_SHIFT)
                if pfn is not None:
                    inpage = size % PAGE_SIZE
                    self.system.frames.write(pfn, inpage, bytes(PAGE_SIZE - inpage))
        self.size = size

    def punch(self, offset, length):
        """fallocate(PUNCH_HOLE|KEEP_SIZE): whole pages leave the cache (unmapped from every
        mapping, private COW copies kept), partial pages are zeroed in place."""
        end = min(offset + length, max(self.size, offset + length))
        first = (offset + PAGE_SIZE - 1) >> PAGE_SHIFT
        last = end >> PAGE_SHIFT            # exclusive
        frames = self.system.frames
        for lo, hi in ((offset, min(end, first << PAGE_SHIFT)),
                       (max(offset, last << PAGE_SHIFT), end)):
            if lo < hi:
                pfn = self.pages.get(lo >> PAGE_SHIFT)
                if pfn is not None:
                    frames.write(pfn, lo % PAGE_SIZE, bytes(hi - lo))
        if first < last:
            self.system.unmap_mapping_range(self, first, last, even_cows=False)
            self._drop_pages(first, last)

    def remove_page(self, index, pfn):
        """__remove_mapping() by reclaim: page `pfn` at `index` leaves the cache."""
        if self.pages.get(index) == pfn:
            self.system.frames.put(self.pages.pop(index))

    def _drop_pages(self, first, last):
        frames = self.system.frames
        for index in [i for i in self.pages if i >= first and (last is None or i < last)]:
            frames.put(self.pages.pop(index))

    def release(self):
        for pfn in self.pages.values():
            self.system.frames.put(pfn)
        self.pages.clear()


class File:
    """An open file description (struct file): an inode opened read-only or read-write."""

    def __init__(self, inode, readable=True, writable=True):
        self.inode = inode
        self.readable = readable
        self.writable = writable
        self.closed = False

    def close(self):
        """close(2): mappings keep the file; new mmap calls with it get EBADF."""
        self.closed = True

    # What /proc/PID/maps shows for mappings of this file, and its size: the inode's, as
    # struct file reaches them through f_inode.
    path = property(operator.attrgetter("inode.path"))
    dev = property(operator.attrgetter("inode.dev"))
    ino = property(operator.attrgetter("inode.ino"))
    kind = property(operator.attrgetter("inode.kind"))
    size = property(operator.attrgetter("inode.size"))

    @property
    def deleted(self):
        return self.inode.kind != "file"

    @property
    def display_path(self):
        return self.path + (" (deleted)" if self.deleted else "")

    def reopen(self, readonly=True):
        """open() the same inode again (O_RDONLY if readonly, else O_RDWR)."""
        return File(self.inode, readable=True, writable=not readonly)

    def pread(self, offset, n):
        offset, n = operator.index(offset), operator.index(n)
        if offset < 0 or n < 0:
            raise_errno(errno.EINVAL)
        if not self.readable:
            raise_errno(errno.EBADF)
        return self.inode.read(offset, n)

    def pwrite(self, offset, data):
        offset = operator.index(offset)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes-like")
        if offset < 0:
            raise_errno(errno.EINVAL)
        if not self.writable:
            raise_errno(errno.EBADF)
        seals = self.inode.seals if self.inode.kind == "memfd" else 0
        if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            raise_errno(errno.EPERM)
        if seals & F_SEAL_GROW and offset + len(data) > self.inode.size:
            raise_errno(errno.EPERM)
        self.inode.write(offset, data)
        return len(data)

    def truncate(self, size):
        size = operator.index(size)
        if size < 0:
            raise_errno(errno.EINVAL)
        if not self.writable:
            raise_errno(errno.EINVAL)
        seals = self.inode.seals if self.inode.kind == "memfd" else 0
        if (size < self.inode.size and seals & F_SEAL_SHRINK) or \
                (size > self.inode.size and seals & F_SEAL_GROW):
            raise_errno(errno.EPERM)
        self.inode.set_size(size)

    def punch_hole(self, offset, length):
        offset, length = operator.index(offset), operator.index(length)
        if offset < 0 or length <= 0:
            raise_errno(errno.EINVAL)
        if not self.writable:
            raise_errno(errno.EBADF)
        if self.inode.kind == "memfd" and self.inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            raise_errno(errno.EPERM)
        self.inode.punch(offset, length)

    # memfd seals (mm/memfd.c:memfd_add_seals())
    @property
    def seals(self):
        if self.inode.kind != "memfd":
            raise_errno(errno.EINVAL)
        return self.inode.seals

    def add_seals(self, seals):
        seals = operator.index(seals)
        if self.inode.kind != "memfd":
            raise_errno(errno.EINVAL)
        if seals & ~ALL_SEALS:
            raise_errno(errno.EINVAL)
        if not self.writable:
            raise_errno(errno.EPERM)
        if self.inode.seals & F_SEAL_SEAL:
            raise_errno(errno.EPERM)
        if seals & F_SEAL_WRITE and self.system.has_shared_writable_mapping(self.inode):
            raise_errno(errno.EBUSY)
        self.inode.seals |= seals

    @property
    def system(self):
        return self.inode.system

    def __repr__(self):
        return f"File({self.path!r}, {'rw' if self.writable else 'ro'})"
