"""System and MM: the machine and its processes' mm_structs (kernel/fork.c, fs/exec.c).

`System` is the public class of ../shared/API.md: the machine of fs/machine.py (frames,
files, the reverse map) plus what makes processes on it, spawn() and execve(), and open()
of a path (fs/open.c). `MM` is one process's address space: the mm_struct of
ptengine/mm/ with its syscall entries (mm/api.pyx), its lifetime (fork, exit) and its
/proc views (proc/view.py). The two construct each other (System.spawn() builds an MM;
`MM()` builds a System for itself), so they share this module and neither imports the
other late.
"""
import errno
import os
import warnings

from . import core as _core
from .args import as_int
from .constants import VM_NOHUGEPAGE
from .errors import raise_errno
from .exec import binfmt_elf
from .exec.layout import setup_exec_layout
from .fs.files import File
from .fs.machine import Machine
from .mm.api import MMCalls
from .mm.batch import execute
from .mm.fork import dup_mmap, exit_mmap
from .mm.mm_struct import mm_struct
from .proc import view

# Where brk starts in a non-randomised process whose PIE binary sits at 0x555555554000.
DEFAULT_START_BRK = 0x555555559000


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


class MM(MMCalls):
    """One address space. `MM()` is shorthand for a fresh System with one process."""

    def __init__(self, system=None, *, mmap_base=None, max_map_count=None,
                 start_brk=DEFAULT_START_BRK, mmap_min_addr=None, exec_layout=False):
        if system is None:
            system = System(**({} if max_map_count is None else {"max_map_count": max_map_count}),
                            **({} if mmap_base is None else {"mmap_base": mmap_base}))
        mm_struct.__init__(self, system,
                              as_int(system.max_map_count if max_map_count is None
                                     else max_map_count))
        self.mmap_base = as_int(system.mmap_base if mmap_base is None else mmap_base)
        self.mmap_min_addr = as_int(system.profile.mmap_min_addr if mmap_min_addr is None
                                    else mmap_min_addr)
        self.start_brk = self.brk_end = as_int(start_brk)
        self.def_flags = 0           # VM_LOCKED|VM_LOCKONFAULT after mlockall(MCL_FUTURE)
        self._slot = system._attach(self)
        if exec_layout:
            setup_exec_layout(self)

    # --- lifetime: a process lives until exit(), as subprocess.Popen's until wait() -------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.exit()

    def __del__(self, _warn=warnings.warn):
        # The System holds its processes weakly: dropping the last reference to one that
        # never exited frees its address space here, which the kernel would have kept
        # until exit(). Say so, as Popen does for a child still running, unless it is the
        # last live process of its System (the whole machine goes; nothing outlives it).
        if self.dead:                           # exited, or __init__ failed
            return
        if any(mm is not self for mm in self.system.processes):
            _warn(f"process {self!r} dropped without exit(); its address space is freed",
                  ResourceWarning, source=self)

    # mirrors kernel/fork.c:dup_mmap(): the child is of this process's class
    def fork(self):
        if self.dead:
            raise_errno(errno.ESRCH)    # as every call on an exited process
        child = type(self)(self.system, mmap_base=self.mmap_base, max_map_count=self.max_map_count,
                           start_brk=self.start_brk, mmap_min_addr=self.mmap_min_addr)
        child.brk_end = self.brk_end
        child.start_stack = self.start_stack
        child.gate_vma = self.gate_vma
        child.def_flags = self.def_flags & VM_NOHUGEPAGE
        skipped = dup_mmap(self, child)
        if not skipped:
            # The child's layout is the parent's, and so is what the free-area cache knows.
            child.vma_tree.inherit_search_state(self.vma_tree)
        return child

    # mirrors mm/mmap.c:exit_mmap()
    def exit(self):
        if not self.dead:
            exit_mmap(self)
            self.system._detach(self._slot)

    def batch(self, calls, *, files=None, names=None, stop=None, counter=None):
        """Run many calls in one C loop (API.md "Batched calls"): -> (results, ns)."""
        return execute(self, calls, files, names, stop, counter)

    # --- introspection basics -----------------------------------------------------------
    def vmas(self):
        return list(self.vma_tree)

    def find_vma(self, addr):
        """The VMA containing addr, or None."""
        return self.vma_tree.lookup(as_int(addr, "addr"))

    # --- page-table side helpers used by files and faults --------------------------------
    def zap_file_pages(self, vma, start, end, even_cows):
        """The per-mapping half of unmap_mapping_range(): drop PTEs mapping file pages (and,
        with even_cows, private anonymous copies and poison); guard markers always stay."""
        flags = _core.ZAP_KEEP_UFFD_WP | (0 if even_cows else _core.ZAP_KEEP_COWS)
        self.pt.zap(start, end, flags)

    def total_vm_pages(self):
        return sum(v.pages for v in self.vma_tree)

    # --- /proc views (proc/view.py) --------------------------------------------------------
    def __repr__(self):
        return view.describe(self)

    def maps(self):
        return view.maps(self)

    def maps_line_count(self):
        return view.maps_line_count(self)

    def smaps(self):
        return view.smaps(self)

    def status(self):
        return view.status(self)

    def pagemap(self, addr, size):
        return view.pagemap(self, addr, size)

    def pagemap_scan(self, start, end, **masks):
        return view.pagemap_scan(self, start, end, **masks)

    def check(self):
        view.check(self)

