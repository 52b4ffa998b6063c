"""System: a machine that runs processes (kernel/fork.c and fs/exec.c make an mm_struct;
fs/open.c names files).

`System` is the public class of ../shared/API.md: the machine of fs/machine.py (frames,
files, the reverse map) plus what makes processes on it, spawn() and execve(), and open()
of a path. `MM()` builds a System for itself, and System.spawn() builds MMs: mm.py imports
this module, so spawn imports mm.py when it runs (a cycle listed in tests/test_layout.py,
gone when MM moves into this module: notes/engine-shape.md 2.1).
"""
import os

from .exec import binfmt_elf
from .fs.files import File
from .fs.machine import Machine


class System(Machine):
    """One machine: frames, the page cache and the processes (mm_structs) on it."""

    def __init__(self, **options):
        """Machine's options: profile, mmap_base, tmpdir, and profile fields to change."""
        super().__init__(**options)
        self._paths = {}            # path -> Inode of the files open() has named

    def __repr__(self):
        return (f"<System profile={self.profile.name} processes={len(self.processes)} "
                f"files={len(self._inodes)}>")

    def spawn(self, **options):
        """A new, empty process address space."""
        from .mm import MM      # here, not at the top: mm.py imports this module (see above)
        return MM(system=self, **options)

    def execve(self, path, argv=None, *, envp=None, stack_rlimit=8 << 20):
        """A new process whose address space is what Linux's execve(path, argv, envp)
        leaves with ASLR off (fs/binfmt_elf.c; see ptengine/exec/binfmt_elf.py). `envp`: a
        mapping or "NAME=value" strings, empty by default; with argv it sizes the stack.
        The process's mmap_base follows stack_rlimit as the kernel derives it, whatever
        this System's `mmap_base` (which is spawn()'s default)."""
        return binfmt_elf.execve(self, path, argv, envp, stack_rlimit)

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
                inode = self.new_inode("file", real, self.profile.root_dev)
            else:
                inode = self.new_inode("file", real, (os.major(st.st_dev), os.minor(st.st_dev)),
                                       st.st_ino, st.st_size)
            self._paths[real] = inode
        return File(inode)
