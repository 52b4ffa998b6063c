"""A recorded model run as one array of calls (ptengine.calls.CALL_DTYPE).

The runner records every call a model makes and what it returned (runner.RecordingMM).
`from_log()` turns that log into the rows a batch executor runs (`mm.batch` on the
simulator, `LiveMM.batch` in the host kernel's server), so one array is what a model "is"
for timing: both backends run the same calls back to back, with no Python between them.

Addresses are written relative to the rows that produced them: an argument inside a range
an earlier mmap or mremap returned, and still mapped there when the call is made, becomes
`ref` (that row) plus the offset from the address the row returned (a REL bit). A fresh
process whose placement differs still runs the same calls on the same mappings; where it
places alike (the simulator mirrors the kernel's top-down placement), the results equal
the recorded ones, which `expected` holds for `batch(..., stop=expected)`.
Calls that failed and that the model went on after (glibc ignoring the error of its exit
DONTNEED, a name on a kernel without CONFIG_ANON_VMA_NAME) carry TOLERATE. Addresses in
the heap stay absolute: brk returns the new break, not a range.
"""
import bisect
import dataclasses

import numpy as np

from ..calls import CALL_DTYPE, FLAG_TOLERATE, CallOp

ANONYMOUS = 2**64 - 1             # fd_index of an anonymous mmap
MASK = 2**64 - 1

# The log's call names -> (op, the argument positions that hold addresses).
OPS = {
    "mmap": (CallOp.MMAP, (0,)), "munmap": (CallOp.MUNMAP, (0,)),
    "mprotect": (CallOp.MPROTECT, (0,)), "madvise": (CallOp.MADVISE, (0,)),
    "mremap": (CallOp.MREMAP, (0, 4)), "mlock": (CallOp.MLOCK, (0,)),
    "munlock": (CallOp.MUNLOCK, (0,)), "mlockall": (CallOp.MLOCKALL, ()),
    "munlockall": (CallOp.MUNLOCKALL, ()), "mseal": (CallOp.MSEAL, (0,)),
    "brk": (CallOp.BRK, ()), "set_anon_name": (CallOp.ANON_NAME, (0,)),
    "touch": (CallOp.TOUCH, (0,)),
}
# Calls with optional trailing arguments: (how many are required, the methods' defaults
# of the rest), so that a row always carries every argument in API order.
OPTIONAL = {"mmap": (4, (None, 0)), "mremap": (3, (0, 0)), "mlock": (2, (0,)),
            "mseal": (2, (0,)), "touch": (1, (1, False))}


@dataclasses.dataclass
class CallArray:
    """One run's calls: rows, the results the recorded run got, and the tables the rows
    index (files for mmap's fd_index, names for set_anon_name's name_index + 1)."""
    calls: object                 # numpy array of CALL_DTYPE
    expected: object              # numpy int64 array, one result per row
    files: list
    names: list

    def __len__(self):
        return len(self.calls)

    def run(self, mm, stop="expected", counter=None):
        """(results, ns) of this array run as one batch on `mm` (a fresh process of
        either backend); stop="expected" stops at the first result that differs."""
        return mm.batch(self.calls, files=self.files or None, names=self.names or None,
                        stop=self.expected if stop == "expected" else stop, counter=counter)

    def first_difference(self, results):
        """The index of the first row whose result differs from the recorded one, or None."""
        differ = np.flatnonzero(np.asarray(results) != self.expected)
        return int(differ[0]) if len(differ) else None


class Regions:
    """Which row's result each mapped address range comes from: (start, end, row, base),
    kept sorted by descending start (placement is top-down, so a new mapping is usually
    the lowest and goes at the end of the lists)."""

    def __init__(self):
        self.keys = []            # -start, ascending
        self.spans = []           # (start, end, row, base) in the same order

    def find(self, addr):
        """(row, base) of the range holding addr, or None."""
        i = bisect.bisect_left(self.keys, -addr)
        if i < len(self.spans):
            start, end, row, base = self.spans[i]
            if start <= addr < end:
                return row, base
        return None

    def remove(self, start, end):
        """Forget [start, end): trims or splits the ranges it overlaps."""
        if end <= start:
            return
        i = bisect.bisect_left(self.keys, -(end - 1))    # the first range starting below end
        kept = []
        j = i
        while j < len(self.spans) and self.spans[j][1] > start:
            s, e, row, base = self.spans[j]
            if e > end:
                kept.append((end, e, row, base))
            if s < start:
                kept.append((s, start, row, base))
            j += 1
        self.spans[i:j] = kept
        self.keys[i:j] = [-s for s, *_ in kept]

    def add(self, start, end, row, base):
        self.remove(start, end)
        i = bisect.bisect_left(self.keys, -start)
        self.keys.insert(i, -start)
        self.spans.insert(i, (start, end, row, base))


def _page_end(addr, length):
    return (addr + length + 4095) & ~4095


def from_log(log, *, stopped=False):
    """The CallArray of a RecordingMM log [(name, args, result)]. `stopped`: the run ended
    at its last call's error (a Limit); every other failed call was tolerated."""
    names, name_index = [], {}
    regions = Regions()
    ops, flags, refs, args, expected = [], [], [], [], []
    last = len(log) - 1

    def row(op, a, result, addr_at, tolerate):
        ref, base = -1, 0
        rel = 0
        for k in addr_at:
            hit = regions.find(a[k])
            if hit is None or (ref >= 0 and hit[0] != ref):
                continue
            ref, base = hit
            a[k] = (a[k] - base) & MASK
            rel |= 1 << k
        ops.append(op)
        flags.append(rel | (FLAG_TOLERATE if tolerate else 0))
        refs.append(ref)
        args.append(a + [0] * (6 - len(a)))
        expected.append(result)

    for i, (name, call_args, result) in enumerate(log):
        tolerate = result < 0 and not (stopped and i == last)
        n = len(ops)
        if name == "process_madvise":
            iovecs, advice, *rest = call_args
            iov_flags = rest[0] if rest else 0
            row(CallOp.PROCESS_MADVISE, [len(iovecs), advice, iov_flags], result, (), tolerate)
            for base, length in iovecs:
                row(CallOp.IOVEC, [base, length], 0, (0,), False)
            continue
        if name not in OPS:
            raise ValueError(f"a {name}() cannot be a row of this session's arrays "
                             "(one process only: fork and exit rows are later work)")
        op, addr_at = OPS[name]
        required, defaults = OPTIONAL.get(name, (len(call_args), ()))
        a = list(call_args) + list(defaults[len(call_args) - required:])
        if name == "mmap":
            if a[4] is not None:
                raise ValueError("file mappings are not recorded into arrays yet")
            a[4] = ANONYMOUS
        elif name == "set_anon_name":
            label = a[2]
            if label is None:
                a[2] = 0
            else:
                if label not in name_index:
                    name_index[label] = len(names)
                    names.append(label)
                a[2] = name_index[label] + 1
        elif name == "touch":
            a[2] = int(bool(a[2]))
        row(op, [int(x) & MASK for x in a], result, addr_at, tolerate)
        if result < 0:
            continue
        if name == "mmap":
            regions.add(result, _page_end(result, a[1]), n, result)
        elif name == "munmap":
            regions.remove(call_args[0], _page_end(call_args[0], call_args[1]))
        elif name == "mremap":
            regions.remove(call_args[0], _page_end(call_args[0], call_args[1]))
            regions.add(result, _page_end(result, a[2]), n, result)

    out = np.zeros(len(ops), dtype=CALL_DTYPE)
    out["op"] = ops
    out["flags"] = flags
    out["ref"] = refs
    if ops:
        out["a"] = np.array(args, dtype=np.uint64)
    return CallArray(out, np.array(expected, dtype=np.int64), [], names)

