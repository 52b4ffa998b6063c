"""Building blocks for workload models: a guarded mapping under each guard strategy
(mirrors no kernel file).

A guard strategy is how software makes a range inaccessible:

- ``prot_none``: a PROT_NONE VMA (mmap PROT_NONE, or mprotect). One VMA per guard, and
  every change takes the mmap write lock.
- ``guard``: MADV_GUARD_INSTALL markers in the page tables, one madvise per guard range,
  under the mmap read lock. No VMA, but PTE tables.
- ``guard_batched``: the same markers, installed with process_madvise(), up to
  UIO_MAXIOV (1024) ranges per call; the model decides where the batch must be flushed.

A model defines a new workload from these in a few lines, e.g. a fiber stack::

    m = guarded_mapping(mm, 320 * KiB, PAGE_SIZE, 0, strategy, batcher=batcher)
    ...
    release(mm, m, batcher)
"""
import dataclasses
import enum

from .. import constants as C
from .recorder import tolerant

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
RW = C.PROT_READ | C.PROT_WRITE
ANON = C.MAP_PRIVATE | C.MAP_ANONYMOUS


class Strategy(str, enum.Enum):
    PROT_NONE = "prot_none"
    GUARD = "guard"
    GUARD_BATCHED = "guard_batched"

    @property
    def markers(self):
        """True when guards are page-table markers rather than PROT_NONE VMAs."""
        return self is not Strategy.PROT_NONE

    def __str__(self):
        return self.value


STRATEGIES = tuple(Strategy)


def page_align(n):
    return (n + C.PAGE_SIZE - 1) & ~(C.PAGE_SIZE - 1)


class Batcher:
    """Collects (addr, length) ranges and applies one advice to them with process_madvise.

    Flushes by itself when UIO_MAXIOV ranges are pending; `flush()` is the model's sync
    point (the guards must exist from then on). Ranges of a mapping released before the
    flush are dropped with `discard()`: munmap would have removed the markers anyway.
    """

    order = 0                        # the runner's flush order among its batchers

    def __init__(self, mm, advice=C.MADV_GUARD_INSTALL, max_iov=C.UIO_MAXIOV, waiting=None):
        self.mm = mm
        self.advice = advice
        self.max_iov = max_iov
        self.pending = {}            # addr -> length, in insertion order
        self.failed = []             # the ranges a failed flush left undone
        self.waiting = waiting       # a set the batcher joins while it has ranges pending

    def add(self, addr, length):
        if length:
            if not self.pending and self.waiting is not None:
                self.waiting.add(self)
            self.pending[addr] = length
            if len(self.pending) >= self.max_iov:
                self.flush()

    def discard(self, addr):
        self.pending.pop(addr, None)

    def flush(self, mm=None):
        """Issue the pending ranges (on `mm`, a view of the batcher's process such as
        recorder.handled(), if given). process_madvise() may advise fewer bytes than asked
        (the iovec total is capped at MAX_RW_COUNT, just under 2 GiB), so the rest is
        re-issued, as a write() loop would; a recorder does that loop in one row. On
        failure the ranges not done are left in `failed` and the OSError propagates (a
        model may fall back, as glibc does)."""
        mm = mm or self.mm
        iovecs = list(self.pending.items())
        self.pending = {}
        restarting = getattr(mm, "process_madvise_restarting", None)
        if restarting is not None:
            if iovecs:                  # (the loop below makes no call for none either)
                restarting(iovecs, self.advice)
            return
        self.failed = iovecs
        while iovecs:
            done = mm.process_madvise(iovecs, self.advice)
            if done is None:                        # a backend that reports nothing
                break
            if done <= 0:
                raise RuntimeError(f"process_madvise advised {done} bytes of {len(iovecs)} ranges")
            iovecs = advance_iovecs(iovecs, done)
            self.failed = iovecs
        self.failed = []

    def __len__(self):
        return len(self.pending)


def advance_iovecs(iovecs, done):
    """The (addr, length) ranges left after the first `done` bytes were processed."""
    for i, (addr, length) in enumerate(iovecs):
        if done < length:
            return [(addr + done, length - done)] + list(iovecs[i + 1:])
        done -= length
    return []


@dataclasses.dataclass
class Guarded:
    """A mapping laid out [guard_low][data][guard_high] from `addr`."""
    addr: int
    size: int                      # data bytes (page aligned)
    guard_low: int
    guard_high: int
    strategy: Strategy

    @property
    def data(self):
        return self.addr + self.guard_low

    @property
    def total(self):
        return self.guard_low + self.size + self.guard_high

    @property
    def end(self):
        return self.addr + self.total

    def guards(self):
        """The guard ranges, (addr, length), non-empty only."""
        out = []
        if self.guard_low:
            out.append((self.addr, self.guard_low))
        if self.guard_high:
            out.append((self.data + self.size, self.guard_high))
        return out


def set_guard(mm, addr, length, strategy, batcher=None):
    """Make [addr, addr+length) of an accessible mapping a guard."""
    if strategy is Strategy.PROT_NONE:
        mm.mprotect(addr, length, C.PROT_NONE)
    elif strategy is Strategy.GUARD_BATCHED and batcher is not None:
        batcher.add(addr, length)
    else:
        mm.madvise(addr, length, C.MADV_GUARD_INSTALL)


def clear_guard(mm, addr, length, strategy, prot=RW, batcher=None):
    """Make a guard made by `set_guard` accessible again with `prot`."""
    if strategy is Strategy.PROT_NONE:
        mm.mprotect(addr, length, prot)
    elif strategy is Strategy.GUARD_BATCHED and batcher is not None:
        batcher.add(addr, length)
    else:
        mm.madvise(addr, length, C.MADV_GUARD_REMOVE)


def name_vma(mm, addr, length, name):
    """prctl(PR_SET_VMA_ANON_NAME), best effort as glibc and bionic do it: they ignore the
    error of a kernel built without CONFIG_ANON_VMA_NAME (EINVAL). Returns success (True
    under a recorder, where the call is a tolerated row whose result comes later)."""
    try:
        tolerant(mm).set_anon_name(addr, length, name)
        return True
    except OSError:
        return False


def guarded_mapping(mm, size, guard_low=C.PAGE_SIZE, guard_high=0, strategy=Strategy.GUARD,
                    name=None, *, batcher=None, prot=RW, flags=ANON, touch_pages=0):
    """Map [guard_low][size][guard_high] anywhere, the way each strategy builds it.

    - prot_none: mmap the whole PROT_NONE, then mprotect the data part to `prot` (glibc
      <= 2.41, musl, bionic, scudo, hardened_malloc all reserve first, then open up).
    - guard / guard_batched: mmap the whole with `prot`, then install markers on the guards.

    `name` labels the accessible part: the data alone under prot_none (the guards stay
    separate VMAs anyway), the whole mapping under markers, so that the guards do not split
    the VMA (as glibc 2.42's name_stack_maps() does). `touch_pages` pages at the top of
    the data are written (a thread's TCB, an allocator's header).
    """
    size = page_align(size)
    m = Guarded(0, size, page_align(guard_low), page_align(guard_high), Strategy(strategy))
    if m.strategy is Strategy.PROT_NONE:
        m.addr = mm.mmap(0, m.total, C.PROT_NONE, flags)
        mm.mprotect(m.data, size, prot)
        if name is not None:
            name_vma(mm, m.data, size, name)
    else:
        m.addr = mm.mmap(0, m.total, prot, flags)
        for addr, length in m.guards():
            set_guard(mm, addr, length, m.strategy, batcher)
        if name is not None:
            name_vma(mm, m.addr, m.total, name)
    touch_top(mm, m.data, size, touch_pages)
    return m


def touch_top(mm, data, size, pages):
    """Write `pages` pages at the top of [data, data+size): where a stack's TCB lives."""
    if pages:
        length = min(pages * C.PAGE_SIZE, size)
        mm.touch(data + (size - length), length, write=True)


def release(mm, m, batcher=None):
    """munmap a mapping made by `guarded_mapping` (dropping guards still pending)."""
    if batcher is not None:
        for addr, _ in m.guards():
            batcher.discard(addr)
    mm.munmap(m.addr, m.total)
