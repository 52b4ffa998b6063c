"""One replay of an strace log on the simulator, checking every result (mirrors no kernel file).

The traced program is the log's first process. Its address space (mm) is followed from
its execve: threads (clone with CLONE_VM|CLONE_THREAD) and CLONE_VM children (vfork,
posix_spawn) share it until such a child execs; forked children have their own mm and
are not followed. A successful execve of the program itself starts a new image: a fresh
mm from `System.execve()` of the named file (or, for the first image, from `start_maps`).

Every address-space call of the mm is run on the simulator and its result compared with
the log's. What the simulator cannot run is counted by reason and stood in for where the
log says a mapping appeared (a shared anonymous mapping of the same size, protection and
place, so that later calls still find memory there).

Page faults are not in the log, yet a write fault gives a private VMA its anon_vma,
which decides later merges, and builds page tables. With `faults="first-write"` (the
default) replay assumes the program writes to private writable memory as soon as it has
it: after each call that creates private writable memory, one page of it is written (the
top page of a stack, else the lowest page). `faults="none"` writes nothing. README
("What replay cannot see") says how often the choice matters on real programs.
"""
import collections
import dataclasses
import errno as _errno
import os
import re
import resource

from .. import constants as C
from ..errors import ERRNO_NAMES
from ..system import System
from ..workloads.metrics import CountingMM
from . import maps as maps_mod
from . import strace as S
from .seqmaps import SeqMaps

P = C.PAGE_SIZE
_MAPS_PATH = re.compile(r"/proc/(\d+)(?:/task/\d+)?/maps$")
# Calls that never change the VMAs and need no replay (their effect is on pages or task
# state only); they are counted, not checked.
NO_VMA_EFFECT = frozenset({"get_mempolicy", "set_mempolicy", "pkey_alloc", "pkey_free",
                           "move_pages", "migrate_pages", "membarrier", "process_mrelease",
                           "cachestat", "set_mempolicy_home_node"})
# Address-space calls the simulator has no model of.
UNSUPPORTED = {"mbind": "memory policy of a range (splits VMAs)",
               "remap_file_pages": "remap_file_pages emulation",
               "shmat": "SysV shared memory", "shmdt": "SysV shared memory",
               "io_setup": "the aio ring mapping", "io_destroy": "the aio ring mapping",
               "map_shadow_stack": "shadow stacks", "pkey_mprotect": "protection keys"}
_MSEAL = ("mseal", "syscall_0x1ce")
PROCESS_CALLS = frozenset({"clone", "clone3", "fork", "vfork", "execve", "execveat",
                           "exit", "exit_group"})


class NotReplayable(Exception):
    """A call the simulator cannot run: args[0] says why."""


class NotAddressSpace(Exception):
    """A traced call that does nothing to the address space (prctl other than
    PR_SET_VMA)."""


@dataclasses.dataclass
class Mismatch:
    line: int
    call: str
    expected: object
    got: object

    def as_dict(self):
        return dataclasses.asdict(self)

    def describe(self):
        return f"line {self.line}: {self.call}: log {self.expected}, replay {self.got}"


@dataclasses.dataclass
class Result:
    calls: int = 0                       # address-space calls of the followed mm
    replayed: int = 0
    not_replayed: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    no_vma_effect: int = 0
    other_processes: int = 0             # calls of processes with their own mm
    mismatches: list = dataclasses.field(default_factory=list)
    reordered: list = dataclasses.field(default_factory=list)   # (line, moved before line)
    images: list = dataclasses.field(default_factory=list)      # (line, path) of each exec
    vma_counts: list = dataclasses.field(default_factory=list)  # map_count after each call
    peak_map_count: int = 0
    maps_reads: int = 0                  # read()s of the mm's /proc maps checked
    maps_dumps: list = dataclasses.field(default_factory=list)  # MapsDump per open()
    mm: object = None                    # the final simulated mm
    counter: object = None               # SyscallCounter of the replayed calls
    faults: str = "first-write"
    rewrites: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def not_replayed_total(self):
        return sum(self.not_replayed.values())

    @property
    def final(self):
        st = self.mm.status() if self.mm is not None else {"map_count": 0, "VmPTE": 0}
        return {"map_count": st["map_count"], "VmPTE": st["VmPTE"]}


@dataclasses.dataclass
class MapsDump:
    """The /proc maps text the program read through one open(), and what replay gave."""
    line: int
    simulated: list = dataclasses.field(default_factory=list)   # one str per read()
    logged: list = dataclasses.field(default_factory=list)
    truncated: bool = False          # strace cut some read's text short (-s)

    @property
    def logged_text(self):
        return "".join(self.logged)

    @property
    def simulated_text(self):
        return "".join(self.simulated)


def _errno_text(ret):
    if isinstance(ret, int) and -4096 < ret < 0:
        return f"-1 {ERRNO_NAMES.get(-ret, -ret)}"
    return ret if not isinstance(ret, int) or ret < 0x10000 else hex(ret)


class Replayer:
    """One run over a parsed log in a given order (a permutation of the calls' indices)."""

    CHECK_MAPS_READS = True          # a rewritten program reads other maps text
    def __init__(self, calls, *, start_maps=None, system_options=None,
                 faults="first-write", order=None):
        if faults not in ("first-write", "none"):
            raise ValueError(f"faults must be 'first-write' or 'none', not {faults!r}")
        self.calls = calls
        self.order = order if order is not None else range(len(calls))
        self.start_maps = start_maps
        self.system_options = dict(system_options or {})
        self.faults = faults
        self.writes = faults == "first-write"      # assume private writable memory written
        self.result = Result(faults=faults)
        self.root = calls[0].pid if calls else 0
        self._creators = _creators(calls)
        self.members = {}                # pid -> "thread" | "vm" (shares the mm)
        self.outsiders = set()           # pids known to have their own mm
        self.mm = None
        self.counted = None
        self.files = None
        self.system = None
        self.modes = {}                  # (fd, path) -> opened for writing
        self.memfds = {}                 # (fd, path) -> File of memfd_create()
        self.readers = {}                # (pid's mm, fd) -> SeqMaps
        self.mismatch_positions = []     # positions in `order` of the mismatching calls

    # --- membership -------------------------------------------------------------------
    def _member(self, call):
        """Whether the calling thread uses the followed mm now."""
        pid = call.pid
        kind = self.members.get(pid)
        if kind is not None:
            return True
        if pid in self.outsiders:
            return False
        creator = _creator(self._creators.get(pid), call.line)
        if creator is not None and creator.pid in self.members:
            flags = _clone_flags(creator)
            if flags & 0x100:                              # CLONE_VM
                self.members[pid] = "thread" if flags & 0x10000 else "vm"   # CLONE_THREAD
                return True
        self.outsiders.add(pid)
        return False

    # --- images -------------------------------------------------------------------------
    def _new_image(self, call):
        """The program exec'd: a new mm, from start_maps (first image) or System.execve."""
        first = self.mm is None
        self.system = System(**self.system_options)
        self.files = maps_mod.FileTable(self.system)
        path = S.string(call.args[0])[0] if call is not None else "(attached)"
        line = call.line if call is not None else 0
        if first and self.start_maps is not None:
            self._cover_files()
            mm = maps_mod.build_mm(self.start_maps, self.system, files=self.files,
                                   start_brk=self._first_brk(line))
        else:
            if not hasattr(self.system, "execve"):
                raise RuntimeError("this ptengine has no System.execve(): pass --start-maps")
            argv = [S.string(a)[0] for a in S.split_args(call.args[1][1:-1])] \
                if len(call.args) > 1 and call.args[1].startswith("[") else None
            limit = self._stack_rlimit(line)
            path, argv = _interpreter(path, argv or [path])
            mm = self.system.execve(path, argv, **_envp(call),
                                    **({} if limit is None else {"stack_rlimit": limit}))
        self.mm = mm
        self.counted = CountingMM(mm, self.counted.counter if self.counted else None)
        self.result.images.append((line, path))
        self.members = {self.root if call is None else call.pid: "thread"}
        self.readers.clear()

    def _cover_files(self):
        """Logs from another machine: every file the log maps exists, as long as the log
        maps it (its libraries need not be on this host)."""
        for c in self.calls:
            if c.name == "mmap" and "<" in c.argtext and c.ret is not None and c.ret >= 0 \
                    and len(c.args) == 6:
                _, path = S.fd(c.args[4])
                if path and path.startswith("/") and not path.endswith(" (deleted)"):
                    self.files.cover(path, S.value(c.args[5]) + S.value(c.args[1]))

    def _stack_rlimit(self, after):
        """RLIMIT_STACK as the program first read it after exec (glibc asks at start-up):
        with ASLR off it decides mmap_base. None if the log does not say."""
        for c in self.calls:
            if c.line > after and c.pid == self.root and c.ret == 0 and \
                    c.name in ("prlimit64", "getrlimit") and "RLIMIT_STACK" in c.argtext:
                m = _RLIM_CUR.search(c.argtext)
                if m:
                    return _rlim(m.group(1))
            if c.line > after and c.pid == self.root and c.name in ("execve", "execveat") \
                    and c.ret == 0:
                break
        return None

    def _first_brk(self, after):
        for c in self.calls:
            if c.line > after and c.name == "brk" and c.pid == self.root:
                return c.ret if S.value(c.args[0]) == 0 else None
        return None

    # --- the run ------------------------------------------------------------------------
    def run(self):
        r = self.result
        handlers = self.HANDLERS
        calls = self.calls
        if calls and calls[0].name not in ("execve", "execveat"):
            if self.start_maps is None:
                raise ValueError("the log does not start at the program's execve: pass "
                                 "the maps it started from (--start-maps)")
            self._new_image(None)
        counts = r.vma_counts
        mm_count = self.mm.vma_tree.__len__ if self.mm is not None else None
        for position, k in enumerate(self.order):
            call = calls[k]
            name = call.name
            if name in PROCESS_CALLS:
                self._process_call(call)
                mm_count = self.mm.vma_tree.__len__ if self.mm is not None else None
                continue
            if self.mm is None or (call.pid not in self.members and
                                   not self._member(call)):
                if name in UNSUPPORTED or (name in handlers and
                                           handlers[name] is not Replayer._bookkeeping):
                    r.other_processes += 1
                continue
            handler = handlers.get(name)
            if handler is None:
                if name in NO_VMA_EFFECT:
                    r.no_vma_effect += 1
                elif name in UNSUPPORTED or name.startswith("syscall_"):
                    self._not_replayed(call, UNSUPPORTED.get(name, "unknown system call"))
                    self._sample()
                continue
            if handler is Replayer._bookkeeping:
                handler(self, call)
                continue
            try:
                got = handler(self, call)
            except NotAddressSpace:
                continue
            except NotReplayable as e:
                self._not_replayed(call, e.args[0])
                self._sample()
                continue
            except OSError as e:
                got = -e.errno
            r.calls += 1
            r.replayed += 1
            if got is None:
                got = 0
            if got != call.ret:
                self._mismatch(position, call, call.ret, got)
            count = mm_count()
            counts.append(count)
            if count > r.peak_map_count:
                r.peak_map_count = count
        r.mm = self.mm
        r.counter = self.counted.counter if self.counted else None
        return r

    def _sample(self):
        """The VMA count after a call, for the plot and the peak."""
        count = self.mm.map_count
        self.result.vma_counts.append(count)
        if count > self.result.peak_map_count:
            self.result.peak_map_count = count

    def _mismatch(self, position, call, expected, got):
        self.mismatch_positions.append(position)
        self.result.mismatches.append(Mismatch(call.line, call.text, _errno_text(expected),
                                               _errno_text(got)))

    def _not_replayed(self, call, reason):
        self.result.calls += 1
        self.result.not_replayed[f"{call.name}: {reason}"] += 1
        # A mapping the log says appeared is stood in for, so later calls find memory.
        if call.name in ("mmap", "shmat") and call.ret is not None and 0 < call.ret < C.TASK_SIZE:
            length = S.value(call.args[1]) if call.name == "mmap" else P
            prot = S.flags(call.args[2]) if call.name == "mmap" else C.PROT_READ
            try:
                self.mm.mmap(call.ret, length, prot,
                             C.MAP_SHARED | C.MAP_ANONYMOUS | C.MAP_FIXED)
            except OSError:
                pass

    def _process_call(self, call):
        """A successful exec by the program (before it has an mm, or by one of its
        threads) starts a new image; by a CLONE_VM child, it leaves the mm."""
        if call.name not in ("execve", "execveat") or call.ret != 0:
            return
        if self.mm is None:
            if call.pid == self.root:
                self._new_image(call)
        elif self._member(call):
            if self.members[call.pid] == "thread":
                self._new_image(call)
                self.root = call.pid
            else:
                del self.members[call.pid]
                self.outsiders.add(call.pid)

    # --- handlers: each returns the simulated result (or raises OSError) ----------------
    def _mmap(self, call):
        a = call.args
        addr, length, prot, flags = S.value(a[0]), S.value(a[1]), S.flags(a[2]), S.flags(a[3])
        fdnum, path = S.fd(a[4])
        offset = S.value(a[5])
        file = None
        if not flags & C.MAP_ANONYMOUS and fdnum >= 0:
            file, flags = self._file(fdnum, path, flags, prot)
        ret = self.counted.mmap(addr, length, prot, flags, file, offset)
        if self.writes and prot & C.PROT_WRITE and not flags & C.MAP_SHARED:
            self._first_write(ret, ret + length, stack=flags & (C.MAP_STACK | C.MAP_GROWSDOWN))
        return ret

    def _file(self, fdnum, path, flags, prot):
        """The simulated file an mmap names by its descriptor (-y gives the path)."""
        if path is None:
            raise NotReplayable("descriptor without a path (record with -y)")
        if path == "/dev/zero":
            return None, flags | C.MAP_ANONYMOUS       # mmap of /dev/zero is anonymous
        memfd = self.memfds.get((fdnum, path))
        if memfd is not None:
            return memfd, flags
        if not path.startswith("/") or (path.startswith("/dev/") and
                                        not path.startswith("/dev/shm/")):
            raise NotReplayable("device or special file mapping")
        deleted = path.endswith(" (deleted)")
        real = path[:-len(" (deleted)")] if deleted else path
        writable = self.modes.get((fdnum, path))
        if writable is None:
            writable = bool(flags & C.MAP_TYPE == C.MAP_SHARED and prot & C.PROT_WRITE)
        return self.files.open(self.files.inode(real), writable, deleted), flags

    def _first_write(self, start, end, stack=False, top=None):
        """faults="first-write": the program writes one page of new private writable
        memory (the top of a stack, else the lowest page), if it may."""
        page = (end - P) if stack else start
        try:
            self.mm.touch(page, 1, write=True)
        except Exception:        # a Fault (no write access) or a page past EOF: no write
            pass

    def _munmap(self, call):
        return self.counted.munmap(S.value(call.args[0]), S.value(call.args[1]))

    def _mprotect(self, call):
        a = call.args
        addr, length, prot = S.value(a[0]), S.value(a[1]), S.flags(a[2])
        before = []
        if self.writes and prot & C.PROT_WRITE:
            before = [(v.start, v.end, v.flags) for v in self._vmas(addr, addr + length)]
        ret = self.counted.mprotect(addr, length, prot)
        for start, end, flags in before:
            if not flags & (C.VM_WRITE | C.VM_SHARED):
                lo, hi = max(start, addr & ~(P - 1)), min(end, addr + length)
                self._first_write(lo, hi, stack=flags & (C.VM_GROWSDOWN | C.VM_NOHUGEPAGE))
        return ret

    def _vmas(self, start, end):
        return [v for v in self.mm.vma_tree.overlapping(start, end)] if end > start else []

    def _madvise(self, call):
        a = call.args
        return self.counted.madvise(S.value(a[0]), S.value(a[1]), S.value(a[2]))

    def _process_madvise(self, call):
        a = call.args
        _, target = S.fd(a[0])
        if target and target.startswith("pid:") and int(target[4:]) not in self.members:
            raise NotReplayable("advice to another process")
        vec = S.iovecs(a[1])
        if vec is None:
            raise NotReplayable("iovec array abbreviated by strace (record with -s >= vlen)")
        return self.counted.process_madvise(vec[:S.value(a[2])], S.value(a[3]),
                                            S.value(a[4]) if len(a) > 4 else 0)

    def _mremap(self, call):
        a = call.args
        new = S.value(a[4]) if len(a) > 4 else 0
        return self.counted.mremap(S.value(a[0]), S.value(a[1]), S.value(a[2]),
                                   S.flags(a[3]), new)

    def _brk(self, call):
        addr = S.value(call.args[0])
        old = self.mm.brk_end
        ret = self.counted.brk(addr)
        if self.writes and ret > old:
            self._first_write(old & ~(P - 1) if old % P else old, ret)
        return ret

    def _mlock(self, call):
        a = call.args
        return self.counted.mlock(S.value(a[0]), S.value(a[1]),
                                  S.flags(a[2]) if len(a) > 2 else 0) or 0

    def _munlock(self, call):
        return self.counted.munlock(S.value(call.args[0]), S.value(call.args[1])) or 0

    def _mlockall(self, call):
        return self.counted.mlockall(S.flags(call.args[0])) or 0

    def _munlockall(self, call):
        return self.counted.munlockall() or 0

    def _mseal(self, call):
        a = call.args
        return self.counted.mseal(S.value(a[0]), S.value(a[1]), S.value(a[2])) or 0

    def _prctl(self, call):
        a = call.args
        if len(a) < 5 or a[0] not in ("PR_SET_VMA", "0x53564d41") or \
                a[1] not in ("PR_SET_VMA_ANON_NAME", "0"):
            raise NotAddressSpace
        name = None if a[4] == "NULL" else S.string(a[4])[0]
        return self.counted.set_anon_name(S.value(a[2]), S.value(a[3]), name) or 0

    def _range_mapped(self, call):
        """mincore()/msync(): they fail with ENOMEM where the range is not all mapped."""
        addr, length = S.value(call.args[0]), S.value(call.args[1])
        counter = self.counted.counter
        counter.by_name[call.name] += 1
        counter.by_lock["read"] += 1
        if addr & (P - 1):
            return -_errno.EINVAL
        end = addr + ((length + P - 1) & ~(P - 1))
        covered = addr
        for v in self._vmas(addr, end):
            if v.start > covered:
                break
            covered = v.end
        return 0 if covered >= end else -_errno.ENOMEM

    def _open(self, call):
        """openat/open: whether a descriptor was opened for writing; /proc maps readers."""
        if call.ret is None or call.ret < 0 or call.fd_path is None:
            return
        mode = call.args[2] if call.name == "openat" else call.args[1]
        writable = (int(mode, 0) & 3 != 0) if mode[:1].isdigit() else \
            ("O_RDWR" in mode or "O_WRONLY" in mode)
        path = S.unescape(call.fd_path)
        self.modes[(call.ret, path)] = writable
        self.memfds.pop((call.ret, path), None)
        m = _MAPS_PATH.match(path)
        if m and int(m.group(1)) in self.members:
            dump = MapsDump(call.line)
            self.result.maps_dumps.append(dump)
            self.readers[call.ret] = (SeqMaps(self.mm), dump)
        else:
            self.readers.pop(call.ret, None)

    def _memfd_create(self, call):
        if call.ret is None or call.ret < 0 or call.fd_path is None:
            return
        name = S.string(call.args[0])[0]
        memfd = self.system.memfd_create(name, S.flags(call.args[1]) & C.MFD_ALLOW_SEALING)
        self.memfds[(call.ret, S.unescape(call.fd_path))] = memfd

    def _read(self, call):
        """read() of the mm's /proc maps: the text must be what seq_file gives now."""
        fdnum, path = S.fd(call.args[0])
        reader = self.readers.get(fdnum)
        if reader is None or call.ret is None or call.ret < 0:
            return
        reader, dump = reader
        self.result.calls += 1
        self.result.replayed += 1
        self.result.maps_reads += 1
        logged, truncated = S.string(call.args[1])
        got = reader.read(S.value(call.args[2]))
        dump.simulated.append(got)
        dump.logged.append(logged)
        dump.truncated |= truncated
        ok = len(got.encode()) == call.ret and (got.startswith(logged) if truncated
                                               else got == logged)
        if not ok and self.CHECK_MAPS_READS:
            self._mismatch(None, call, f"{call.ret} bytes", f"{len(got.encode())} bytes"
                           + ("" if len(got.encode()) != call.ret else ", other text"))

    def _unlink(self, call):
        """unlink/unlinkat: a mapped file's name goes; maps shows it "(deleted)"."""
        if call.ret != 0:
            return
        a = call.args
        name = S.string(a[0] if call.name == "unlink" else a[1])[0]
        if call.name == "unlinkat" and not name.startswith("/"):
            _, base = S.fd(a[0])
            if base is None:
                return
            name = f"{base.rstrip('/')}/{name}"
        self.files.unlink(name)

    def _pread(self, call):
        """pread64 of the mm's /proc maps: positioned reads are not modelled; said so."""
        if S.fd(call.args[0])[0] in self.readers:
            self._not_replayed(call, "pread of /proc maps (positioned reads not modelled)")

    def _lseek(self, call):
        fdnum, _ = S.fd(call.args[0])
        reader = self.readers.get(fdnum)
        if reader is not None and call.ret == 0:
            reader[0].lseek0()

    def _bookkeeping(self, call):
        """Calls that change no mm but tell replay about descriptors."""
        sub = self.BOOKKEEPING.get(call.name)
        if sub is not None:
            sub(self, call)

    BOOKKEEPING = {"openat": _open, "open": _open, "memfd_create": _memfd_create,
                   "read": _read, "pread64": _pread, "lseek": _lseek, "unlink": _unlink, "unlinkat": _unlink}
    HANDLERS = {"mmap": _mmap, "munmap": _munmap, "mprotect": _mprotect, "madvise": _madvise,
                "process_madvise": _process_madvise, "mremap": _mremap, "brk": _brk,
                "mlock": _mlock, "mlock2": _mlock, "munlock": _munlock,
                "mlockall": _mlockall, "munlockall": _munlockall, "prctl": _prctl,
                "mincore": _range_mapped, "msync": _range_mapped,
                **dict.fromkeys(_MSEAL, _mseal),
                **dict.fromkeys(BOOKKEEPING, _bookkeeping)}


def _interpreter(path, argv, depth=0):
    """fs/binfmt_script.c: a file that starts with "#!" is run by the interpreter its
    first line names, with that line's one optional argument, then the script's path, then
    argv[1:] (nested up to the kernel's 5 levels). Returns (path, argv) to load."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)                 # BINPRM_BUF_SIZE
    except OSError:
        return path, argv
    if not head.startswith(b"#!") or depth >= 4:
        return path, argv
    line = head[2:].split(b"\n", 1)[0].strip(b" \t")
    interp, _, arg = line.replace(b"\t", b" ").partition(b" ")
    arg = arg.strip(b" ")
    new = [os.fsdecode(interp)] + ([os.fsdecode(arg)] if arg else []) + [path] + argv[1:]
    return _interpreter(new[0], new, depth + 1)


_RLIM_CUR = re.compile(r"rlim_cur=([^,}]+)")


def _rlim(text):
    """strace's rendering of a limit: 8192*1024, RLIM64_INFINITY, or a number."""
    if "INFINITY" in text:
        return resource.RLIM_INFINITY
    value = 1
    for part in text.split("*"):
        value *= int(part.strip(), 0)
    return value


def _envp(call):
    """envp for System.execve() when strace printed it (record asks for -e verbose=execve
    ... or the log has it): {"envp": [...]}; else nothing."""
    if len(call.args) > 2 and call.args[2].startswith("["):
        return {"envp": [S.string(a)[0] for a in S.split_args(call.args[2][1:-1])]}
    return {}


# --- clone bookkeeping ---------------------------------------------------------------------
def _creators(calls):
    """child pid -> the clone-family calls that returned it (in log order)."""
    out = collections.defaultdict(list)
    for c in calls:
        if c.name in ("clone", "clone3", "fork", "vfork") and c.ret is not None and c.ret > 0:
            out[c.ret].append(c)
    return out


def _creator(candidates, line):
    """The clone that made a pid seen at `line`: the last one that started before it."""
    best = None
    for c in candidates or ():
        if c.entry <= line:
            best = c
    return best


_FLAGS = re.compile(r"flags=([^,}]+)")


def _clone_flags(call):
    """The clone flags of a clone-family call (fork: none; vfork: CLONE_VM|CLONE_VFORK)."""
    if call.name == "fork":
        return 0
    if call.name == "vfork":
        return 0x100 | 0x4000
    m = _FLAGS.search(call.argtext)
    if not m:
        return 0
    total = _CLONE_SEEN.get(m.group(1))
    if total is None:
        total = _CLONE_SEEN[m.group(1)] = _clone_flag_bits(m.group(1))
    return total


_CLONE_SEEN = {}


def _clone_flag_bits(text):
    total = 0
    for part in text.split("|"):
        part = part.strip()
        if part.startswith("CLONE_"):
            total |= _CLONE.get(part, 0)
        elif part[:1].isdigit():
            total |= int(part, 0)
    return total


_CLONE = {"CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400,
          "CLONE_SIGHAND": 0x800, "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000,
          "CLONE_VFORK": 0x4000, "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000}
