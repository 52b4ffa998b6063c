"""LiveProcess: the simulator's MM methods, carried out by a live server process
(mirrors no kernel file).

system.py's LiveMM is this class plus the `LiveMM()` shorthand (a LiveSystem of its own).

Each syscall-shaped method validates its Python arguments (TypeError for a non-integer),
refuses ranges that would touch the server's own mappings (LiveRangeError), then sends one
request; the kernel's answer comes back as the return value, an OSError with the kernel's
errno, or a Fault for a user-mode access the kernel answered with a signal.
"""
import errno
import operator
import os
import signal
import socket
import struct
import weakref

from ..constants import (DEFAULT_MMAP_BASE, MADV_COLD, MADV_PAGEOUT, MAP_ANONYMOUS,
                         MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_SHARED,
                         MREMAP_FIXED, PAGE_SIZE, PROT_NONE, STACK_GUARD_GAP, TASK_SIZE,
                         VM_EXEC)
from ..mm.batch import check as check_rows
from ..calls import (CALL_NAMES, FLAG_RESTART, CallOp, as_calls, call_at, object_table,
                     stop_rule)
from ..errors import fault_for, syscall_error
from ..callkind import call_kind, error_label
from ..iov import import_iovec
from . import procfs
from .files import LiveFile
from .lru import drain_lru_batches
from .server import U64, Access, Connection, LiveServerError, Op, ServerDied

STACK_LIMIT = 8 << 20      # the server runs with RLIMIT_STACK = 8 MiB
_MAX_IOVECS = 1 << 16      # iovecs sent; the kernel rejects more than UIO_MAXIOV anyway
_BATCH_BUF = 128 << 20    # bytes a batch request may use in the server (server.c: BUF_SIZE)
_MAX_READ = 1 << 30        # bytes per read() or write() (the wire carries u32 lengths)
_TOP_SPAN = 1 << 30        # the server's own top-down mappings lie this close to mmap_base
_SPECIAL = {"[vvar]", "[vvar_vclock]", "[vdso]"}
# Reclaim advice: sent after every CPU's LRU add batch is drained (see lru.py).
_RECLAIM_ADVICE = {MADV_COLD, MADV_PAGEOUT}
# Calls whose first two arguments are a range of the address space.
_RANGE_OPS = {Op.MUNMAP, Op.MPROTECT, Op.MADVISE, Op.MLOCK, Op.MUNLOCK, Op.MSEAL,
              Op.ANON_NAME, Op.POISON, Op.UFFD_REGISTER, Op.UFFD_UNREGISTER}
# The batch rows whose a[0], a[1] are such a range (an IOVEC row: one range of its call).
_RANGE_CALLS = [op.value for op in _RANGE_OPS if op.value in set(CallOp)] + [CallOp.IOVEC]


class LiveRangeError(ValueError):
    """The range would change one of the live server's own mappings (its program, stack,
    vdso...), which would crash it; the simulator has no such mappings."""


def _u64(name, value):
    """An integer argument as the C ABI passes it: negative values wrap like a C cast."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not -(1 << 63) <= v <= U64:
        raise OverflowError(f"{name} = {v:#x} does not fit in 64 bits")
    return v & U64


def _addr(name, value):
    return 0 if value is None else _u64(name, value)


def _page_up(n):
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


class LiveProcess:
    """One real address space: a server process that makes the calls for us, on a
    LiveMachine (files.py) that holds its files."""

    def __init__(self, system, *, timeout=None, _conn=None, _parent=None):
        self.system = system
        timeout = timeout if timeout is not None else (system.timeout or 30.0)
        self._conn = _conn if _conn is not None else Connection.start(timeout)
        try:
            hello = self._conn.call(Op.HELLO)
            self.pid, self.initial_brk = struct.unpack("<2Q", hello.payload)
            # Opened once: the server never execs again, so this stays its mm.
            self._pagemap = os.open(f"/proc/{self.pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self._conn.shutdown()
            raise
        self._finalizer = weakref.finalize(self, _release, self._conn, self._pagemap)
        if _parent is None:
            self._server_fds = {}          # LiveFile -> the server's descriptor for it
            self.reserved = self._own_ranges()
        else:
            self._server_fds = dict(_parent._server_fds)
            self.reserved = _parent.reserved
        heap = [s for s, e, label in self.reserved if label == "[heap]"]
        self._heap_start = heap[0] if heap else self.initial_brk
        system._register(self)

    def _own_ranges(self):
        """The server's own mappings, and the room its stack may grow into."""
        self._fence_top()
        ranges = []
        for v in procfs.parse(self.maps()):
            label = v.name or "anon"
            start = v.start
            if v.name == "[stack]":
                start = max(0, v.end - STACK_LIMIT - STACK_GUARD_GAP)
            ranges.append((start, v.end, label))
        return tuple(ranges)

    def _fence_top(self):
        """Keep the client's mappings from merging with the server's own.

        Top-down mmaps land below (or between) the server's topmost mappings. A static
        server has only [vvar] and [vdso] there, which merge with nothing; a dynamic one has
        ld.so's and libc's, some of them private anonymous. Fill the holes between those and
        put one page below them, as shared anonymous PROT_NONE mappings: those merge with
        nothing either."""
        top = sorted((v for v in procfs.parse(self.maps())
                      if DEFAULT_MMAP_BASE - _TOP_SPAN <= v.start < DEFAULT_MMAP_BASE),
                     key=lambda v: v.start)
        if not top or all(v.name in _SPECIAL for v in top):
            return
        fences = [(a.end, b.start) for a, b in zip(top, top[1:]) if a.end < b.start]
        fences.append((top[0].start - PAGE_SIZE, top[0].start))
        for start, end in fences:
            self._syscall(Op.MMAP, start, end - start, PROT_NONE,
                          MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE,
                          U64, 0)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def alive(self):
        return self._conn.alive

    def fork(self):
        """fork(2): a LiveMM for the child, a copy of this address space."""
        rep = self._conn.call(Op.FORK)
        if rep.ret == -1:
            raise syscall_error(rep.err)
        if not rep.fds:
            raise LiveServerError("the server forked but sent no socket for the child")
        sock = socket.socket(fileno=rep.fds[0])
        conn = Connection(sock, rep.ret, None, self._conn.timeout, self._conn.errlog)
        # The child is of this process's class (system.py's LiveMM), built here without
        # importing it: system.py imports this module.
        return type(self)(self.system, _conn=conn, _parent=self)

    def exit(self):
        """exit(2): the process ends and its address space is torn down before this returns
        (its socket closes only after exit_mm()). Afterwards every call fails with ESRCH."""
        if not self._conn.alive:
            return
        try:
            self._conn.call(Op.EXIT)
            self._conn.wait_closed()
        except (ServerDied, OSError):
            pass
        self.close()

    def close(self):
        """Make sure the server is gone (idempotent; also the finaliser's job)."""
        self._finalizer()
        self.system._unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def check(self):
        """The kernel keeps its own invariants; here only the server's liveness is checked."""
        self._conn.check_alive()

    def __repr__(self):
        state = "" if self._conn.alive else " exited"
        return f"<LiveMM pid={self.pid}{state}>"

    # --- plumbing -----------------------------------------------------------------------

    def _call(self, op, *args, payload=b"", fd=None):
        rep = self._conn.call(op, *args, payload=payload, fd=fd)
        if rep.ret == -1 and rep.err:
            raise syscall_error(rep.err)
        return rep

    def _syscall(self, op, *args, payload=b""):
        """One syscall in the server, after the checks that keep its own mappings safe."""
        self._check_op(op, args)
        return self._call(op, *args, payload=payload).ret

    def _check_op(self, op, a):
        """Refuse a call that would change the server's own mappings (LiveRangeError)."""
        if op == Op.MMAP:
            if a[3] & MAP_FIXED and not a[3] & MAP_FIXED_NOREPLACE:
                self._guard(a[0], a[1])
        elif op == Op.MREMAP:
            self._guard(a[0], max(a[1], PAGE_SIZE))
            if a[3] & MREMAP_FIXED:
                self._guard(a[4], a[2])
        elif op == Op.BRK:
            if self._heap_start <= a[0] < self.initial_brk:
                raise LiveRangeError(f"brk({a[0]:#x}) would free the live server's own heap "
                                     f"(its break starts at {self.initial_brk:#x})")
        elif op in _RANGE_OPS:
            self._guard(a[0], a[1])

    def _guard(self, addr, length, *, align_down=False):
        """Refuse a range that overlaps the server's own mappings. A range the kernel would
        reject by itself (unaligned, empty, wrapping) is left for the kernel to reject."""
        if align_down:
            length += addr & (PAGE_SIZE - 1)
            addr &= ~(PAGE_SIZE - 1)
        if not length or addr & (PAGE_SIZE - 1):
            return
        end = _page_up(addr + length)
        if end > U64:
            return
        for start, stop, label in self.reserved:
            if addr < stop and start < end:
                raise LiveRangeError(f"[{addr:#x}, {end:#x}) overlaps the live server's own "
                                     f"mapping {label} [{start:#x}, {stop:#x})")

    def _server_fd(self, f):
        if not isinstance(f, LiveFile):
            raise TypeError(f"fd must be a LiveFile or None, not {type(f).__name__}")
        fd = f.fileno()                    # EBADF once the file is closed
        sfd = self._server_fds.get(f)
        if sfd is None:
            sfd = self._call(Op.RECV_FD, fd=fd).ret
            self._server_fds[f] = sfd
        return sfd

    def _fault(self, rep):
        if rep.sig:
            raise fault_for(rep.sig, rep.code, rep.addr)

    # --- syscalls -----------------------------------------------------------------------

    def mmap(self, addr, length, prot, flags, fd=None, offset=0):
        """mmap(2); fd is a LiveFile or None. Returns the address."""
        addr, length = _addr("addr", addr), _u64("length", length)
        prot, flags, offset = _u64("prot", prot), _u64("flags", flags), _u64("offset", offset)
        sfd = U64 if fd is None else self._server_fd(fd)
        return self._syscall(Op.MMAP, addr, length, prot, flags, sfd, offset)

    def munmap(self, addr, length):
        addr, length = _u64("addr", addr), _u64("length", length)
        return self._syscall(Op.MUNMAP, addr, length)

    def mprotect(self, addr, length, prot):
        addr, length, prot = _u64("addr", addr), _u64("length", length), _u64("prot", prot)
        return self._syscall(Op.MPROTECT, addr, length, prot)

    def madvise(self, addr, length, advice):
        addr, length, advice = _u64("addr", addr), _u64("length", length), _u64("advice", advice)
        if advice in _RECLAIM_ADVICE:
            drain_lru_batches()
        return self._syscall(Op.MADVISE, addr, length, advice)

    def process_madvise(self, iovecs, advice, flags=0):
        """process_madvise(2) on this process's own mm; iovecs are (addr, length) pairs.
        Returns the bytes advised."""
        advice, flags = _u64("advice", advice), _u64("flags", flags)
        try:
            vec = [(_u64("iov_base", a), _u64("iov_len", n)) for a, n in iovecs]
        except (TypeError, ValueError) as e:
            if isinstance(e, TypeError) and "must be an integer" in str(e):
                raise
            raise TypeError("iovecs must be a sequence of (addr, length) pairs") from None
        try:
            reach = import_iovec(vec)       # the ranges the call can reach (ptengine/iov.py)
        except OSError:
            reach = []                      # refused before any advice: the kernel says so
        for a, n in reach:
            self._guard(a, n)
        payload = b"".join(struct.pack("<2Q", a, n) for a, n in vec[:_MAX_IOVECS])
        if advice in _RECLAIM_ADVICE:
            drain_lru_batches()
        return self._syscall(Op.PROCESS_MADVISE, len(vec), advice, flags, payload=payload)

    def mremap(self, old_address, old_size, new_size, flags=0, new_address=0):
        old, old_size = _u64("old_address", old_address), _u64("old_size", old_size)
        new_size, flags = _u64("new_size", new_size), _u64("flags", flags)
        new = _addr("new_address", new_address)
        return self._syscall(Op.MREMAP, old, old_size, new_size, flags, new)

    def mlock(self, addr, length, flags=0):
        """mlock(2), or mlock2(2) when flags are given (MLOCK_ONFAULT)."""
        addr, length, flags = _u64("addr", addr), _u64("length", length), _u64("flags", flags)
        return self._syscall(Op.MLOCK, addr, length, flags)

    def munlock(self, addr, length):
        addr, length = _u64("addr", addr), _u64("length", length)
        return self._syscall(Op.MUNLOCK, addr, length)

    def mlockall(self, flags):
        return self._syscall(Op.MLOCKALL, _u64("flags", flags))

    def munlockall(self):
        return self._syscall(Op.MUNLOCKALL)

    def mseal(self, addr, length, flags=0):
        addr, length, flags = _u64("addr", addr), _u64("length", length), _u64("flags", flags)
        return self._syscall(Op.MSEAL, addr, length, flags)

    def brk(self, addr):
        """brk(2) as the raw syscall: returns the new break, or the old one on failure."""
        return self._syscall(Op.BRK, _addr("addr", addr))

    def set_anon_name(self, addr, length, name):
        """prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name); None clears."""
        addr, length = _u64("addr", addr), _u64("length", length)
        if name is None:
            raw = b""
        elif isinstance(name, str):
            raw = name.encode()
        elif isinstance(name, (bytes, bytearray)):
            raw = bytes(name)
        else:
            raise TypeError(f"name must be a str, bytes or None, not {type(name).__name__}")
        return self._syscall(Op.ANON_NAME, addr, length, name is not None, payload=raw)

    def install_poison(self, addr, length):
        """Poison markers as UFFDIO_POISON installs them. The range is registered with the
        server's userfaultfd (missing mode) for the ioctl, then unregistered again."""
        addr, length = _u64("addr", addr), _u64("length", length)
        return self._syscall(Op.POISON, addr, length)

    def uffd_register(self, addr, length, mode=1):
        """UFFDIO_REGISTER on the server's userfaultfd (made on first use with
        UFFD_FEATURE_SIGBUS: a missing fault raises SIGBUS as no handler thread exists).
        Returns the ioctls mask the kernel reports."""
        addr, length, mode = _u64("addr", addr), _u64("length", length), _u64("mode", mode)
        return self._syscall(Op.UFFD_REGISTER, addr, length, mode)

    def uffd_unregister(self, addr, length):
        addr, length = _u64("addr", addr), _u64("length", length)
        return self._syscall(Op.UFFD_UNREGISTER, addr, length)

    # --- user-mode access ---------------------------------------------------------------

    def read(self, addr, size):
        """Read as a CPU would: pages fault in, a faulting page raises Fault."""
        addr, size = _u64("addr", addr), _u64("size", size)
        if size > _MAX_READ:
            raise ValueError(f"read of {size} bytes is larger than the live backend allows")
        rep = self._conn.call(Op.READ, addr, size)
        self._fault(rep)
        return rep.payload

    def write(self, addr, data):
        """Write as a CPU would, page by page in address order; a fault stops it."""
        addr = _u64("addr", addr)
        try:
            data = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
        if len(data) > _MAX_READ:
            raise ValueError(f"write of {len(data)} bytes is larger than the live backend allows")
        self._guard(addr, len(data), align_down=True)
        self._fault(self._conn.call(Op.WRITE, addr, payload=data))

    def touch(self, addr, size=1, *, write=False):
        """Fault in every page of [addr, addr + size) by one read (or one write access that
        leaves the data unchanged)."""
        addr, size = _u64("addr", addr), _u64("size", size)
        self._fault(self._conn.call(Op.TOUCH, addr, size, bool(write)))

    def access(self, addr, *, write=False, exec=False):
        """One access; None if it succeeds, else the signal the kernel delivers.

        A write access leaves the byte as it was (a locked OR of 0). An instruction fetch is
        made for real only where no executable VMA covers addr, so it cannot run anything:
        there it faults (SEGV_ACCERR on a non-executable VMA, the hardware's own answer).
        Where an executable VMA covers addr, the fetch is answered by a read access, which
        goes through the same fault path (guard, poison, file EOF) once the VMA allows it.
        """
        addr = _u64("addr", addr)
        if write and exec:
            raise ValueError("an access is a read, a write or an instruction fetch")
        kind = Access.RMW if write else Access.READ
        if exec:
            vma = self._vma_at(addr, self.maps())
            if vma is not None and not vma.flags & VM_EXEC:
                kind = Access.EXEC
        rep = self._conn.call(Op.ACCESS, addr, kind)
        return signal.Signals(rep.sig) if rep.sig else None

    # --- introspection ------------------------------------------------------------------

    def _proc(self, name):
        try:
            with open(f"/proc/{self.pid}/{name}") as f:
                return f.read()
        except (FileNotFoundError, ProcessLookupError):
            raise syscall_error(errno.ESRCH) from None

    def maps(self):
        return self._proc("maps")

    def smaps(self):
        return self._proc("smaps")

    def vmas(self, start=0, end=TASK_SIZE):
        """VMAs overlapping [start, end) (all of them by default, the server's own
        included), parsed from smaps."""
        return [v for v in procfs.parse(self.smaps(), self.system.file_for)
                if v.start < end and start < v.end]

    def user_vmas(self):
        """The VMAs that are not the server's own (see .reserved)."""
        return [v for v in self.vmas()
                if not any(v.start < e and s < v.end for s, e, _ in self.reserved)]

    def find_vma(self, addr):
        """The VMA containing addr, or None (as the simulator's find_vma)."""
        return self._vma_at(_u64("addr", addr), self.smaps())

    def _vma_at(self, addr, text):
        """The VMA containing addr in maps or smaps text (from maps, flags hold only the
        read/write/exec bits)."""
        return next((v for v in procfs.parse(text, self.system.file_for)
                     if v.start <= addr < v.end), None)

    @property
    def map_count(self):
        """mm->map_count: the lines of maps, less the gate area (which is not a VMA)."""
        return sum(1 for line in self.maps().splitlines()
                   if line and not line.endswith(procfs.GATE))

    def status(self):
        """Numeric fields of /proc/PID/status (VmSize, VmLck, VmRSS, RssAnon, RssFile,
        RssShmem, VmPTE... in kB), plus map_count."""
        out = procfs.status(self._proc("status"))
        out["map_count"] = self.map_count
        return out

    def pagemap(self, addr, size):
        """/proc/PID/pagemap entries (numpy uint64), one per page of [addr, addr + size),
        as a privileged reader sees them."""
        addr, size = _u64("addr", addr), _u64("size", size)
        return procfs.pagemap(self._pagemap, addr, size)

    def pagemap_scan(self, start, end, *, category_mask=0, category_anyof_mask=0,
                     return_mask=0, category_inverted=0, max_pages=0, vec_len=None, flags=0):
        """The PAGEMAP_SCAN ioctl: a list of (start, end, categories), with .walk_end.
        vec_len: one ioctl with a vector that long; None: as long as the result needs."""
        if vec_len is not None:
            vec_len = _u64("vec_len", vec_len)
            if vec_len > 1 << 24:
                raise ValueError(f"vec_len {vec_len} is larger than the live backend allows")
        return procfs.pagemap_scan(
            self._pagemap, _u64("start", start), _u64("end", end), flags=_u64("flags", flags),
            category_inverted=_u64("category_inverted", category_inverted),
            category_mask=_u64("category_mask", category_mask),
            category_anyof_mask=_u64("category_anyof_mask", category_anyof_mask),
            return_mask=_u64("return_mask", return_mask), max_pages=_u64("max_pages", max_pages),
            vec_len=vec_len)

    # --- batches -------------------------------------------------------------------------

    def batch(self, calls, *, files=None, names=None, stop=None, counter=None):
        """Run a batch of calls in the server, in one loop timed there (API.md "Batched
        calls"): the rows of a CALL_DTYPE array (or tuples, through ptengine.calls()),
        with the rules of the simulator's executor. files: LiveFile objects; names: the
        names set_anon_name rows refer to. -> (int64 results, nanoseconds in the server)."""
        import numpy as np
        rows = as_calls(calls)
        files = object_table(files, "files", (LiveFile,))
        names = object_table(names, "names", (str, bytes, bytearray))
        mode, expected = stop_rule(stop, len(rows))
        check_rows(rows, len(files), len(names))
        self._check_rows(rows)
        blob = b"".join((n.encode() if isinstance(n, str) else bytes(n)) + b"\0" for n in names)
        fds = np.array([self._server_fd(f) for f in files], dtype="<u8")
        payload = b"".join((rows.tobytes(), expected.tobytes() if expected is not None else b"",
                            fds.tobytes(), blob))
        restarts = int(np.count_nonzero((rows["op"] == CallOp.PROCESS_MADVISE)
                                        & (rows["flags"] & FLAG_RESTART != 0)))
        if _page_up(len(payload)) + 8 * (len(rows) + 1 + len(names)) + 24 * restarts \
                > _BATCH_BUF:
            raise ValueError(f"a batch of {len(rows)} rows is more than the live server "
                             f"takes at once ({_BATCH_BUF >> 20} MiB): split it")
        if np.isin(_advice_of(rows), list(_RECLAIM_ADVICE)).any():
            drain_lru_batches()
        rep = self._call(Op.BATCH, len(rows), mode, len(files), len(names), len(blob),
                         payload=payload)
        if rep.ret == -1:
            raise syscall_error(rep.err)
        results = np.frombuffer(rep.payload, dtype="<i8", count=len(rows)).astype(np.int64)
        reissued = np.frombuffer(rep.payload, dtype="<u8", offset=8 * (len(rows) + 1)
                                 ).reshape(-1, 3)
        if counter is not None:
            self._count(counter, rows, results, reissued, files, names)
        return results, rep.ret

    def _check_rows(self, rows):
        """_check_op() for every row at once, on the arguments known before the batch runs
        (those that REL bits change come from the server's own results: mappings it made).
        A range _guard() leaves to the kernel (empty, unaligned, wrapping) is left here."""
        import numpy as np
        op, a = rows["op"], rows["a"]
        known = [(rows["flags"] >> k) & 1 == 0 for k in range(6)]
        fixed = (a[:, 3] & MAP_FIXED != 0) & (a[:, 3] & MAP_FIXED_NOREPLACE == 0)
        remap = op == CallOp.MREMAP
        spans = [  # (rows, argument of the address, of the length)
            (np.isin(op, _RANGE_CALLS) | ((op == CallOp.MMAP) & fixed) | remap, 0, 1),
            (remap & (a[:, 3] & MREMAP_FIXED != 0), 4, 2)]
        for which, at, size in spans:
            rows_at = np.flatnonzero(which & known[at] & known[size])
            addr, length = a[rows_at, at], a[rows_at, size]
            length = np.where(remap[rows_at] & (at == 0), np.maximum(length, PAGE_SIZE), length)
            end = addr + ((length + np.uint64(PAGE_SIZE - 1)) & np.uint64(U64 ^ (PAGE_SIZE - 1)))
            checked = (length != 0) & (addr % PAGE_SIZE == 0) & (end > addr) \
                & (length <= np.uint64(U64 - PAGE_SIZE))
            for start, stop, _ in self.reserved:
                hit = np.flatnonzero(checked & (addr < stop) & (end > start))
                if len(hit):
                    self._guard(int(addr[hit[0]]), int(length[hit[0]]))   # raises
        for i in np.flatnonzero((op == CallOp.BRK) & known[0]):
            self._check_op(Op.BRK, [int(a[i, 0])])

    def _count(self, counter, rows, results, reissued, files, names):
        """What the simulator's executor counts in C, from the rows and their results:
        each call made (a cancelled row made none) under metrics' label and lock kind."""
        import numpy as np
        op = rows["op"].astype(np.int64)
        made = (results != -errno.ECANCELED) & (op != CallOp.IOVEC) & (op != CallOp.TOUCH)
        n_calls = made.astype(np.int64)
        iovecs = np.where(op == CallOp.PROCESS_MADVISE, rows["a"][:, 0], 0) * made
        np.add.at(n_calls, reissued[:, 0].astype(np.int64), reissued[:, 1].astype(np.int64))
        counter.iovecs += int(iovecs.sum() + reissued[:, 2].sum())
        advice = _advice_of(rows)
        keys = np.stack([op, advice])[:, n_calls > 0]
        for (o, adv), n in zip(*_grouped(keys, n_calls[n_calls > 0])):
            name = CALL_NAMES[CallOp(o)]
            label, mode = call_kind(name, adv)
            counter.by_name[label] += n
            counter.by_lock[mode] += n
        failed = made & (results < 0)
        for (o, err), n in zip(*_grouped(np.stack([op, -results])[:, failed],
                                          np.ones(int(failed.sum()), dtype=np.int64))):
            counter.errors[error_label(CALL_NAMES[CallOp(o)], err)] += n
        if failed.any():
            counter.failed_map_count = self.map_count
        if made.any():
            counter.last_call = call_at(rows, results, int(np.flatnonzero(made)[-1]),
                                        files, names)


def _advice_of(rows):
    """The advice of each madvise and process_madvise row as the kernel reads it (an int:
    the low 32 bits, signed); 0 for the other rows."""
    import numpy as np
    op, a = rows["op"], rows["a"]
    raw = np.where(op == CallOp.MADVISE, a[:, 2], np.where(op == CallOp.PROCESS_MADVISE,
                                                           a[:, 1], 0))
    return (raw & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


def _grouped(keys, weights):
    """The distinct columns of keys (2 x n) and the sum of weights over each."""
    import numpy as np
    if not keys.shape[1]:
        return [], []
    distinct, inverse = np.unique(keys, axis=1, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=weights, minlength=distinct.shape[1])
    return [tuple(int(v) for v in col) for col in distinct.T], [int(s) for s in sums]


def _release(conn, pagemap_fd):
    os.close(pagemap_fd)
    conn.shutdown()
