"""The batch executor: the rows of a CALL_DTYPE array in one C loop (mirrors no kernel file).

The submission of many syscalls at once, io_uring-like; each row calls
the typed syscall function of its kernel file (sys_mmap() of mmap.pyx ...).

`MM.batch()` (API.md "Batched calls") lands here. The rows are read through a typed
memoryview of the caller's array (no copy), the results written to an int64 array; each
row's call is made through one switch (`call_row`), an OSError becomes -errno and a
user-mode fault the signal number. The syscalls are counted in C arrays, by the label and
mmap-lock kind that workloads.metrics defines, and added to a SyscallCounter once per label
after the loop. The live server runs the same rows with the same rules (server.c,
run_batch()); tests/batch runs one array on both and compares them row by row.
"""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import errno
import gc

from .brk cimport sys_brk
from .madvise cimport sys_madvise, sys_process_madvise, sys_set_anon_name
from .memory cimport sys_touch
from .mlock cimport sys_mlock, sys_mlockall, sys_munlock, sys_munlockall
from .mm_struct cimport mm_struct, check_alive
from .mmap cimport sys_mmap, sys_munmap
from .mprotect cimport sys_mprotect
from .mremap cimport sys_mremap
from .mseal cimport sys_mseal
from .. import calls as _calls
from ..calls import CALL_NAMES, CallOp, as_calls, call_at, object_table, stop_rule
from ..fs.files import File
from ..callkind import call_kind, error_label




# The ops as compile-time constants: call_row()'s chain of tests compiles to one C switch
# only over these (module globals read from calls.CallOp made it a chain of compares,
# ~5% of a batched guard pair). The asserts below tie them to calls.py, the one definition.
cdef enum:
    MMAP = 1
    MUNMAP = 2
    MPROTECT = 3
    MADVISE = 4
    PROCESS_MADVISE = 5
    MREMAP = 6
    MLOCK = 7
    MUNLOCK = 8
    MLOCKALL = 9
    MUNLOCKALL = 10
    MSEAL = 11
    BRK = 12
    ANON_NAME = 13
    TOUCH = 23
    IOVEC = 41
    N_OPS = 42
    # Counting slots: one per op below ADVISED; madvise and process_madvise get one per
    # advice value below N_ADVICE (every MADV_* is), from ADVISED on.
    N_ADVICE = 128
    ADVISED = 16
    N_SLOTS = ADVISED + 2 * N_ADVICE
    N_ERRNO = 256
    # calls.py's flags and stop modes, as C constants for the loop
    FLAG_REL = 0x3f
    FLAG_TOLERATE = 0x40
    FLAG_RESTART = 0x80
    STOP_ERROR = 1
    STOP_EXPECTED = 2

cdef uint64_t NO_FILE = _calls.NO_FILE
assert sizeof(call_t) == 56
assert (FLAG_REL, FLAG_TOLERATE, FLAG_RESTART, STOP_ERROR, STOP_EXPECTED) == \
    (_calls.FLAG_REL, _calls.FLAG_TOLERATE, _calls.FLAG_RESTART, _calls.STOP_ERROR,
     _calls.STOP_EXPECTED)
assert [int(op) for op in CallOp] == [MMAP, MUNMAP, MPROTECT, MADVISE, PROCESS_MADVISE,
                                      MREMAP, MLOCK, MUNLOCK, MLOCKALL, MUNLOCKALL, MSEAL,
                                      BRK, ANON_NAME, TOUCH, IOVEC]

cdef int64_t ECANCELED = errno.ECANCELED
LOCK_KINDS = ("write", "read", "none")

# Per op: 1 for the ops a row may hold. Per slot: the label and the lock kind (an index
# into LOCK_KINDS), from callkind.call_kind, the one definition of both.
cdef uint8_t KNOWN_OP[N_OPS]
cdef uint8_t SLOT_LOCK[N_SLOTS]
cdef list SLOT_LABELS = [None] * N_SLOTS


def _build_tables():
    KNOWN_OP[IOVEC] = 1
    for op, name in CALL_NAMES.items():
        KNOWN_OP[op] = 1
        if op == CallOp.TOUCH:            # a fault, not a syscall: not counted (CountingMM)
            continue
        for slot, advice in _slots(op):
            label, mode = call_kind(name, advice)
            SLOT_LABELS[slot] = label
            SLOT_LOCK[slot] = LOCK_KINDS.index(mode)


def _slots(op):
    """(slot, advice) of each counting slot of an op (advice None: not an advised call)."""
    if op in (CallOp.MADVISE, CallOp.PROCESS_MADVISE):
        base = ADVISED + (N_ADVICE if op == CallOp.PROCESS_MADVISE else 0)
        return [(base + advice, advice) for advice in range(N_ADVICE)]
    return [(op, None)]


_build_tables()


@cython.final
cdef class Tally:
    """What one batch counts: C arrays while it runs, added to a SyscallCounter after."""
    cdef int64_t calls[N_SLOTS]
    cdef int64_t by_lock[3]
    cdef int64_t errors[ADVISED][N_ERRNO]
    cdef int64_t iovecs
    cdef dict odd                 # (op, advice) -> calls, for an advice past every MADV_*
    cdef object failed_map_count  # map_count when a call last failed
    cdef bint erred               # some call failed (add_to reads errors[] only then)
    cdef int64_t last_row         # the last row whose call was made (-1: none)

    def __cinit__(self):
        self.odd = {}
        self.last_row = -1

    cdef void count(self, Py_ssize_t row, uint8_t op, const uint64_t *a, object arg):
        cdef int advice, slot = op
        if op == MADVISE or op == PROCESS_MADVISE:
            advice = <int>(a[2] if op == MADVISE else a[1])      # an int, as the kernel reads it
            if not 0 <= advice < N_ADVICE:
                self.odd[op, advice] = self.odd.get((op, advice), 0) + 1
                slot = -1
            else:
                slot = ADVISED + (N_ADVICE if op == PROCESS_MADVISE else 0) + advice
        if slot >= 0:
            self.calls[slot] += 1
            self.by_lock[SLOT_LOCK[slot]] += 1
        if op == PROCESS_MADVISE:
            self.iovecs += len(arg)
        self.last_row = row

    cdef void failed(self, uint8_t op, int err, mm_struct mm) except *:
        self.errors[op][err if 0 < err < N_ERRNO else 0] += 1
        self.erred = True
        self.failed_map_count = mm.map_count

    def add_to(self, counter, rows, results, files, names):
        """Add the counts to a workloads.metrics.SyscallCounter, one update per label."""
        for slot in range(N_SLOTS):
            if self.calls[slot]:
                counter.by_name[SLOT_LABELS[slot]] += self.calls[slot]
        for (op, advice), n in self.odd.items():
            label, mode = call_kind(CALL_NAMES[op], advice)
            counter.by_name[label] += n
            counter.by_lock[mode] += n
        for k, mode in enumerate(LOCK_KINDS):
            if self.by_lock[k]:
                counter.by_lock[mode] += self.by_lock[k]
        for op, name in CALL_NAMES.items() if self.erred else ():
            for err in range(N_ERRNO):
                if op < ADVISED and self.errors[op][err]:
                    counter.errors[error_label(name, err)] += self.errors[op][err]
        counter.iovecs += self.iovecs
        if self.failed_map_count is not None:
            counter.failed_map_count = self.failed_map_count
        if self.last_row >= 0:
            counter.last_call = call_at(rows, results, self.last_row, files, names)


def execute(mm_struct mm, calls, files=None, names=None, stop=None, counter=None):
    """-> (results: int64 array, ns). API.md "Batched calls"; calls.py for the rows.

    stop: None (run every row), "error" (stop after the first row that fails without
    FLAG_TOLERATE), or an int64 array of expected results (stop after the first row whose
    result differs). Rows not run, and rows whose `ref` row failed, get -ECANCELED. The
    time is CLOCK_MONOTONIC around the loop, the clock the live server uses. OSError
    ESRCH for an exited process."""
    import numpy as np
    rows = as_calls(calls)
    check_alive(mm)       # an exited process runs no batch (ESRCH), as the live server's
    files = object_table(files, "files", (File,))
    names = object_table(names, "names", (str, bytes, bytearray))
    mode, expected = stop_rule(stop, len(rows))
    check(rows, len(files), len(names))
    results = np.full(len(rows), -ECANCELED, dtype=np.int64)
    tally = Tally()
    cdef uint64_t *iov = <uint64_t *>malloc(2 * sizeof(uint64_t) * (_longest_vector(rows) + 1))
    cdef timespec t0, t1
    if iov == NULL:
        raise MemoryError
    enabled = gc.isenabled()
    gc.disable()          # the loop makes few objects; a collection would be most of its time
    try:
        clock_gettime(CLOCK_MONOTONIC, &t0)
        run_rows(mm, rows, results, files, names, mode,
                 expected if mode == STOP_EXPECTED else results, tally, iov)
        clock_gettime(CLOCK_MONOTONIC, &t1)
    finally:
        if enabled:
            gc.enable()
        free(iov)
    if counter is not None:
        tally.add_to(counter, rows, results, files, names)
    return results, (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec)


cdef Py_ssize_t _longest_vector(const call_t[::1] rows):
    cdef Py_ssize_t i, most = 0
    for i in range(rows.shape[0]):
        if rows[i].op == PROCESS_MADVISE and rows[i].a[0] > <uint64_t>most:
            most = rows[i].a[0]
    return most


def check(const call_t[::1] rows, uint64_t n_files, uint64_t n_names):
    """ValueError for a row no backend can run: an unknown op, a process other than 0, an
    IOVEC row outside its PROCESS_MADVISE's count, a count past the end (or one a REL bit
    would change), a `ref` that is
    not an earlier call row (or REL bits without one), an fd_index or a name index outside
    files= or names=."""
    cdef Py_ssize_t i, n = rows.shape[0], iovecs_left = 0, head = 0
    cdef const call_t *row
    for i in range(n):
        row = &rows[i]
        if row.mm != 0:
            raise ValueError(f"row {i}: mm {row.mm}: only process 0 (the MM batch() is "
                             f"called on) can be named")
        if row.op >= N_OPS or not KNOWN_OP[row.op]:
            raise ValueError(f"row {i}: {row.op} is not a CallOp")
        if (row.op == IOVEC) != (iovecs_left > 0):
            raise ValueError(f"row {i}: " + ("an IOVEC row outside a process_madvise"
                                             if iovecs_left == 0 else
                                             f"process_madvise row {head} has "
                                             f"{iovecs_left} more IOVEC rows"))
        if row.op == IOVEC:
            iovecs_left -= 1
        if row.ref != -1:
            # An IOVEC row's ref is resolved before its head row runs.
            if not 0 <= row.ref < (head if row.op == IOVEC else i) or \
                    rows[row.ref].op == IOVEC:
                raise ValueError(f"row {i}: ref {row.ref} is not an earlier call row")
        elif row.flags & FLAG_REL:
            raise ValueError(f"row {i}: REL flags without a ref row")
        if row.op == PROCESS_MADVISE:
            if row.flags & 1:
                raise ValueError(f"row {i}: a REL bit on process_madvise's count of IOVEC rows")
            if row.a[0] > <uint64_t>(n - 1 - i):
                raise ValueError(f"row {i}: process_madvise of {row.a[0]} IOVEC rows "
                                 f"runs past the end of the batch")
            iovecs_left, head = row.a[0], i
        elif row.op == MMAP and row.a[4] != NO_FILE and row.a[4] >= n_files:
            raise ValueError(f"row {i}: fd_index {row.a[4]} is not in files=")
        elif row.op == ANON_NAME and row.a[2] > n_names:
            raise ValueError(f"row {i}: name index {row.a[2] - 1} is not in names=")


cdef void run_rows(mm_struct mm, const call_t[::1] rows, int64_t[::1] results,
                   list files, list names, int mode, const int64_t[::1] expected,
                   Tally tally, uint64_t *iov) except *:
    """The loop. Every row not reached keeps -ECANCELED; an IOVEC row gets 0, or
    -ECANCELED when its own ref row failed (its process_madvise is then not made)."""
    cdef Py_ssize_t i = 0, j, n = rows.shape[0], width
    cdef const call_t *row
    cdef uint64_t a[6]
    cdef long long r
    while i < n:
        row = &rows[i]
        width = 1 + (<Py_ssize_t>row.a[0] if row.op == PROCESS_MADVISE else 0)
        r = resolve(row, results, a)
        for j in range(1, width):         # the IOVEC rows: their ranges, resolved
            results[i + j] = resolve(&rows[i + j], results, &iov[2 * (j - 1)])
            if results[i + j]:
                r = -ECANCELED
        if r == 0:
            r = issue(mm, i, row, a, files, names, iov, tally)
        results[i] = r
        if mode == STOP_ERROR and r < 0 and not row.flags & FLAG_TOLERATE:
            return
        if mode == STOP_EXPECTED and r != expected[i]:
            return
        i += width


cdef inline long long resolve(const call_t *row, int64_t[::1] results, uint64_t *a):
    """Copy the row's arguments, adding the `ref` row's result to those its REL bits name;
    -ECANCELED when that row failed (the call is not made), else 0."""
    cdef int k
    cdef int64_t base = 0
    if row.ref >= 0:
        base = results[row.ref]
        if base < 0:
            return -ECANCELED
    if not row.flags & FLAG_REL:                # most rows: the arguments as they are
        memcpy(a, row.a, (6 if row.op != IOVEC else 2) * sizeof(uint64_t))
        return 0
    for k in range(6 if row.op != IOVEC else 2):
        a[k] = row.a[k] + (<uint64_t>base if row.flags & (1 << k) else 0)
    return 0


cdef long long issue(mm_struct mm, Py_ssize_t row_index, const call_t *row,
                     const uint64_t *a, list files, list names, const uint64_t *iov,
                     Tally tally) except? -1:
    """One row's call, counted; -errno on failure. A process_madvise with FLAG_RESTART is
    re-issued for the bytes a short count left, as blocks.Batcher.flush() does: the
    result is then the bytes of all the calls, or the errno of one that failed."""
    cdef uint8_t op = row.op
    cdef Py_ssize_t k, first = 0, n = row.a[0] if op == PROCESS_MADVISE else 0
    cdef uint64_t skip = 0, done       # ranges [first, n) are left, less skip bytes of the first
    cdef long long r, total = 0
    arg = None
    if op == MMAP:
        arg = None if a[4] == NO_FILE else files[a[4]]
    elif op == ANON_NAME:
        arg = None if a[2] == 0 else names[a[2] - 1]
    while True:
        if op == PROCESS_MADVISE:
            arg = [(iov[2 * k] + (skip if k == first else 0),
                    iov[2 * k + 1] - (skip if k == first else 0)) for k in range(first, n)]
        if op != TOUCH:
            tally.count(row_index, op, a, arg)
        try:
            r = call_row(mm, op, a, arg)
        except OSError as e:
            if op != TOUCH:           # uncounted, as CountingMM forwards it uncounted
                tally.failed(op, e.errno, mm)
            return -e.errno
        if op != PROCESS_MADVISE or not row.flags & FLAG_RESTART:
            return r
        total += r
        # blocks.advance_iovecs(): skip the r bytes done, whole ranges then part of one.
        done = skip + r
        while first < n and done >= iov[2 * first + 1]:
            done -= iov[2 * first + 1]
            first += 1
        skip = done
        if r == 0 or first == n:
            return total


cdef long long call_row(mm_struct mm, uint8_t op, const uint64_t *a, object arg) except? -1:
    """The one place a row becomes a call: a switch over the ops onto the typed entry
    points (dtype.md), in API argument order, through the vtable. `arg` is the row's object
    argument: the file of an mmap, the name of a set_anon_name, the (base, length) list of
    a process_madvise."""
    if op == MMAP:
        return sys_mmap(mm, a[0], a[1], a[2], a[3], arg, a[5])
    if op == MUNMAP:
        return sys_munmap(mm, a[0], a[1])
    if op == MPROTECT:
        return sys_mprotect(mm, a[0], a[1], a[2])
    if op == MADVISE:
        return sys_madvise(mm, a[0], a[1], <int>a[2])
    if op == PROCESS_MADVISE:
        return sys_process_madvise(mm, arg, <int>a[1], a[2])
    if op == MREMAP:
        return sys_mremap(mm, a[0], a[1], a[2], a[3], a[4])
    if op == MLOCK:
        return sys_mlock(mm, a[0], a[1], a[2])
    if op == MUNLOCK:
        return sys_munlock(mm, a[0], a[1])
    if op == MLOCKALL:
        return sys_mlockall(mm, a[0])
    if op == MUNLOCKALL:
        return sys_munlockall(mm)
    if op == MSEAL:
        return sys_mseal(mm, a[0], a[1], a[2])
    if op == BRK:
        return sys_brk(mm, a[0])
    if op == ANON_NAME:
        return sys_set_anon_name(mm, a[0], a[1], arg)
    return sys_touch(mm, a[0], a[1], a[2] != 0)          # TOUCH: check() allows no other op
