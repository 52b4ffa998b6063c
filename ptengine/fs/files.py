"""The System (physical frames and page cache), files and memfds.

A `System` owns what every process of one machine shares: the frame allocator of the
compiled core, the page cache of every file, and the list of live address spaces (for
reverse mapping when a file is truncated or punched). Files are inodes plus open file
descriptions: `File` is what a caller holds, as an fd.

Mirrors: mm/filemap.c (page cache lookup), mm/truncate.c (truncate_pagecache(),
truncate_pagecache_range()), mm/memory.c:unmap_mapping_range(), mm/shmem.c, mm/memfd.c.
"""
import errno
import itertools
import operator
import os
import weakref

from . import _core
from . import profile as host_profiles
from .constants import (DEFAULT_MMAP_BASE, F_SEAL_FUTURE_WRITE,
                        F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE, F_SEAL_EXEC,
                        MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_EXEC, MFD_HUGETLB,
                        MFD_NOEXEC_SEAL, PAGE_SHIFT, PAGE_SIZE, VM_MAYWRITE, VM_SHARED,
                        VM_SOFTDIRTY)
from .errors import raise_errno

ALL_SEALS = (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
             | F_SEAL_EXEC)
MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
MFD_NAME_MAX_LEN = 249
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
                # filemap_read(): a PG_readahead mark (set by reclaim, see advice.pyx
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

    # What /proc/PID/maps shows for mappings of this file.
    @property
    def path(self):
        return self.inode.path

    @property
    def dev(self):
        return self.inode.dev

    @property
    def ino(self):
        return self.inode.ino

    @property
    def kind(self):
        return self.inode.kind

    @property
    def deleted(self):
        return self.inode.kind != "file"

    @property
    def display_path(self):
        return self.path + (" (deleted)" if self.deleted else "")

    @property
    def size(self):
        return self.inode.size

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


class System:
    """One machine: frames, the page cache and the processes (mm_structs) on it."""

    def __init__(self, *, profile=None, mmap_base=DEFAULT_MMAP_BASE, tmpdir="/tmp",
                 **settings):
        self.frames = _core.Frames()
        # The machine this System stands for (profile.py: RAM, sysctls, build options);
        # keyword settings (max_map_count=1000, anon_vma_name=True...) change single fields.
        self.profile = host_profiles.get(profile).with_fields(**settings)
        if self.profile.overcommit_memory not in host_profiles.SIMULATED_OVERCOMMIT:
            raise ValueError(f"profile {self.profile.name!r}: vm.overcommit_memory = "
                             f"{self.profile.overcommit_memory} (strict accounting) is not "
                             f"simulated")
        self.mmap_base = operator.index(mmap_base)
        self.tmpdir = tmpdir.rstrip("/")
        # The live processes, held weakly: a process lives until exit(), but one its user
        # dropped cannot be exited any more, so it goes (with a ResourceWarning, see
        # MM.__del__) and takes its address space with it. The reverse mapping below sees
        # exactly the processes that can still be used.
        self._processes = weakref.WeakValueDictionary()
        self._slots = itertools.count()
        self._ino = itertools.count(12)
        self._names = set()
        self._paths = {}            # path -> Inode of the files open() has named

    @property
    def max_map_count(self):
        """vm.max_map_count: each new process's limit unless spawn() says otherwise."""
        return self.profile.max_map_count

    @property
    def new_vma_flags(self):
        return VM_SOFTDIRTY if self.profile.soft_dirty else 0

    @property
    def processes(self):
        """The live processes (MMs not exited and still referenced), oldest first."""
        return [mm for mm in self._processes.values() if not mm.dead]

    def _attach(self, mm):
        """Register a new process; returns its slot for _detach()."""
        slot = next(self._slots)
        self._processes[slot] = mm
        return slot

    def _detach(self, slot):
        self._processes.pop(slot, None)

    def spawn(self, **options):
        """A new, empty process address space."""
        from .mm import MM
        return MM(system=self, **options)

    def execve(self, path, argv=None, *, envp=None, stack_rlimit=8 << 20):
        """A new process whose address space is what Linux's execve(path, argv, envp)
        leaves with ASLR off (fs/binfmt_elf.c; see ptengine/binfmt_elf.py). `envp`: a
        mapping or "NAME=value" strings, empty by default; with argv it sizes the stack.
        The process's mmap_base follows stack_rlimit as the kernel derives it, whatever
        this System's `mmap_base` (which is spawn()'s default)."""
        from .binfmt_elf import execve
        return execve(self, path, argv, envp, stack_rlimit)

    def create_file(self, name, size=0):
        """A regular file on the root file system, opened read-write."""
        if not isinstance(name, str):
            raise TypeError("name must be str")
        path = name if name.startswith("/") else f"{self.tmpdir}/{name}"
        inode = Inode(self, "file", path, self.profile.root_dev, next(self._ino))
        inode.seals = 0
        f = File(inode)
        if size:
            f.truncate(size)
        return f

    def open(self, path):
        """The regular file at `path`, opened read-write; every open of one path shares its
        inode (and page cache). A path naming a file of this host is resolved as the kernel
        resolves it (symlinks followed: maps shows the real path) and takes that file's
        size, device and inode numbers, so maps lines of its mappings read as the kernel's;
        its contents are not read (pages read in as zeros). Any other path is a new empty
        file on the root file system: size it with truncate(), e.g. to replay a log taken
        on another machine."""
        if not isinstance(path, str):
            raise TypeError("path must be str")
        try:
            real = os.path.realpath(path, strict=True)
            st = os.stat(real)
        except OSError:
            real, st = path, None
        inode = self._paths.get(real)
        if inode is None:
            if st is None:
                inode = Inode(self, "file", real, self.profile.root_dev, next(self._ino))
            else:
                inode = Inode(self, "file", real, (os.major(st.st_dev), os.minor(st.st_dev)),
                              st.st_ino, st.st_size)
            inode.seals = 0
            self._paths[real] = inode
        return File(inode)

    def memfd_create(self, name, flags=0):
        """memfd_create(2): a shmem file, with seals if MFD_ALLOW_SEALING."""
        if not isinstance(name, str):
            raise TypeError("name must be str")
        flags = operator.index(flags)
        if flags & ~MFD_ALL_FLAGS or len(name.encode()) > MFD_NAME_MAX_LEN:
            raise_errno(errno.EINVAL)
        if flags & MFD_HUGETLB:
            raise_errno(errno.EINVAL)
        inode = Inode(self, "memfd", f"/memfd:{name}", SHMEM_DEV, next(self._ino))
        inode.seals = 0 if flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) else F_SEAL_SEAL
        return File(inode)

    def shmem_zero_setup(self, size):
        """The shmem file behind a MAP_SHARED|MAP_ANONYMOUS mapping (mm/shmem.c)."""
        inode = Inode(self, "shmem_anon", "/dev/zero", SHMEM_DEV, next(self._ino), size)
        return File(inode)

    # --- reverse mapping ----------------------------------------------------------------
    def mappings_of(self, inode):
        for mm in self.processes:
            for vma in mm.vma_tree:
                if vma.file is not None and vma.file.inode is inode:
                    yield mm, vma

    def has_shared_writable_mapping(self, inode):
        """mapping_writably_mapped(): i_mmap_writable counts every VM_SHARED|VM_MAYWRITE
        mapping, PROT_READ ones included (they could be made writable)."""
        return any(v.flags & VM_SHARED and v.flags & VM_MAYWRITE
                   for _, v in self.mappings_of(inode))

    def unmap_mapping_range(self, inode, first, last, even_cows):
        """mm/memory.c:unmap_mapping_range(): in every mapping of the file, zap the PTEs of
        file pages [first, last) (last None = to the end); private COW copies only with
        even_cows. Markers are never dropped."""
        for mm, vma in list(self.mappings_of(inode)):
            lo = max(first, vma.pgoff)
            hi = vma.pgoff + vma.pages if last is None else min(last, vma.pgoff + vma.pages)
            if lo >= hi:
                continue
            start = vma.start + ((lo - vma.pgoff) << PAGE_SHIFT)
            end = vma.start + ((hi - vma.pgoff) << PAGE_SHIFT)
            mm.zap_file_pages(vma, start, end, even_cows)
