"""LiveMachine and LiveFile: real files and memfds, in the shape of the simulator's
(mirrors no kernel file).

A LiveMachine (system.py's LiveSystem, which adds spawn()) owns a temporary directory for
its regular files and the processes made on it. Files are opened in the client; a process
hands a file's descriptor to its server (SCM_RIGHTS) the first time the file is mapped
there.
"""
import ctypes
import ctypes.util
import fcntl
import os
import tempfile
import weakref

from ..constants import DEFAULT_MMAP_BASE, F_ADD_SEALS, F_GET_SEALS
from ..constants import MFD_CLOEXEC
from ..errors import syscall_error

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def host_max_map_count():
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def check_host_options(options):
    """Options the simulator takes but the host fixes: accepted only at the host's value."""
    host = {"max_map_count": host_max_map_count(), "mmap_base": DEFAULT_MMAP_BASE}
    for key, value in options.items():
        if key not in host:
            raise TypeError(f"unknown option {key!r}")
        if value != host[key]:
            raise ValueError(f"the host kernel fixes {key} = {host[key]:#x}; "
                             f"the live backend cannot use {value!r}")


def _int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


class LiveFile:
    """A regular file or memfd, open in this process. The simulator's file API."""

    def __init__(self, system, fd, path, name, memfd, readonly=False):
        self.system = system
        self.name = name
        self.path = path            # a path that reopens the same inode
        self.memfd = memfd
        self.readonly = readonly
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)
        st = os.fstat(fd)
        self.key = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)

    def fileno(self):
        if not self._finalizer.alive:
            raise syscall_error(9)     # EBADF
        return self._fd

    def close(self):
        self._finalizer()

    @property
    def closed(self):
        return not self._finalizer.alive

    @property
    def size(self):
        return os.fstat(self.fileno()).st_size

    def pread(self, offset, n):
        _int("offset", offset), _int("n", n)
        out = []
        while n > 0:
            data = os.pread(self.fileno(), n, offset)
            if not data:
                break
            out.append(data)
            n -= len(data)
            offset += len(data)
        return b"".join(out)

    def pwrite(self, offset, data):
        _int("offset", offset)
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.pwrite(self.fileno(), view[done:], offset + done)
        return done

    def truncate(self, size):
        os.ftruncate(self.fileno(), _int("size", size))

    def punch_hole(self, offset, length):
        """fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)."""
        if _libc.fallocate(self.fileno(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           _int("offset", offset), _int("length", length)):
            raise syscall_error(ctypes.get_errno())

    def reopen(self, readonly=True):
        """The same file opened again (O_RDONLY or O_RDWR): a new open file description."""
        fd = os.open(f"/proc/self/fd/{self.fileno()}",
                     (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
        return self.system._adopt(LiveFile(self.system, fd, self.path, self.name, self.memfd,
                                           readonly))

    def add_seals(self, seals):
        try:
            fcntl.fcntl(self.fileno(), F_ADD_SEALS, _int("seals", seals))
        except OSError as e:
            raise syscall_error(e.errno) from None

    @property
    def seals(self):
        try:
            return fcntl.fcntl(self.fileno(), F_GET_SEALS)
        except OSError as e:
            raise syscall_error(e.errno) from None

    def __repr__(self):
        kind = "memfd" if self.memfd else "file"
        return f"<LiveFile {kind} {self.name!r}{' ro' if self.readonly else ''}>"


class LiveMachine:
    """Real files and processes on the host kernel, in the shape of the simulator's Machine."""

    def __init__(self, *, timeout=None, **options):
        check_host_options(options)
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="ptengine-live-")
        self._files = {}                  # (major, minor, inode) -> first LiveFile for it
        self._opened = weakref.WeakSet()  # every LiveFile, closed with the system
        self._mms = weakref.WeakSet()
        self._implicit = False            # made by LiveMM() for itself (system.py)

    def create_file(self, name, size=0):
        """A regular file in this system's temporary directory, open read-write."""
        if not isinstance(name, str):
            raise TypeError("name must be a str")
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"bad file name {name!r}")
        path = os.path.join(self._tmp.name, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        f = self._adopt(LiveFile(self, fd, path, name, memfd=False))
        f.truncate(size)
        return f

    def memfd_create(self, name, flags=0):
        """memfd_create(2); the client's descriptor is always close-on-exec."""
        if not isinstance(name, str):
            raise TypeError("name must be a str")
        try:
            fd = os.memfd_create(name, _int("flags", flags) | MFD_CLOEXEC)
        except OSError as e:
            raise syscall_error(e.errno) from None
        return self._adopt(LiveFile(self, fd, f"/proc/self/fd/{fd}", name, memfd=True))

    def _adopt(self, f):
        self._files.setdefault(f.key, f)
        self._opened.add(f)
        return f

    def file_for(self, dev, inode, path=None):
        """The LiveFile of this system that is the inode a VMA maps, if any."""
        return self._files.get((*dev, inode))

    @property
    def processes(self):
        """The live processes (System.processes): those not exited or closed."""
        return [mm for mm in self._mms if mm.alive]

    def _register(self, mm):
        self._mms.add(mm)

    def _unregister(self, mm):
        self._mms.discard(mm)
        if self._implicit and not self._mms:
            self.close()

    def close(self):
        """End every process of this system and remove its files."""
        for mm in list(self._mms):
            mm.close()
        for f in list(self._opened):
            f.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
