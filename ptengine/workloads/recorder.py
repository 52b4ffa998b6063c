"""A model's calls recorded as batch rows, submitted together (mirrors no kernel file).

notes/engine-shape.md 3.5 has the design.

`Recorder` is what a model sees as its MM on the runner's batched path (`run(...,
batched=True)`): each syscall method appends one row (calls.CALL_DTYPE's seven u64 words, a
list of ints until they are viewed as rows at submission) and returns at once; the rows go
to the process's `batch()` with stop="error" and the run's counter when something needs
their outcome (and every 4,096 rows). mmap, mremap, brk and process_madvise return a `Ref` to
their row: `Ref + int` and `Ref - int` stay Refs (a REL bit and the offset in the using
row), two Refs of one row compare and subtract without running anything, and anything else
(int(), &, comparing with an int, formatting) submits the pending rows first and uses the
real value. Reading state (map_count, status(), maps(), any other attribute) submits first;
fork() submits and then forks, the child getting its own Recorder.

Failures: a row that fails stops the run where the one-by-one run would have stopped
(`Stopped`, an OSError carrying the Limit's fields). Calls whose error the model ignores go
through `tolerant` (rows with FLAG_TOLERATE: counted, not stopping). Calls whose error the
model handles in Python go through `handled`: they are recorded too, on the bet that they
succeed; if one fails the batched run cannot be the one-by-one run any more, `Diverged` is
raised and the runner runs the model again one call at a time (correctness first: that is
only glibc 2.42's fallback under mlockall(MCL_ONFAULT)).
"""
import array
import bisect
import functools

from ..calls import FLAG_RESTART, FLAG_TOLERATE, NO_FILE, CallOp, call_at, call_dtype
from .. import constants as C
from ..errors import fault_for
from .metrics import CallRecord, CountingMM

MASK = 2**64 - 1
PMD_SIZE = 2 << 20
# Rows submitted together at most: a stop is found within this many rows of the failing
# one (the model runs on until the next submission), at a batch's fixed cost each time.
CHUNK_ROWS = 4096
# Ops as plain ints: an enum member costs an attribute lookup per use.
MMAP, IOVEC, TOUCH = int(CallOp.MMAP), int(CallOp.IOVEC), int(CallOp.TOUCH)
NO_REF = 0xffffffff << 32          # a header's ref field holding -1
PADDING = [[0] * (6 - n) for n in range(7)]     # a row's unused argument words
OPS = {"mmap": CallOp.MMAP, "munmap": CallOp.MUNMAP, "mprotect": CallOp.MPROTECT,
       "madvise": CallOp.MADVISE, "mremap": CallOp.MREMAP, "mlock": CallOp.MLOCK,
       "munlock": CallOp.MUNLOCK, "mlockall": CallOp.MLOCKALL,
       "munlockall": CallOp.MUNLOCKALL, "mseal": CallOp.MSEAL, "brk": CallOp.BRK,
       "set_anon_name": CallOp.ANON_NAME}
RETURNS_VALUE = ("mmap", "mremap", "brk")
# Row kinds beside the CALL_DTYPE flags: how a failure of the row is taken.
STOP, TOLERATE, HANDLED = 0, 1, 2


class Stopped(OSError):
    """A row failed: the run stops there, as the one-by-one run stops at that call."""

    def __init__(self, err, phase, index, call, map_count):
        super().__init__(err, call)
        self.phase, self.index, self.call, self.map_count = phase, index, call, map_count


class Diverged(Exception):
    """A call the model handles the failure of failed: the recorded rows after it were made
    by Python that assumed success, so the run must be made again one call at a time."""


class Ref:
    """An address (or count) a pending row will return, plus an offset."""
    __slots__ = ("rec", "row", "offset")

    def __init__(self, rec, row, offset=0):
        self.rec, self.row, self.offset = rec, row, offset

    def __int__(self):
        return (self.rec.result(self.row) + self.offset) & MASK

    __index__ = __int__

    def __add__(self, n):
        if type(n) is int:
            return Ref(self.rec, self.row, self.offset + n)
        return int(self) + n

    __radd__ = __add__

    def __sub__(self, n):
        if type(n) is int:
            return Ref(self.rec, self.row, self.offset - n)
        if type(n) is Ref and n.rec is self.rec and n.row == self.row:
            return self.offset - n.offset
        return int(self) - int(n)

    def __rsub__(self, n):
        return n - int(self)

    def _same(self, other):
        return type(other) is Ref and other.rec is self.rec and other.row == self.row

    def __eq__(self, other):
        return self.offset == other.offset if self._same(other) else int(self) == other

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        return self.offset < other.offset if self._same(other) else int(self) < other

    def __le__(self, other):
        return self.offset <= other.offset if self._same(other) else int(self) <= other

    def __gt__(self, other):
        return self.offset > other.offset if self._same(other) else int(self) > other

    def __ge__(self, other):
        return self.offset >= other.offset if self._same(other) else int(self) >= other

    def __hash__(self):
        # By row, so that Refs key dicts (Batcher.pending) without a submission; a Ref and
        # an int of the same value are equal but hash apart: do not mix them as keys.
        return hash((self.row, self.offset))

    def __and__(self, n):
        return int(self) & n

    __rand__ = __and__

    def __or__(self, n):
        return int(self) | n

    __ror__ = __or__

    def __mul__(self, n):
        return int(self) * n

    __rmul__ = __mul__

    def __floordiv__(self, n):
        return int(self) // n

    def __mod__(self, n):
        return int(self) % n

    def __bool__(self):
        return bool(int(self))

    def __format__(self, spec):
        return format(int(self), spec)

    def __repr__(self):
        return f"Ref(row {self.row} + {self.offset:#x})"

    def align_up(self, n):
        """(self + n - 1) & ~(n - 1) without a submission where placement makes the row's
        address n-aligned: an anonymous private mmap without a hint whose length is a
        multiple of PMD_SIZE is placed PMD-aligned (thp_get_unmapped_area_vmflags(), the
        simulator's _thp_aligns), so aligning the offset aligns the sum. The recorder
        checks the row's address once it is known; every other case submits now."""
        if 0 < n and PMD_SIZE % n == 0 and self.rec.pmd_aligned(self.row):
            self.rec.aligned_rows.append((self.row, n))
            return Ref(self.rec, self.row, (self.offset + n - 1) & ~(n - 1))
        return (int(self) + n - 1) & ~(n - 1)


def align_up(addr, n):
    """addr rounded up to a multiple of n (a power of two): Ref.align_up for a Ref."""
    if type(addr) is Ref:
        return addr.align_up(n)
    return (addr + n - 1) & ~(n - 1)


class Session:
    """What the recorders of one run share: the counter, the one process with rows
    pending (rows of two processes are never pending together, so submission order is the
    order the model made the calls in), and where the run stopped."""

    def __init__(self, run, counter):
        self.run = run
        self.counter = counter
        self.active = None
        self.stopped = None           # the Stopped of the row that failed
        self.closed = False           # the model is done: state reads no longer submit

    def switch(self, rec):
        """`rec` is about to record: the other process's pending rows run first (raises
        the stop if the run has stopped)."""
        if self.stopped is not None:
            raise self.stopped
        if self.active is not None:
            self.active.submit()
        self.active = rec

    def flush(self):
        """Submit the pending rows (of whichever process has them)."""
        if self.active is not None:
            self.active.submit()
        elif self.stopped is not None and not self.closed:
            raise self.stopped

    def close(self):
        """After the model: the rows still pending run; from then on the recorders are
        plain views of their processes (the state a stop left, as the one-by-one run's)."""
        try:
            self.flush()
        finally:
            self.closed = True


class Extra(dict):
    """Run.extra under a recorder: a model writes a figure after the calls before it have
    run, so that a run stopped by one of them does not report it (as the one-by-one run
    does not)."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def __setitem__(self, key, value):
        self.session.flush()
        super().__setitem__(key, value)

    def setdefault(self, key, value=None):
        self.session.flush()
        return super().setdefault(key, value)


class Recorder:
    """An MM-shaped object whose syscall methods append batch rows (module docstring)."""

    def __init__(self, inner, session):
        self.inner = inner
        self.session = session
        self.words = []                  # 7 words a row: header (op, flags, mm, ref), a[6]
        self.n = 0                       # rows pending
        self.where = []                  # (row, phase, index) at each change of the run's
        self.last_index = self.last_phase = None   # object (the Limit's phase and index)
        self.handled_rows = set()        # pending rows recorded through `handled`
        self.names = []                  # set_anon_name's names= of the pending rows
        self.name_index = {}
        self.base = 0                    # the row number of the first pending row
        self.starts = []                 # the row number of each submitted chunk
        self.results = []                # and its results
        self.aligned_rows = []           # (row, n): rows align_up() took as n-aligned
        self.counting = CountingMM(inner, session.counter)
        self.tolerant = _View(self, TOLERATE)
        self.handled = _View(self, HANDLED)

    # -- rows ------------------------------------------------------------------------
    def record(self, op, args, kind=STOP, extra=0):
        """Append a row of `op` with integer (or Ref) `args`; returns the row's number. A
        pending Ref of this process as the first argument (the address of every call that
        has one) becomes REL_A0 + offset; any other Ref is made a value (which submits)."""
        session = self.session
        if session.active is not self:
            session.switch(self)
        elif self.n >= CHUNK_ROWS and op != IOVEC:
            self.submit()
            session.active = self
        words = list(args)
        ref = -1
        flags = extra | (FLAG_TOLERATE if kind == TOLERATE else 0)
        first = words[0] if words else 0
        if type(first) is Ref and first.rec is self and first.row >= self.base:
            ref = first.row - self.base
            flags |= 1
            words[0] = first.offset & MASK
        for k, value in enumerate(words):
            if type(value) is not int:
                words[k] = int(value)
        words += PADDING[len(words)]
        out = self.words
        out.append(op | flags << 8 | (ref & 0xffffffff) << 32)     # (-1: NO_REF)
        out += words
        row = self.base + self.n
        self.n += 1
        run = session.run
        if run.index is not self.last_index or run.phase is not self.last_phase:
            self.last_index, self.last_phase = run.index, run.phase
            self.where.append((row, run.phase, run.index))
        if kind == HANDLED:
            self.handled_rows.add(row)
        return row

    def mmap(self, addr, length, prot, flags, file=None, offset=0, *, _kind=STOP):
        if file is not None:          # files= tables are not recorded: a call now
            return self.now().mmap(addr, length, prot, flags, file, offset)
        return Ref(self, self.record(MMAP, (addr, length, prot, flags, NO_FILE,
                                                   offset), _kind))

    def set_anon_name(self, addr, length, name, *, _kind=STOP):
        index = 0
        if name is not None:
            index = self.name_index.get(name)
            if index is None:
                self.names.append(name)
                index = self.name_index[name] = len(self.names)
        self.record(int(CallOp.ANON_NAME), (addr, length, index), _kind)

    def touch(self, addr, size=1, *, write=False, _kind=STOP):
        self.record(TOUCH, (addr, size, 1 if write else 0), _kind)

    def process_madvise(self, iovecs, advice, flags=0, *, _kind=STOP, _restart=False):
        iovecs = list(iovecs)
        row = self.record(int(CallOp.PROCESS_MADVISE), (len(iovecs), advice, flags), _kind,
                          FLAG_RESTART if _restart else 0)
        # The IOVEC rows, written here (record() per range would be most of a batched
        # flush's time): a base from a pending row of this process is REL_A0 + offset.
        # Values are taken before any word is written: nothing submits between the rows.
        first, out = self.base, []
        for addr, length in iovecs:
            if type(addr) is Ref and addr.rec is self and addr.row >= first:
                out += (IOVEC | 1 << 8 | (addr.row - first) << 32, addr.offset & MASK,
                        int(length), 0, 0, 0, 0)
            else:
                out += (IOVEC | NO_REF, int(addr), int(length), 0, 0, 0, 0)
        self.words += out
        self.n += len(iovecs)
        return Ref(self, row)

    def process_madvise_restarting(self, iovecs, advice, *, _kind=STOP):
        """process_madvise re-issued for what a short count leaves, until every range is
        advised (blocks.Batcher.flush's loop): one row with FLAG_RESTART."""
        self.process_madvise(iovecs, advice, _kind=_kind, _restart=True)

    def now(self):
        """The process for a call made at once (after the pending rows), counted."""
        self.submit()
        return self.counting

    # -- submission ------------------------------------------------------------------
    def submit(self):
        """Run the pending rows as one batch; Stopped or Diverged if one failed."""
        session = self.session
        if session.stopped is not None:
            if session.closed:
                return
            raise session.stopped
        if session.active is not self:
            if session.active is not None:       # the other process's calls came first
                session.active.submit()
            return
        session.active = None
        import numpy as np
        # (a list of Python ints while recording: appending to it is the cheapest)
        rows = np.frombuffer(array.array("Q", self.words), dtype=call_dtype())
        names = self.names
        results, _ = self.inner.batch(rows, names=names or None, stop="error",
                                      counter=session.counter)
        base, where, handled_rows = self.base, self.where, self.handled_rows
        self.words = []
        self.names, self.name_index, self.handled_rows = [], {}, set()
        self.where, self.last_index, self.last_phase = [], None, None
        self.starts.append(base)
        self.results.append(results)
        self.base += self.n
        self.n = 0
        self._check(rows, results, base, where, handled_rows, names)

    def _check(self, rows, results, base, where, handled_rows, names):
        """Stopped at the row that stopped the batch (Diverged if the model handles its
        error), the Fault of a touch that faulted, AssertionError if a placement was not
        aligned as align_up() took it to be."""
        import numpy as np
        failed = np.flatnonzero((results < 0) & (rows["flags"] & FLAG_TOLERATE == 0)
                                & (rows["op"] != CallOp.IOVEC))
        if len(failed):
            i = int(failed[0])
            if base + i in handled_rows:
                raise Diverged(f"row {base + i} failed with errno {-int(results[i])}")
            name, args = call_at(rows, results, i, [], names)
            if name == "mmap" and args[4:] == (None, 0):
                args = args[:4]           # as the model calls it
            _, phase, index = where[bisect.bisect_right([w[0] for w in where], base + i) - 1]
            self.session.stopped = Stopped(-int(results[i]), phase, index,
                                           CallRecord(name, args).describe(),
                                           self.session.counter.failed_map_count)
            raise self.session.stopped
        touched = np.flatnonzero((rows["op"] == CallOp.TOUCH) & (results > 0))
        if len(touched):             # the one-by-one run raised the fault at the access
            i = int(touched[0])
            raise fault_for(int(results[i]), 0, call_at(rows, results, i, [], names)[1][0])
        checks, self.aligned_rows = self.aligned_rows, []
        for row, n in checks:
            if self.result(row) % n:
                raise AssertionError(f"row {row} was placed at {self.result(row):#x}, not "
                                     f"{n:#x}-aligned as Ref.align_up assumed")

    def result(self, row):
        """What row `row` returned (submitting it first if it is pending)."""
        if row >= self.base:
            self.submit()
        k = bisect.bisect_right(self.starts, row) - 1
        return int(self.results[k][row - self.starts[k]])

    def pmd_aligned(self, row):
        """Whether row `row` is a pending mmap that placement aligns to PMD_SIZE
        (Ref.align_up): anonymous, private, no hint, a multiple of PMD_SIZE long."""
        if row < self.base:
            return False
        k = 7 * (row - self.base)
        head, addr, length, _, flags = self.words[k:k + 5]
        return (head & 0xff == CallOp.MMAP and not head >> 8 & 1 and addr == 0
                and length % PMD_SIZE == 0 and not flags & C.MAP_SHARED
                and bool(flags & C.MAP_ANONYMOUS))

    # -- state -----------------------------------------------------------------------
    def fork(self):
        """Submit every pending row, fork (counted), and record the child's calls apart."""
        self.submit()
        return Recorder(self.counting.fork().inner, self.session)

    @property
    def map_count(self):
        self.submit()
        return self.inner.map_count

    def __getattr__(self, name):
        self.submit()
        return getattr(self.inner, name)


def _syscall(name):
    op = int(OPS[name])
    if name in RETURNS_VALUE:
        def call(self, *args, _kind=STOP):
            return Ref(self, self.record(op, args, _kind))
    else:
        def call(self, *args, _kind=STOP):
            self.record(op, args, _kind)
    call.__name__ = name
    return call


for _name in OPS:
    if not hasattr(Recorder, _name):
        setattr(Recorder, _name, _syscall(_name))
del _name


class _View:
    """A recorder's calls with another failure kind (Recorder.tolerant, .handled)."""

    def __init__(self, rec, kind):
        self.rec, self.kind = rec, kind

    def __getattr__(self, name):
        method = functools.partial(getattr(self.rec, name), _kind=self.kind)
        setattr(self, name, method)       # found directly from now on
        return method


def tolerant(mm):
    """`mm` for a call whose error the model ignores (the row gets FLAG_TOLERATE)."""
    return mm.tolerant if type(mm) is Recorder else mm


def handled(mm):
    """`mm` for a call whose error the model handles (see Diverged)."""
    return mm.handled if type(mm) is Recorder else mm
