"""The deterministic figures: fixed scenarios and every workload model (mirrors no kernel file).

Each scenario is a fixed call sequence on a fresh process; its figures are what /proc shows
of the processes it leaves (VMA count, VmPTE, RSS, guard pages) with the syscalls it made
and the errors it got, counted by workloads.metrics.CountingMM as a workload run counts
them. The workload figures are every model under every strategy at its suite size, the
scale parameter capped at WORKLOAD_SCALE.
"""
import collections

from .. import constants as C
from ..system import System
from ..workloads import STRATEGIES, WORKLOADS, CountingMM, run

WORKLOAD_SCALE = 50            # cap on each model's scale parameter for the figures
MiB = 1 << 20
RW = C.PROT_READ | C.PROT_WRITE
ANON = C.MAP_PRIVATE | C.MAP_ANONYMOUS


SCENARIOS = {}


def scenario(func):
    """Register func(mm) -> {label: mm} (the processes whose state is the figures)."""
    SCENARIOS[func.__name__] = func
    return func


def _stacks(mm, n, guard):
    """n glibc-style 8 MiB thread stacks with a 4 KiB guard, top page touched."""
    size = 8 * MiB + C.PAGE_SIZE
    for _ in range(n):
        if guard:
            a = mm.mmap(0, size, RW, ANON | C.MAP_STACK)
            mm.madvise(a, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
        else:
            a = mm.mmap(0, size, C.PROT_NONE, ANON | C.MAP_STACK)
            mm.mprotect(a + C.PAGE_SIZE, size - C.PAGE_SIZE, RW)
        mm.touch(a + size - C.PAGE_SIZE, write=True)
    return {"mm": mm}


@scenario
def glibc_stacks_prot_none(mm):
    return _stacks(mm, 200, guard=False)


@scenario
def glibc_stacks_guard(mm):
    return _stacks(mm, 200, guard=True)


@scenario
def populated_guards(mm):
    """256 MiB populated, a guard every 64 KiB (zap and retry), then MADV_DONTNEED of all:
    the markers stay, and so do their tables."""
    size = 256 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a, size, C.MADV_POPULATE_WRITE)
    for off in range(0, size, 64 << 10):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    mm.madvise(a, size, C.MADV_DONTNEED)
    return {"mm": mm}


@scenario
def fork_cow(mm):
    """64 MiB populated with a guard every MiB; fork; the child writes the first half (COW
    copies), the parent drops the second half."""
    size = 64 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.touch(a, size, write=True)
    for off in range(0, size, MiB):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    child = mm.fork()
    for off in range(C.PAGE_SIZE, size // 2, C.PAGE_SIZE):
        if off % MiB:
            child.write(a + off, b"x")
    mm.madvise(a + size // 2, size // 2, C.MADV_DONTNEED)
    return {"parent": mm, "child": child}


@scenario
def mprotect_checkerboard(mm):
    """4 MiB with every other page made read-only (1024 splits), then half restored."""
    size = 4 * MiB
    a = mm.mmap(0, size, RW, ANON)
    for off in range(0, size, 2 * C.PAGE_SIZE):
        mm.mprotect(a + off, C.PAGE_SIZE, C.PROT_READ)
    mm.mprotect(a, size // 2, RW)
    return {"mm": mm}


@scenario
def munmap_holes(mm):
    """64 MiB populated, every other 2 MiB unmapped: tables freed with their ranges."""
    size = 64 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a, size, C.MADV_POPULATE_WRITE)
    for off in range(0, size, 4 * MiB):
        mm.munmap(a + off, 2 * MiB)
    return {"mm": mm}


@scenario
def mremap_guarded(mm):
    """16 MiB populated with a guard every MiB, grown to 32 MiB by a move: the markers
    move with the pages."""
    size = 16 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.touch(a, size, write=True)
    for off in range(0, size, MiB):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    mm.mmap(a + size, C.PAGE_SIZE, C.PROT_READ, ANON | C.MAP_FIXED)   # blocks growing
    mm.mremap(a, size, 2 * size, C.MREMAP_MAYMOVE)
    return {"mm": mm}


@scenario
def locked_guards(mm):
    """mlock over a guard region fails (ENOMEM) with the VMA still locked; guard install
    on a locked VMA fails (EINVAL); guard remove on it works."""
    size = MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a + C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    for call, args in (("mlock", (a, size)),
                       ("madvise", (a + 2 * C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)),
                       ("madvise", (a + C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_REMOVE))):
        try:
            getattr(mm, call)(*args)
        except OSError:
            pass
    return {"mm": mm}


def _guard_pages(mm):
    total = 0
    for v in mm.vmas():
        for start, end, _ in mm.pagemap_scan(v.start, v.end, category_mask=C.PAGE_IS_GUARD,
                                             return_mask=C.PAGE_IS_GUARD):
            total += (end - start) // C.PAGE_SIZE
    return total


def footprint(mm):
    """What /proc shows for one process, in kB as status() gives it."""
    s = mm.status()
    out = {k: int(s[k]) for k in ("VmSize", "VmRSS", "RssAnon", "VmPTE", "VmLck")}
    out["map_count"] = mm.map_count
    out["guard_pages"] = _guard_pages(mm)
    return out


def scenario_figures(names=None):
    figures = {}
    for name, func in SCENARIOS.items():
        if names is not None and name not in names:
            continue
        mm = CountingMM(System().spawn())
        processes = func(mm)
        fig = {label: footprint(p) for label, p in processes.items()}
        fig["syscalls"] = _by_call(mm.counter.by_name)
        fig["errors"] = dict(sorted(mm.counter.errors.items()))
        figures[name] = fig
        for p in processes.values():
            p.exit()
    return figures


def _by_call(by_name):
    """Calls by syscall name: the counter labels madvise calls by advice too
    ("madvise(GUARD_INSTALL)"); the baseline keeps one figure per syscall."""
    out = collections.Counter()
    for label, n in by_name.items():
        out[label.partition("(")[0]] += n
    return dict(sorted(out.items()))


def workload_figures():
    figures = {}
    for name, wl in sorted(WORKLOADS.items()):
        params = wl.params(small=True)
        if isinstance(params.get(wl.scale), int):
            params[wl.scale] = min(params[wl.scale], WORKLOAD_SCALE)
        per = {}
        for strategy in STRATEGIES:
            r = run(name, strategy.value, params)
            delta = r.delta.as_dict()
            per[strategy.value] = {
                "map_count": delta["map_count"], "maps_lines": delta["maps_lines"],
                "vm_pte_bytes": delta["vm_pte_bytes"], "processes": delta["processes"],
                "peak_map_count": r.peak_map_count, "expected_vmas": r.expected_vmas,
                "syscalls": r.syscalls, "limit": r.limit.describe() if r.limit else None,
            }
        figures[name] = {"params": _jsonable(params), "strategies": per}
    return figures


def _jsonable(d):
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
            for k, v in d.items()}
