"""The machine: frames, profile, files, reverse map (mm/memory.c, mm/rmap.c, mm/memfd.c).

The reverse map is mm/memory.c:unmap_mapping_range() over rmap's walk of a file's
mappings; memfd_create() is mm/memfd.c; shmem_zero_setup() mm/shmem.c.

A `Machine` owns what every process of one machine shares: the frame allocator of the
compiled core, the host profile, the inodes of its files (with their page cache) and the
list of live address spaces, which the reverse map walks when a file is truncated or
punched. Making processes is system.py's `System`, which is a Machine.
"""
import errno
import itertools
import operator
import weakref

from .. import core as _core
from .. import profile as host_profiles
from ..constants import (DEFAULT_MMAP_BASE, F_SEAL_SEAL, MFD_ALLOW_SEALING, MFD_CLOEXEC,
                         MFD_EXEC, MFD_HUGETLB, MFD_NOEXEC_SEAL, PAGE_SHIFT, VM_MAYWRITE,
                         VM_SHARED, VM_SOFTDIRTY)
from ..errors import raise_errno
from .files import SHMEM_DEV, File, Inode

MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
MFD_NAME_MAX_LEN = 249


class Machine:
    """One machine: frames, the page cache and the processes (mm_structs) on it."""

    def __init__(self, *, profile=None, mmap_base=DEFAULT_MMAP_BASE, tmpdir="/tmp",
                 **settings):
        self.frames = _core.Frames()
        # The machine this stands for (profile.py: RAM, sysctls, build options); keyword
        # settings (max_map_count=1000, anon_vma_name=True...) change single fields.
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
        # The inodes in use, held weakly as the kernel's inode cache drops an inode no
        # open file or mapping refers to.
        self._inodes = weakref.WeakSet()

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

    def new_inode(self, kind, path, dev, ino=None, size=0, seals=0):
        """A new inode of this machine (a fresh inode number unless `ino` is given)."""
        inode = Inode(self, kind, path, dev, next(self._ino) if ino is None else ino, size)
        inode.seals = seals
        self._inodes.add(inode)
        return inode

    def create_file(self, name, size=0):
        """A regular file on the root file system, opened read-write."""
        if not isinstance(name, str):
            raise TypeError("name must be str")
        path = name if name.startswith("/") else f"{self.tmpdir}/{name}"
        f = File(self.new_inode("file", path, self.profile.root_dev))
        if size:
            f.truncate(size)
        return f

    def memfd_create(self, name, flags=0):
        """memfd_create(2): a shmem file, with seals if MFD_ALLOW_SEALING."""
        if not isinstance(name, str):
            raise TypeError("name must be str")
        flags = operator.index(flags)
        if flags & ~MFD_ALL_FLAGS or len(name.encode()) > MFD_NAME_MAX_LEN:
            raise_errno(errno.EINVAL)
        if flags & MFD_HUGETLB:
            raise_errno(errno.EINVAL)
        # a memfd without MFD_ALLOW_SEALING is sealed shut
        seals = 0 if flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) else F_SEAL_SEAL
        return File(self.new_inode("memfd", f"/memfd:{name}", SHMEM_DEV, seals=seals))

    def shmem_zero_setup(self, size):
        """The shmem file behind a MAP_SHARED|MAP_ANONYMOUS mapping (mm/shmem.c)."""
        return File(self.new_inode("shmem_anon", "/dev/zero", SHMEM_DEV, size=size,
                                   seals=F_SEAL_SEAL))

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
