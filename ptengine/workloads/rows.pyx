# cython: language_level=3
"""The recorder's hot half: batch rows appended in C, and the Ref a pending row returns
(mirrors no kernel file; workloads/recorder.py is the rest, and says what a run records).

A model run batched makes one row per call: in Python that was most of the run (a list
of seven words built and checked per row, about 3 us), more than the simulator takes for
the call itself. Here a row is written into a C buffer as mm/batch.pxd's call_t (the
layout of calls.CALL_DTYPE: op, flags, mm, ref; then a[6]), and `take()`
hands the pending ones to the batch as bytes. What needs Python (submitting, the results,
the stop) stays in the Recorder subclass, reached only when a value is needed or a chunk
is full.
"""
from cpython.long cimport PyLong_AsUnsignedLongLong
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from ..mm.batch cimport call_t

from ..calls import FLAG_RESTART as _FLAG_RESTART, FLAG_TOLERATE as _FLAG_TOLERATE, CallOp
from ..calls import NO_FILE as _NO_FILE

cdef enum:
    # Rows submitted together at most: a stop is found within this many rows of the
    # failing one (the model runs on until the next submission), at a batch's fixed cost
    # each time.
    CHUNK_ROWS = 4096

# How a failure of the row is taken (besides the CALL_DTYPE flags): the run stops there,
# the model ignores it (FLAG_TOLERATE), or the model handles it in Python (Diverged).
cpdef enum Kind:
    STOP = 0
    TOLERATE = 1
    HANDLED = 2

cdef uint64_t HASH_MULTIPLIER = 0x9E3779B97F4A7C15u  # 2**64 / golden ratio: spreads rows
cdef uint64_t NO_FILE = _NO_FILE
cdef uint64_t FLAG_TOLERATE = _FLAG_TOLERATE
cdef uint64_t FLAG_RESTART = _FLAG_RESTART
cdef uint64_t MMAP = CallOp.MMAP, MUNMAP = CallOp.MUNMAP, MPROTECT = CallOp.MPROTECT
cdef uint64_t MADVISE = CallOp.MADVISE, PROCESS_MADVISE = CallOp.PROCESS_MADVISE
cdef uint64_t MREMAP = CallOp.MREMAP, MLOCK = CallOp.MLOCK, MUNLOCK = CallOp.MUNLOCK
cdef uint64_t MLOCKALL = CallOp.MLOCKALL, MUNLOCKALL = CallOp.MUNLOCKALL
cdef uint64_t MSEAL = CallOp.MSEAL, BRK = CallOp.BRK, ANON_NAME = CallOp.ANON_NAME
cdef uint64_t TOUCH = CallOp.TOUCH, IOVEC = CallOp.IOVEC


cdef inline uint64_t _word(object value) except? 0xffffffffffffffff:
    """An argument as a row word: an int as it is (OverflowError if it does not fit, as
    numpy would raise), anything else through int() (a Ref submits its row first)."""
    if type(value) is not int:
        value = int(value)
    return PyLong_AsUnsignedLongLong(value)


cdef inline Ref _ref(Rows rec, Py_ssize_t row, int64_t offset):
    cdef Ref r = Ref.__new__(Ref)
    r.rec, r.row, r.offset = rec, row, offset
    return r


cdef class Ref:
    """An address (or count) a pending row will return, plus an offset.

    `Ref + int` and `Ref - int` stay Refs; two Refs of one row compare and subtract
    without running anything; anything else (int(), &, comparing with an int,
    formatting) submits the pending rows first and uses the real value."""
    cdef readonly Rows rec
    cdef readonly Py_ssize_t row
    cdef readonly int64_t offset

    def __init__(self, Rows rec, Py_ssize_t row, int64_t offset=0):
        self.rec, self.row, self.offset = rec, row, offset

    def __int__(self):
        return (self.rec.result(self.row) + self.offset) & 0xffffffffffffffff

    def __index__(self):
        return int(self)

    def __add__(self, n):
        if type(n) is int:
            return _ref(self.rec, self.row, self.offset + <int64_t>n)
        return int(self) + n

    def __radd__(self, n):
        return self + n

    def __sub__(self, n):
        if type(n) is int:
            return _ref(self.rec, self.row, self.offset - <int64_t>n)
        if self._same(n):
            return self.offset - (<Ref>n).offset
        return int(self) - int(n)

    def __rsub__(self, n):
        return n - int(self)

    cdef bint _same(self, other):
        return type(other) is Ref and (<Ref>other).rec is self.rec and \
            (<Ref>other).row == self.row

    def __eq__(self, other):
        return self.offset == (<Ref>other).offset if self._same(other) else int(self) == other

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        return self.offset < (<Ref>other).offset if self._same(other) else int(self) < other

    def __le__(self, other):
        return self.offset <= (<Ref>other).offset if self._same(other) else int(self) <= other

    def __gt__(self, other):
        return self.offset > (<Ref>other).offset if self._same(other) else int(self) > other

    def __ge__(self, other):
        return self.offset >= (<Ref>other).offset if self._same(other) else int(self) >= other

    def __hash__(self):
        # By row and offset, so that Refs key dicts (Batcher.pending) without a
        # submission; a Ref and an int of the same value are equal but hash apart: do not
        # mix them as keys. (Shifted right: never -1, the C error value.)
        return <Py_hash_t>((<uint64_t>self.row * HASH_MULTIPLIER + <uint64_t>self.offset) >> 1)

    def __and__(self, n):
        return int(self) & n

    def __rand__(self, n):
        return n & int(self)

    def __or__(self, n):
        return int(self) | n

    def __ror__(self, n):
        return n | int(self)

    def __mul__(self, n):
        return int(self) * n

    def __rmul__(self, n):
        return n * int(self)

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
        address n-aligned (Recorder.pmd_aligned() says when); the recorder checks the
        row's address once it is known. Every other case submits now."""
        if self.rec.pmd_aligned(self.row, n):
            self.rec.aligned_rows.append((self.row, n))
            return _ref(self.rec, self.row, (self.offset + n - 1) & ~(<int64_t>n - 1))
        return (int(self) + n - 1) & ~(n - 1)


cdef class Position:
    """Which object of which phase a run's model is at (runner.Run is one, and
    Run.objects() moves it): C fields, so that every recorded row reads them without a
    Python attribute lookup, for the Limit of a run that stops at that row."""
    cdef public object phase
    cdef public object index


cdef class Session:
    """What the recorders of one run share: the counter, the one process with rows
    pending (rows of two processes are never pending together, so submission order is the
    order the model made the calls in), and where the run stopped. (A C type: a row reads
    `active` and `run` without a Python attribute lookup.)"""
    cdef public Position run          # runner.Run
    cdef public object counter
    cdef public object active         # the Rows with rows pending, or None
    cdef public object stopped        # the Stopped of the row that failed
    cdef public bint closed           # the model is done: state reads no longer submit

    def __init__(self, run, counter):
        self.run, self.counter = run, counter

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


cdef class Rows:
    """The pending rows of one process's Recorder, and the syscall methods that append
    them (each returns at once; mmap, mremap, brk and process_madvise return a Ref).

    A pending Ref of this process as a row's first argument (the address of every call
    that has one) becomes the row's `ref` plus the offset (REL_A0); any other argument is
    made a value first, before the row is begun, so that a submission it causes never
    splits a row. Rows made through a KindCall of TOLERATE get FLAG_TOLERATE; those made
    under HANDLED are remembered in `handled_rows` (recorder.Diverged)."""
    cdef call_t *rows                 # the pending rows
    cdef Py_ssize_t cap               # rows the buffer holds
    cdef readonly Py_ssize_t n        # rows pending
    cdef public Py_ssize_t base       # the row number of the first pending row
    cdef public Session session
    cdef public list where            # (row, phase, index) at each change of the run's
    cdef object last_index, last_phase   # object (the Limit's phase and index)
    cdef public set handled_rows      # pending rows recorded through `handled`
    cdef list names                   # set_anon_name's names= of the pending rows
    cdef dict name_index
    cdef Kind kind                    # the failure kind of the rows being made (KindCall)
    cdef int64_t *done                # the result of every submitted row, by row number
    cdef Py_ssize_t done_cap

    def __cinit__(self):
        self.kind = STOP
        self._reset()

    cdef void _reset(self):
        self.n = 0
        self.where, self.last_index, self.last_phase = [], None, None
        self.handled_rows, self.names, self.name_index = set(), [], {}

    def __dealloc__(self):
        free(self.rows)
        free(self.done)

    # -- rows --------------------------------------------------------------------------
    cdef int _begin(self, bint more) except -1:
        """This process records next: the other process's pending rows run first, and a
        full chunk of ours (unless `more` rows of one call follow)."""
        cdef Session session = self.session
        if session.active is not self:
            session.switch(self)
        elif self.n >= CHUNK_ROWS and not more:
            self.submit()
            session.active = self
        return 0

    cdef call_t *_slot(self, uint64_t op, uint64_t flags, int32_t ref) except NULL:
        """One more pending row, its header written (process 0)."""
        cdef call_t *grown
        cdef Py_ssize_t cap
        if self.n == self.cap:
            cap = 2 * self.cap if self.cap else CHUNK_ROWS + 1
            grown = <call_t *>realloc(self.rows, cap * sizeof(call_t))
            if grown == NULL:
                raise MemoryError
            self.rows, self.cap = grown, cap
        self.n += 1
        grown = self.rows + self.n - 1
        grown.op, grown.flags, grown.mm, grown.ref = op, flags, 0, ref
        return grown

    cdef Py_ssize_t row(self, uint64_t op, object a0, uint64_t a1, uint64_t a2, uint64_t a3,
                        uint64_t a4, uint64_t a5, uint64_t flags) except -1:
        """Append a row; returns its number. The caller has made a1..a5 values."""
        cdef uint64_t first
        cdef int32_t ref = -1
        cdef Ref r
        cdef Kind kind = self.kind
        self._begin(False)
        if kind == TOLERATE:
            flags |= FLAG_TOLERATE
        if type(a0) is Ref and (<Ref>a0).rec is self and (<Ref>a0).row >= self.base:
            r = <Ref>a0
            flags |= 1                  # REL_A0: a0 is the offset from row ref's result
            ref = <int32_t>(r.row - self.base)
            first = <uint64_t>r.offset
        else:
            first = _word(a0)           # (a submitted row's Ref: no submission)
        cdef call_t *c = self._slot(op, flags, ref)
        c.a[0], c.a[1], c.a[2], c.a[3], c.a[4], c.a[5] = first, a1, a2, a3, a4, a5
        cdef Py_ssize_t number = self.base + self.n - 1
        cdef Position run = self.session.run
        index, phase = run.index, run.phase
        if index is not self.last_index or phase is not self.last_phase:
            self.last_index, self.last_phase = index, phase
            self.where.append((number, phase, index))
        if kind == HANDLED:
            self.handled_rows.add(number)
        return number

    def record(self, op, a0=0, a1=0, a2=0, a3=0, a4=0, a5=0):
        """Append a row of `op` (a CallOp) with integer (or Ref) arguments; its number."""
        return self.row(op, a0, _word(a1), _word(a2), _word(a3), _word(a4), _word(a5), 0)

    def take(self):
        """(rows, where, handled_rows, names) of the pending rows, the rows as CALL_DTYPE
        bytes; none are pending after."""
        rows = (<char *>self.rows)[:self.n * sizeof(call_t)] if self.n else b""
        out = rows, self.where, self.handled_rows, self.names
        self._reset()
        return out

    def ran(self, const int64_t[::1] results):
        """Keep the results of the rows just taken and run (they start at `base`), and
        move `base` past them."""
        cdef Py_ssize_t n = results.shape[0], cap
        cdef int64_t *grown
        if self.base + n > self.done_cap:
            cap = max(2 * self.done_cap, self.base + n)
            grown = <int64_t *>realloc(self.done, cap * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError
            self.done, self.done_cap = grown, cap
        if n:
            memcpy(self.done + self.base, &results[0], n * sizeof(int64_t))
        self.base += n

    cpdef object result(self, Py_ssize_t row):
        """What row `row` returned (submitting it first if it is pending)."""
        if row >= self.base:
            self.submit()
        if not 0 <= row < self.base:
            raise IndexError(f"row {row} has not run")
        return self.done[row]

    def pending(self, Py_ssize_t row):
        """Pending row `row`: (op, flags, ref, (a0, ..., a5))."""
        cdef call_t *c
        if not 0 <= row - self.base < self.n:
            raise IndexError(f"row {row} is not pending")
        c = self.rows + (row - self.base)
        return c.op, c.flags, c.ref, (c.a[0], c.a[1], c.a[2], c.a[3], c.a[4], c.a[5])

    # -- the calls (the MM API's signatures) ------------------------------------------
    def mmap(self, addr, length, prot, flags, file=None, offset=0):
        if file is not None:          # files= tables are not recorded: a call now
            return self.now().mmap(addr, length, prot, flags, file, offset)
        return _ref(self, self.row(MMAP, addr, _word(length), _word(prot), _word(flags),
                                   NO_FILE, _word(offset), 0), 0)

    def munmap(self, addr, length):
        self.row(MUNMAP, addr, _word(length), 0, 0, 0, 0, 0)

    def mprotect(self, addr, length, prot):
        self.row(MPROTECT, addr, _word(length), _word(prot), 0, 0, 0, 0)

    def madvise(self, addr, length, advice):
        self.row(MADVISE, addr, _word(length), _word(advice), 0, 0, 0, 0)

    def mremap(self, old_address, old_size, new_size, flags=0, new_address=0):
        return _ref(self, self.row(MREMAP, old_address, _word(old_size), _word(new_size),
                                   _word(flags), _word(new_address), 0, 0), 0)

    def mlock(self, addr, length, flags=0):
        self.row(MLOCK, addr, _word(length), _word(flags), 0, 0, 0, 0)

    def munlock(self, addr, length):
        self.row(MUNLOCK, addr, _word(length), 0, 0, 0, 0, 0)

    def mlockall(self, flags):
        self.row(MLOCKALL, flags, 0, 0, 0, 0, 0, 0)

    def munlockall(self):
        self.row(MUNLOCKALL, 0, 0, 0, 0, 0, 0, 0)

    def mseal(self, addr, length, flags=0):
        self.row(MSEAL, addr, _word(length), _word(flags), 0, 0, 0, 0)

    def brk(self, addr):
        return _ref(self, self.row(BRK, addr, 0, 0, 0, 0, 0, 0), 0)

    def set_anon_name(self, addr, length, name):
        cdef uint64_t size = _word(length)
        self._begin(False)            # (a submission starts a new names= table)
        index = 0
        if name is not None:
            index = self.name_index.get(name)
            if index is None:
                self.names.append(name)
                index = self.name_index[name] = len(self.names)
        self.row(ANON_NAME, addr, size, index, 0, 0, 0, 0)

    def touch(self, addr, size=1, *, write=False):
        self.row(TOUCH, addr, _word(size), 1 if write else 0, 0, 0, 0, 0)

    def process_madvise(self, iovecs, advice, flags=0):
        return self._vector(iovecs, advice, flags, 0)

    def process_madvise_restarting(self, iovecs, advice):
        """process_madvise re-issued for what a short count leaves, until every range is
        advised (blocks.Batcher.flush's loop): one row with FLAG_RESTART."""
        self._vector(iovecs, advice, 0, FLAG_RESTART)

    cdef Ref _vector(self, iovecs, advice, flags, uint64_t row_flags):
        """One PROCESS_MADVISE row and an IOVEC row per range. A base from a pending row
        of this process is REL_A0 + offset; the other values are taken before the rows
        are written, so that nothing submits between them."""
        cdef Py_ssize_t i, count, first
        cdef call_t *c
        cdef list bases = [], lengths = []
        iovecs = list(iovecs)
        count = len(iovecs)
        for addr, length in iovecs:
            bases.append(addr if type(addr) is Ref and (<Ref>addr).rec is self
                         else _word(addr))
            lengths.append(_word(length))
        number = self.row(PROCESS_MADVISE, count, _word(advice), _word(flags), 0, 0, 0,
                          row_flags)
        first = self.base
        for i in range(count):
            addr = bases[i]
            if type(addr) is Ref and (<Ref>addr).row >= first:
                c = self._slot(IOVEC, 1, <int32_t>((<Ref>addr).row - first))
                c.a[0] = <uint64_t>(<Ref>addr).offset
            else:
                c = self._slot(IOVEC, 0, -1)
                c.a[0] = _word(addr)    # (a submitted row's Ref: no submission)
            c.a[1], c.a[2], c.a[3], c.a[4], c.a[5] = <uint64_t>lengths[i], 0, 0, 0, 0
        return _ref(self, number, 0)


# The methods of Rows that make rows (what a KindCall view offers).
CALLS = ("mmap", "munmap", "mprotect", "madvise", "mremap", "mlock", "munlock", "mlockall",
         "munlockall", "mseal", "brk", "set_anon_name", "touch", "process_madvise",
         "process_madvise_restarting")


cdef class KindCall:
    """A Rows method whose rows get another failure kind while it runs (recorder._View:
    `tolerant(mm).madvise(...)`, `handled(mm).madvise(...)`). Positional arguments only:
    a keyword dict made per call was a fifth of the view's cost."""
    cdef Rows rec
    cdef object method
    cdef Kind kind

    def __init__(self, Rows rec, method, Kind kind):
        self.rec, self.method, self.kind = rec, method, kind

    def __call__(self, *args):
        cdef Kind outer = self.rec.kind
        self.rec.kind = self.kind
        try:
            return self.method(*args)
        finally:
            self.rec.kind = outer
