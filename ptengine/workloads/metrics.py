"""What a workload run costs: syscalls by name and mmap-lock mode, VMAs, page tables
(mm/madvise.c:get_lock_mode() for the lock kinds).

`CountingMM` wraps any MM (the simulator's or `ptengine.live`'s) and counts every
syscall-shaped call it forwards, classified by how the kernel takes the mmap lock.
`Snapshot` reads the state the kernel reports for one or more processes.
"""
import dataclasses
from collections import defaultdict

from ..callkind import (ADVICE_NAMES, READ_LOCKED_CALLS, WRITE_LOCKED_CALLS, call_kind,
                        error_label)

# sizeof(struct vm_area_struct) on the reference kernel: the object size of the
# `vm_area_struct` slab cache in /proc/slabinfo on the project's 6.18.44 x86-64 test box
# (192 bytes; 21 objects per 4 KiB slab). It varies with kernel config (per-VMA locks,
# NUMA, userfaultfd); the maple-tree slot each VMA also needs (maple_node is 256 bytes
# for up to 16 slots) is not included.
VMA_STRUCT_BYTES = 192


@dataclasses.dataclass
class CallRecord:
    """One forwarded call, kept for the last call so that a failure can say where it was."""
    name: str
    args: tuple

    def describe(self):
        if self.name in ("madvise", "process_madvise"):
            shown = list(self.args[:-1]) + [f"MADV_{ADVICE_NAMES.get(self.args[-1], self.args[-1])}"]
        else:
            shown = list(self.args)
        parts = []
        for a in shown:
            if isinstance(a, int) and a > 0xFFFF:
                parts.append(hex(a))
            elif isinstance(a, (list, tuple)) and len(a) > 2:
                parts.append(f"<{len(a)} iovecs>")
            else:
                parts.append(repr(a) if isinstance(a, str) else str(a))
        return f"{self.name}({', '.join(parts)})"


class SyscallCounter:
    """Counts shared by every process of one run (fork hands it to the child).

    The counts are defaultdict(int), not Counter: Counter defines __delitem__ in Python,
    which routes every store through a Python-level slot (~1,000 instructions per `+= 1`,
    measured with callgrind; a run makes two per call)."""

    def __init__(self):
        self.by_name = defaultdict(int)     # "madvise(GUARD_INSTALL)", "mmap", ...
        self.by_lock = defaultdict(int)     # "write" / "read" / "none"
        self.errors = defaultdict(int)      # "set_anon_name: EINVAL", ...
        self.iovecs = 0               # ranges carried by process_madvise calls
        self.last_call = None         # (name, args) of the last call issued
        self.failed_map_count = None  # map_count of the process when a call last failed

    @property
    def last(self):
        """CallRecord of the last call issued, or None."""
        return None if self.last_call is None else CallRecord(*self.last_call)

    @property
    def total(self):
        return sum(self.by_lock.values())

    def as_dict(self):
        return {"total": self.total, "write_locked": self.by_lock["write"],
                "read_locked": self.by_lock["read"], "unlocked": self.by_lock["none"],
                "by_name": {k: v for k, v in sorted(self.by_name.items()) if v},
                "process_madvise_iovecs": self.iovecs,
                "failed": {k: v for k, v in sorted(self.errors.items()) if v}}


def _counted(name):
    advised = name in ("madvise", "process_madvise")
    # (label, lock mode) per advice value: worked out once, as a call costs about as much
    # as the simulated syscall it counts (a run makes millions).
    kinds = {}

    def kind(args):
        advice = args[-1]
        if advice not in kinds:
            kinds[advice] = call_kind(name, advice)
        return kinds[advice]

    fixed = None if advised else call_kind(name)

    def call(self, *args, **kwargs):
        counter = self.counter
        counter.last_call = (name, args)
        label, mode = kind(args) if advised else fixed
        counter.by_lock[mode] += 1
        counter.by_name[label] += 1
        if name == "process_madvise":
            counter.iovecs += len(args[0])
        method = self.methods.get(name) or _method(self, name)
        try:
            return method(*args, **kwargs)
        except OSError as e:
            counter.errors[error_label(name, e.errno)] += 1
            counter.failed_map_count = self.inner.map_count
            raise
    call.__name__ = name
    return call


class CountingMM:
    """An MM that forwards everything to `inner` and counts the syscalls it issues.

    Works over any object with the MM API. User-mode accesses (touch, read, write) are
    page faults, not syscalls, and are forwarded uncounted, as are introspection calls.
    The inner process's methods are looked up once per name and kept (`methods`): a
    lookup and a bound method per call would cost a fifth of a simulated call.
    """

    def __init__(self, inner, counter=None):
        self.inner = inner
        self.counter = counter if counter is not None else SyscallCounter()
        self.methods = {}

    def fork(self):
        """fork(): the child is counted into the same counter (one run, many processes)."""
        return CountingMM(_counted("fork")(self), self.counter)

    def touch(self, addr, size=1, *, write=False):
        """A user access, uncounted; forwarded here rather than through __getattr__,
        which Python reaches only after making an AttributeError (a run touches once per
        object it creates)."""
        return _method(self, "touch")(addr, size, write=write)

    @property
    def map_count(self):
        return self.inner.map_count

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _method(counted, name):
    """The inner process's method `name`, looked up once per CountingMM."""
    methods = counted.methods
    method = methods.get(name)
    if method is None:
        method = methods[name] = getattr(counted.inner, name)
    return method


for _name in WRITE_LOCKED_CALLS + READ_LOCKED_CALLS + ("madvise", "process_madvise"):
    if _name != "fork":
        setattr(CountingMM, _name, _counted(_name))
del _name


@dataclasses.dataclass
class Snapshot:
    """What /proc shows for a set of processes: summed over them."""
    map_count: int = 0
    maps_lines: int = 0
    vm_pte_kb: int = 0
    processes: int = 0

    @classmethod
    def of(cls, mms):
        snap = cls()
        for mm in mms:
            snap.map_count += mm.map_count
            counter = getattr(mm, "maps_line_count", None)
            snap.maps_lines += counter() if counter else len(mm.maps().splitlines())
            snap.vm_pte_kb += int(mm.status()["VmPTE"])
            snap.processes += 1
        return snap

    def __sub__(self, other):
        return Snapshot(self.map_count - other.map_count, self.maps_lines - other.maps_lines,
                        self.vm_pte_kb - other.vm_pte_kb, self.processes)

    def times(self, n):
        """The same state counted n times (the baseline of n processes made alike)."""
        return Snapshot(self.map_count * n, self.maps_lines * n, self.vm_pte_kb * n, n)

    def as_dict(self):
        return {"map_count": self.map_count, "maps_lines": self.maps_lines,
                "vm_pte_bytes": self.vm_pte_kb * 1024,
                "vma_bytes": self.map_count * VMA_STRUCT_BYTES, "processes": self.processes}
