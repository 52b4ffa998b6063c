"""A recorded model run as one array of calls (calls.CALL_DTYPE; mirrors no kernel file).

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
the heap stay absolute: brk returns the new break, not a range. numpy is imported when an
array is made, as calls.py does (its import starts OpenBLAS threads).
"""
import bisect
import dataclasses

from ..calls import CALL_NAMES, FLAG_TOLERATE, NO_FILE, calls

MASK = 2**64 - 1
OP_OF = {name: op for op, name in CALL_NAMES.items()}
# The argument positions of each call that hold addresses (mremap: old and new_addr).
ADDRESS_ARGS = {"mmap": (0,), "munmap": (0,), "mprotect": (0,), "madvise": (0,),
                "mremap": (0, 4), "mlock": (0,), "munlock": (0,), "mseal": (0,),
                "set_anon_name": (0,), "touch": (0,)}


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
        import numpy as np
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
    tuples, refs, flags, expected = [], [], [], []
    last = len(log) - 1

    def relative(args, addr_at):
        """args with the addresses inside one earlier row's mapping made relative to it:
        (args, ref, REL bits)."""
        args, ref, rel = list(args), -1, 0
        for k in addr_at:
            hit = regions.find(args[k])
            if hit is None or (ref >= 0 and hit[0] != ref):
                continue
            ref, base = hit
            args[k] = (args[k] - base) & MASK
            rel |= 1 << k
        return args, ref, rel

    for i, (name, args, result) in enumerate(log):
        if name not in OP_OF:
            raise ValueError(f"a {name}() cannot be a row of this session's arrays "
                             "(one process only: fork and exit rows are later work)")
        row = len(refs)
        tolerate = FLAG_TOLERATE if result < 0 and not (stopped and i == last) else 0
        if name == "process_madvise":
            iovecs = [relative(iov, (0,)) for iov in args[0]]
            tuples.append((name, [v for v, _, _ in iovecs], *args[1:]))
            refs += [-1] + [ref for _, ref, _ in iovecs]
            flags += [tolerate] + [rel for _, _, rel in iovecs]
            expected += [result] + [0] * len(iovecs)
            continue
        args, ref, rel = relative(args, ADDRESS_ARGS.get(name, ()))
        if name == "mmap":
            if len(args) > 4 and args[4] is not None:
                raise ValueError("file mappings are not recorded into arrays yet")
            args[4:5] = [NO_FILE] if len(args) > 4 else []
        elif name == "set_anon_name":
            label = args[2]
            if label is not None and label not in name_index:
                name_index[label] = len(names)
                names.append(label)
            args[2] = 0 if label is None else name_index[label] + 1
        elif name == "touch":
            args[2] = int(bool(args[2]))
        tuples.append((name, *args))
        refs.append(ref)
        flags.append(rel | tolerate)
        expected.append(result)
        if result < 0:
            continue
        log_args = log[i][1]
        if name == "mmap":
            regions.add(result, _page_end(result, log_args[1]), row, result)
        elif name == "munmap":
            regions.remove(log_args[0], _page_end(log_args[0], log_args[1]))
        elif name == "mremap":
            regions.remove(log_args[0], _page_end(log_args[0], log_args[1]))
            regions.add(result, _page_end(result, log_args[2]), row, result)

    import numpy as np
    out = calls(tuples)
    out["ref"] = refs
    out["flags"] = flags
    return CallArray(out, np.array(expected, dtype=np.int64), [], names)
