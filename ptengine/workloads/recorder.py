"""A model's calls recorded as batch rows, submitted together (mirrors no kernel file).

notes/engine-shape.md 3.5 has the design.

`Recorder` is what a model sees as its MM on the runner's batched path (`run(...,
batched=True)`): each syscall method appends one row (calls.CALL_DTYPE, mm/batch.pxd's
call_t, written in C by rows.Rows, the Recorder's base) and returns at once; the rows go
to the process's `batch()` with stop="error" and the run's counter when something needs
their outcome (and every 4,096 rows). mmap, mremap, brk and process_madvise return a `Ref` to
their row: `Ref + int` and `Ref - int` stay Refs (a REL bit and the offset in the using
row), two Refs of one row compare and subtract without running anything, and anything else
(int(), &, comparing with an int, formatting) submits the pending rows first and uses the
real value. Reading state (map_count, status(), maps(), maps_line_count()) submits first;
fork() submits and then forks, the child getting its own Recorder.

Failures: a row that fails stops the run where the one-by-one run would have stopped
(`Stopped`, an OSError carrying the Limit's fields). Calls whose error the model ignores go
through `tolerant` (rows with FLAG_TOLERATE: counted, not stopping). Calls whose error the
model handles in Python go through `handled`: they are recorded too, on the bet that they
succeed; if one fails the batched run cannot be the one-by-one run any more, `Diverged` is
raised and the runner runs the model again one call at a time (correctness first: that is
only glibc 2.42's fallback under mlockall(MCL_ONFAULT)).
"""
import bisect

from ..calls import FLAG_TOLERATE, CallOp, call_at, call_dtype
from .. import constants as C
from ..errors import fault_for
from .metrics import CallRecord, CountingMM
from .rows import CALLS, Kind, KindCall, Ref, Rows, Session

PMD_SIZE = 2 << 20


class Stopped(OSError):
    """A row failed: the run stops there, as the one-by-one run stops at that call."""

    def __init__(self, err, phase, index, call, map_count):
        super().__init__(err, call)
        self.phase, self.index, self.call, self.map_count = phase, index, call, map_count


class Diverged(Exception):
    """A call the model handles the failure of failed: the recorded rows after it were made
    by Python that assumed success, so the run must be made again one call at a time."""


def align_up(addr, n):
    """addr rounded up to a multiple of n (a power of two): Ref.align_up for a Ref."""
    if type(addr) is Ref:
        return addr.align_up(n)
    return (addr + n - 1) & ~(n - 1)


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


class Recorder(Rows):
    """An MM-shaped object whose syscall methods append batch rows (module docstring);
    the rows and the calls are rows.Rows's, in C."""

    def __init__(self, inner, session):
        self.inner = inner
        self.session = session
        self.aligned_rows = []           # (row, n): rows align_up() took as n-aligned
        self.counting = CountingMM(inner, session.counter)
        self.tolerant = _View(self, Kind.TOLERATE)
        self.handled = _View(self, Kind.HANDLED)

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
        data, where, handled_rows, names = self.take()
        rows = np.frombuffer(data, dtype=call_dtype())
        results, _ = self.inner.batch(rows, names=names or None, stop="error",
                                      counter=session.counter)
        base = self.base
        self.ran(results)
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

    def pmd_aligned(self, row, n):
        """Whether the address row `row` will return is certainly a multiple of `n` (a
        divisor of PMD_SIZE), for Ref.align_up: an anonymous private mmap without a hint
        whose length is a multiple of PMD_SIZE is placed PMD-aligned
        (thp_get_unmapped_area_vmflags(), the simulator's _thp_aligns)."""
        if not (0 < n and PMD_SIZE % n == 0 and self.base <= row < self.base + self.n):
            return False
        op, row_flags, _, (addr, length, _, flags, _, _) = self.pending(row)
        return (op == CallOp.MMAP and not row_flags & 1 and addr == 0
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


def _after_rows(name):
    """The process's `name`, called once the pending rows have run. (Named ones rather
    than a __getattr__ for everything: a class with __getattr__ makes every method call
    on it a slow attribute lookup, each recorded call included.)"""
    def read(self, *args, **kwargs):
        self.submit()
        return getattr(self.inner, name)(*args, **kwargs)
    read.__name__ = name
    return read


# What the runner and the models read of a process (Snapshot.of, close_backend).
for _name in ("status", "maps", "maps_line_count", "exit"):
    setattr(Recorder, _name, _after_rows(_name))
del _name


class _View:
    """A recorder's calls with another failure kind (Recorder.tolerant, .handled): each
    of rows.CALLS as a KindCall. (Attributes made once rather than a __getattr__, which
    would be looked up on every call through the view.)"""

    def __init__(self, rec, kind):
        for name in CALLS:
            setattr(self, name, KindCall(rec, getattr(rec, name), kind))


def tolerant(mm):
    """`mm` for a call whose error the model ignores (the row gets FLAG_TOLERATE)."""
    return mm.tolerant if type(mm) is Recorder else mm


def handled(mm):
    """`mm` for a call whose error the model handles (see Diverged)."""
    return mm.handled if type(mm) is Recorder else mm
