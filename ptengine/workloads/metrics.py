"""What a workload run costs: syscalls by name and mmap-lock mode, VMAs, page tables.

`CountingMM` wraps any MM (the simulator's or `ptengine.live`'s) and counts every
syscall-shaped call it forwards, classified by how the kernel takes the mmap lock.
`Snapshot` reads the state the kernel reports for one or more processes.
"""
import dataclasses
from collections import Counter

from .. import constants as C
from ..errors import ERRNO_NAMES

# sizeof(struct vm_area_struct) on the reference kernel: the object size of the
# `vm_area_struct` slab cache in /proc/slabinfo on the project's 6.18.44 x86-64 test box
# (192 bytes; 21 objects per 4 KiB slab). It varies with kernel config (per-VMA locks,
# NUMA, userfaultfd); the maple-tree slot each VMA also needs (maple_node is 256 bytes
# for up to 16 slots) is not included.
VMA_STRUCT_BYTES = 192

# mm/madvise.c (6.18), get_lock_mode()/madvise_need_mmap_write(): these advice values run
# under the mmap read lock (or a per-VMA read lock); every other advice may change
# vm_flags and takes the mmap write lock. HWPOISON/SOFT_OFFLINE take no mmap lock.
READ_LOCKED_ADVICE = frozenset({
    C.MADV_REMOVE, C.MADV_WILLNEED, C.MADV_DONTNEED, C.MADV_DONTNEED_LOCKED, C.MADV_FREE,
    C.MADV_COLD, C.MADV_PAGEOUT, C.MADV_POPULATE_READ, C.MADV_POPULATE_WRITE,
    C.MADV_COLLAPSE, C.MADV_GUARD_INSTALL, C.MADV_GUARD_REMOVE,
})
UNLOCKED_ADVICE = frozenset({C.MADV_HWPOISON, C.MADV_SOFT_OFFLINE})

# Calls that always take the mmap write lock: they create, split, merge or re-flag VMAs.
# prctl(PR_SET_VMA_ANON_NAME) is set_anon_name; fork's dup_mmap() write-locks the parent.
WRITE_LOCKED_CALLS = ("mmap", "munmap", "mprotect", "mremap", "brk", "mlock", "munlock",
                      "mlockall", "munlockall", "mseal", "set_anon_name", "fork", "exit")
# UFFDIO_POISON installs markers under the mmap read lock.
READ_LOCKED_CALLS = ("install_poison",)

ADVICE_NAMES = {getattr(C, n): n[len("MADV_"):] for n in dir(C) if n.startswith("MADV_")}


def lock_mode(name, args):
    """'write', 'read' or 'none': how the kernel takes the mmap lock for this call."""
    if name in ("madvise", "process_madvise"):
        advice = args[-1]
        if advice in READ_LOCKED_ADVICE:
            return "read"
        return "none" if advice in UNLOCKED_ADVICE else "write"
    return "read" if name in READ_LOCKED_CALLS else "write"


def call_kind(name, advice=None):
    """(label, lock mode) under which a call is counted: "madvise(GUARD_INSTALL)" for the
    advised calls (by their advice), the name for the others."""
    if name in ("madvise", "process_madvise"):
        return f"{name}({ADVICE_NAMES.get(advice, advice)})", lock_mode(name, (advice,))
    return name, lock_mode(name, ())


def error_label(name, err):
    """How a failed call is counted: "set_anon_name: EINVAL"."""
    return f"{name}: {ERRNO_NAMES.get(err, err)}"


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
    """Counts shared by every process of one run (fork hands it to the child)."""

    def __init__(self):
        self.by_name = Counter()      # "madvise(GUARD_INSTALL)", "mmap", ...
        self.by_lock = Counter()      # "write" / "read" / "none"
        self.errors = Counter()       # "set_anon_name: EINVAL", ...
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
                "by_name": dict(sorted(self.by_name.items())),
                "process_madvise_iovecs": self.iovecs,
                "failed": dict(sorted(self.errors.items()))}


def _counted(name):
    advised = name in ("madvise", "process_madvise")
    # (label, lock mode) per advice value: worked out once, as a call costs about as much
    # as the simulated syscall it counts.
    kinds = {}

    def kind(args):
        advice = args[-1] if advised else None
        if advice not in kinds:
            kinds[advice] = call_kind(name, advice)
        return kinds[advice]

    def call(self, *args, **kwargs):
        counter = self.counter
        counter.last_call = (name, args)
        label, mode = kind(args)
        counter.by_lock[mode] += 1
        counter.by_name[label] += 1
        if name == "process_madvise":
            counter.iovecs += len(args[0])
        try:
            return getattr(self.inner, name)(*args, **kwargs)
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
    """

    def __init__(self, inner, counter=None):
        self.inner = inner
        self.counter = counter if counter is not None else SyscallCounter()

    def fork(self):
        """fork(): the child is counted into the same counter (one run, many processes)."""
        return CountingMM(_counted("fork")(self), self.counter)

    @property
    def map_count(self):
        return self.inner.map_count

    def __getattr__(self, name):
        return getattr(self.inner, name)


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
