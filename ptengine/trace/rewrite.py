"""What-if: replay a program as if it used guard markers instead of PROT_NONE guard VMAs
(mirrors no kernel file).

The replayer runs the log as recorded except for the PROT_NONE idioms of private
anonymous memory, which it turns into what glibc 2.42 does for thread stacks (map the
stack read-write and MADV_GUARD_INSTALL its guard), generalised:

  thread stack   mmap(PROT_NONE) followed by the same thread's mprotect of all of it above
                 a guard at its low end -> mmap with the mprotect's protection + guard
                 install of the guard
                 (glibc <= 2.41 allocate_stack(); the mprotect is absorbed);
  reservation    any other mmap(PROT_NONE) -> mmap read-write + guard install over all of
                 it; a later mprotect that opens a piece -> guard remove of the piece (and
                 the mprotect only if the protection is not read-write);
  guard page     mprotect(PROT_NONE) of private anonymous memory -> guard install.

Shared and file mappings, and everything else, replay unchanged. Addresses do not move:
a guard marker occupies the same range the PROT_NONE VMA did, so the log's placements
still hold and are still checked. `guard_batched` queues the guard calls and issues them
as process_madvise batches (up to UIO_MAXIOV ranges) right before the next call that is
not part of an idiom, as a batching runtime would.
"""
import collections

from .. import constants as C
from ..constants import PAGE_IS_GUARD
from . import strace as S
from .replayer import Replayer

STRATEGIES = ("guard", "guard_batched")
UIO_MAXIOV = 1024
RW = C.PROT_READ | C.PROT_WRITE


class GuardRewrite(Replayer):
    """A Replayer whose PROT_NONE idioms become guard markers (see the module doc)."""

    CHECK_MAPS_READS = False

    def __init__(self, calls, *, strategy="guard", **options):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        super().__init__(calls, **options)
        self.batched = strategy == "guard_batched"
        self.queue = []                  # (advice, addr, length) waiting for a batch
        self.absorbed = set()            # indices of mprotects folded into a stack mmap
        self.rewrites = collections.Counter()
        self._next_of = _next_same_thread(calls, self.order)
        self._index = {id(c): k for k, c in enumerate(calls)}

    # --- issuing guard calls ------------------------------------------------------------
    def _guard(self, advice, addr, length):
        if length <= 0:
            return
        if not self.batched:
            self.counted.madvise(addr, length, advice)
            return
        if self.queue and (self.queue[0][0] != advice or len(self.queue) == UIO_MAXIOV):
            self._flush()
        self.queue.append((advice, addr, length))

    def _flush(self):
        if self.queue:
            advice = self.queue[0][0]
            vec = [(a, n) for _, a, n in self.queue]
            self.queue = []
            self.counted.process_madvise(vec, advice)

    def run(self):
        result = super().run()
        if self.mm is not None:
            self._flush()
        result.rewrites = self.rewrites
        result.mm = self.mm
        return result

    # --- the rewritten handlers ---------------------------------------------------------
    def _private_anon(self, flags):
        return flags & C.MAP_ANONYMOUS and flags & C.MAP_TYPE == C.MAP_PRIVATE

    def _mmap(self, call):
        a = call.args
        prot, flags = S.flags(a[2]), S.flags(a[3])
        if prot != C.PROT_NONE or not self._private_anon(flags) or \
                call.ret is None or call.ret < 0:
            self._flush()
            return Replayer._mmap(self, call)
        self._flush()
        addr, length = S.value(a[0]), S.value(a[1])
        stack = self._stack_idiom(call, length)
        if stack is not None:
            k, opened_prot, guard_lo, guard_len = stack
            self.absorbed.add(k)
            ret = self.counted.mmap(addr, length, opened_prot, flags)
            self._guard(C.MADV_GUARD_INSTALL, ret + guard_lo, guard_len)
            self.rewrites["thread stack"] += 1
        else:
            ret = self.counted.mmap(addr, length, RW, flags)
            self._guard(C.MADV_GUARD_INSTALL, ret, length)
            self.rewrites["reservation"] += 1
        if self.faults != "none" and stack is not None:
            self._first_write(ret, ret + length, stack=True)
        return ret

    def _stack_idiom(self, call, length):
        """(index, prot, guard offset, guard length) if the same thread's next call is an
        mprotect opening all of the new mapping above its low end (glibc's
        allocate_stack())."""
        k = self._next_of.get(id(call))
        if k is None:
            return None
        nxt = self.calls[k]
        if nxt.name != "mprotect" or nxt.ret != 0:
            return None
        start, n, prot = S.value(nxt.args[0]), S.value(nxt.args[1]), S.flags(nxt.args[2])
        base = call.ret
        if prot == C.PROT_NONE or not 0 < n < length:
            return None
        # The guard below the stack (stacks grow down; glibc's guard is at the low end).
        # An mprotect from the start of the mapping is a reservation being opened.
        if start + n == base + length and start > base:
            return k, prot, 0, start - base
        return None

    def _mprotect(self, call):
        if self._index[id(call)] in self.absorbed:
            return 0                     # the stack mmap already gave this protection
        a = call.args
        addr, length, prot = S.value(a[0]), S.value(a[1]), S.flags(a[2])
        end = addr + ((length + C.PAGE_SIZE - 1) & ~(C.PAGE_SIZE - 1))
        vmas = self._vmas(addr, end)
        private_anon = vmas and all(v.file is None and not v.flags & C.VM_SHARED
                                    and not v.flags & C.VM_MAYSHARE
                                    and getattr(v, "special_name", None) is None
                                    for v in vmas) and not addr & (C.PAGE_SIZE - 1)
        if prot == C.PROT_NONE and private_anon and _covered(vmas, addr, end):
            self._guard(C.MADV_GUARD_INSTALL, addr, end - addr)
            self.rewrites["guard page"] += 1
            return 0
        if any(a < end and addr < a + n for _, a, n in self.queue):
            self._flush()              # the guards this call opens must be there first
        guards = self.mm.pagemap_scan(addr & ~(C.PAGE_SIZE - 1), end,
                                      category_mask=PAGE_IS_GUARD,
                                      return_mask=PAGE_IS_GUARD) if private_anon else []
        if not guards:
            self._flush()
            return Replayer._mprotect(self, call)
        for lo, hi, _ in guards:
            self._guard(C.MADV_GUARD_REMOVE, lo, hi - lo)
        self.rewrites["opened"] += 1
        if any(_prot(v.flags) != prot for v in vmas):
            self._flush()
            return self.counted.mprotect(addr, length, prot) or 0
        return 0


def _prot(flags):
    return ((C.PROT_READ if flags & C.VM_READ else 0) | (C.PROT_WRITE if flags & C.VM_WRITE else 0)
            | (C.PROT_EXEC if flags & C.VM_EXEC else 0))


def _covered(vmas, start, end):
    at = start
    for v in vmas:
        if v.start > at:
            return False
        at = v.end
    return at >= end


def _next_same_thread(calls, order):
    """id(call) -> index of the same thread's next address-space call, in `order`."""
    out, last = {}, {}
    for k in order:
        c = calls[k]
        if c.name not in Replayer.HANDLERS or Replayer.HANDLERS[c.name] is Replayer._bookkeeping:
            continue
        prev = last.get(c.pid)
        if prev is not None:
            out[id(prev)] = k
        last[c.pid] = c
    return out


def _flushing(handler):
    """A call that is not part of an idiom: the batch waiting so far goes first."""
    def call(self, c):
        self._flush()
        return handler(self, c)
    return call


GuardRewrite.HANDLERS = {name: h if h is Replayer._bookkeeping else _flushing(h)
                         for name, h in Replayer.HANDLERS.items()}
GuardRewrite.HANDLERS.update(mmap=GuardRewrite._mmap, mprotect=GuardRewrite._mprotect)
