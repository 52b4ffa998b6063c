"""Run one workload model under one strategy on one backend, and measure it
(mirrors no kernel file).

A run is a sequence of real calls on an MM; the runner takes a baseline snapshot of the
fresh address space, runs the model, and reports deltas. When a call fails (ENOMEM at
max_map_count, say) the run stops there and the result says where and why: the object
index and phase the model was at, the call, the errno and the map count.
"""
import dataclasses
import gc
import random
import time
import types

from .. import constants as C, live
from ..errors import ERRNO_NAMES, Fault
from ..system import System
from . import arrays, registry
from .blocks import Batcher, Strategy
from .metrics import (READ_LOCKED_CALLS, WRITE_LOCKED_CALLS, CallRecord, CountingMM,
                      Snapshot, SyscallCounter)
from .recorder import Diverged, Extra, Recorder, Session
from .rows import Position


@dataclasses.dataclass
class Limit:
    """Where a run hit a kernel limit (or any failing call) and stopped."""
    phase: str
    index: object                 # the object number within the phase (thread, block...)
    call: str
    errno: int
    map_count: object
    max_map_count: object

    @property
    def errno_name(self):
        return ERRNO_NAMES.get(self.errno, str(self.errno))

    def describe(self):
        where = f"{self.phase} #{self.index}" if self.index is not None else self.phase
        return (f"{self.errno_name} at {where}: {self.call} "
                f"(map_count {self.map_count}, max_map_count {self.max_map_count})")

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["errno_name"] = self.errno_name
        return d


class Run(Position):
    """What a model sees: the counted MM, its parameters, a seeded RNG, sync points; and
    which object of which phase it is at (`phase`, `index`: Position's C fields)."""

    def __init__(self, mm, strategy, params, system=None):
        self.mm = mm
        self.system = system
        self.strategy = Strategy(strategy)
        self.p = types.SimpleNamespace(**params)
        self.rng = random.Random(params.get("seed", 0))
        self.processes = [mm]       # every process whose state the run measures
        self.phase = "setup"
        self.index = None
        self.extra = {}
        self.peak_map_count = 0
        self._batchers = 0              # batchers made so far (their flush order)
        self._waiting = set()           # batchers with ranges pending

    def objects(self, n, phase):
        """range(n), remembering which object of which phase the model is working on."""
        for i in range(n):
            self.phase, self.index = phase, i
            yield i
        self.index = None

    def batcher(self, mm=None, advice=C.MADV_GUARD_INSTALL):
        """A Batcher for `mm` under guard_batched, None otherwise (so models can pass it on
        unconditionally)."""
        if self.strategy is not Strategy.GUARD_BATCHED:
            return None
        b = Batcher(mm or self.mm, advice, waiting=self._waiting)
        b.order = self._batchers
        self._batchers += 1
        return b

    def sync(self):
        """Flush every pending batch, in the order the batchers were made: from here on the
        guards exist. Only the batchers with ranges pending are visited, however many
        processes the run has."""
        waiting = sorted(self._waiting, key=lambda b: b.order)
        self._waiting.clear()
        for b in waiting:
            b.flush()

    def observe(self):
        """Record the peak VMA count over the run's processes (cheap: map_count only)."""
        n = sum(p.map_count for p in self.processes)
        if n > self.peak_map_count:
            self.peak_map_count = n


class RecordingMM:
    """Forwards to `inner` and logs every syscall-shaped call (the ones CountingMM counts)
    and every touch as (name, args, result): the return value (None as 0, a forked child
    as 0), -errno, or a touch's signal number (0 when every page faulted in). With it,
    `compare --live` checks the host kernel's answers call by call against the
    simulator's, not only the state they leave, and the run becomes an array of calls
    (RunResult.array())."""

    def __init__(self, inner, log):
        self.inner = inner
        self.log = log

    @property
    def map_count(self):
        return self.inner.map_count

    def touch(self, addr, size=1, *, write=False):
        args = (addr, size, write)
        try:
            self.inner.touch(addr, size, write=write)
        except Fault as e:
            self.log.append(("touch", args, int(e.signal)))
            raise
        self.log.append(("touch", args, 0))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _recorded(name):
    def call(self, *args, **kwargs):
        try:
            result = getattr(self.inner, name)(*args, **kwargs)
        except OSError as e:
            self.log.append((name, args, -e.errno))
            raise
        self.log.append((name, args, 0 if result is None or name == "fork" else result))
        return RecordingMM(result, self.log) if name == "fork" else result
    call.__name__ = name
    return call


for _name in WRITE_LOCKED_CALLS + READ_LOCKED_CALLS + ("madvise", "process_madvise"):
    setattr(RecordingMM, _name, _recorded(_name))
del _name


def _result_text(value):
    if isinstance(value, int) and value < 0:
        return f"-{ERRNO_NAMES.get(-value, -value)}"
    return hex(value) if isinstance(value, int) and value > 0xFFFF else repr(value)


def _flat(d, prefix=""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def call_mismatches(sim, live):
    """How two runs of one call sequence differ in what the calls returned and in the
    syscall counts: [] when they agree. Names the first call whose result differs."""
    out = []
    s, l = dict(_flat(sim.syscalls)), dict(_flat(live.syscalls))
    counts = [k for k in {**s, **l} if s.get(k, 0) != l.get(k, 0)]
    if counts:
        out.append("syscalls: " + ", ".join(f"{k} sim {s.get(k, 0):,} vs live {l.get(k, 0):,}"
                                            for k in counts[:4]))
    for i, (a, b) in enumerate(zip(sim.calls, live.calls)):
        if a[0] != b[0] or a[2] != b[2]:
            out.append(f"call #{i + 1} {CallRecord(a[0], a[1]).describe()}: sim "
                       f"{_result_text(a[2])} vs live "
                       + (_result_text(b[2]) if a[0] == b[0] else f"call {b[0]}"))
            break
    else:
        if len(sim.calls) != len(live.calls):
            out.append(f"calls: sim made {len(sim.calls):,}, live {len(live.calls):,}")
    return out


@dataclasses.dataclass
class RunResult:
    workload: str
    strategy: str
    backend: str
    params: dict
    scale: int
    baseline: Snapshot
    final: Snapshot
    syscalls: dict
    wall_time: float
    limit: object = None            # Limit | None
    peak_map_count: int = 0         # delta, when the model observes peaks
    expected_vmas: object = None    # the closed form of workloads.md §2, if it has one
    extra: dict = dataclasses.field(default_factory=dict)
    profile: str = "reference"      # the host profile's name: the simulated machine's, or
                                    # "host" for the live kernel
    calls: list = dataclasses.field(default_factory=list)   # with record_calls: the log
    # With batch=True: the run's calls as one array (arrays.CallArray) run by the batch
    # executor of the same backend on a fresh process: its own loop time (the simulator's
    # C loop, the live server's loop: the kernel's cost, no socket round trips), or None
    # with the reason in batch_note (a model that forks).
    batch_ns: object = None
    batch_note: object = None

    @property
    def delta(self):
        return self.final - self.baseline.times(max(self.final.processes, 1))

    def array(self):
        """The run's calls as one arrays.CallArray (needs record_calls): what the model
        is for timing, run as one batch on a fresh process of either backend."""
        return arrays.from_log(self.calls, stopped=self.limit is not None)

    def as_dict(self):
        return {
            "workload": self.workload, "strategy": self.strategy, "backend": self.backend,
            "scale": self.scale, "params": self.params,
            "delta": self.delta.as_dict(), "baseline": self.baseline.as_dict(),
            "final": self.final.as_dict(), "syscalls": self.syscalls,
            "wall_time_s": self.wall_time,
            "batch_time_s": None if self.batch_ns is None else self.batch_ns / 1e9,
            "batch_note": self.batch_note,
            "limit": self.limit.as_dict() if self.limit else None,
            "peak_map_count_delta": self.peak_map_count,
            "expected_vmas": self.expected_vmas, "extra": self.extra,
            "profile": self.profile,
        }


def open_backend(backend="sim", max_map_count=None, system_options=None, profile=None):
    """(system, mm) for 'sim' (ptengine.System under `profile`, with `system_options`) or
    'live' (ptengine.live), or from a factory callable returning that pair."""
    if callable(backend):
        return backend()
    if backend == "sim":
        opts = dict(system_options or {})
        if max_map_count is not None:
            opts["max_map_count"] = max_map_count
        system = System(profile=profile, **opts)
        # A process as exec leaves it ([vvar], [vdso], [stack] touched), so the page
        # tables over the top of the address space exist as they do in a real one.
        return system, system.spawn(exec_layout=True)
    if backend == "live":
        if not live.available():
            raise RuntimeError("ptengine.live is not available on this host "
                               "(MADV_GUARD_INSTALL does not work here)")
        if max_map_count is not None:
            raise ValueError("max_map_count cannot be set on the live backend "
                             "(it is the host's vm.max_map_count)")
        system = live.LiveSystem() if hasattr(live, "LiveSystem") else None
        return system, (system.spawn() if system is not None else live.LiveMM())
    raise ValueError(f"unknown backend {backend!r}")


def close_backend(system, mms):
    """Release live server processes; simulated processes exit (a System warns about
    live processes dropped while it has others)."""
    for obj in list(mms) + [system]:
        end = getattr(obj, "close", None) or getattr(obj, "exit", None)
        if end is not None:
            end()


def _max_map_count(system, backend):
    value = getattr(system, "max_map_count", None)
    if value is None and backend == "live":
        try:
            with open("/proc/sys/vm/max_map_count") as f:
                value = int(f.read())
        except OSError:
            pass
    return value


def run(name, strategy, params=None, *, small=False, backend="sim", max_map_count=None,
        system_options=None, profile=None, record_calls=False, batch=False, batched=None):
    """Run workload `name` under `strategy` and return a RunResult (deltas from the empty
    address space). `backend` is 'sim', 'live', or a factory of (system, mm). The
    simulator runs under `profile` (a HostProfile or a shipped profile's name; default:
    the model's own), changed by `system_options` (e.g. anon_vma_name=False); with
    `record_calls`, RunResult.calls logs every call and its result (see RecordingMM).
    With `batch`, the calls are also timed as one array on a fresh process of the same
    backend (RunResult.batch_ns; implies record_calls). With `batched` (the simulator
    only, without record_calls) the model's calls go to the process as batches
    (workloads/recorder.py), not one method call each; every figure is the same. The
    default (None) is the model's own (Workload.batched) where that is possible: a
    recorded row costs less than a counted method call, but a batch has a fixed cost that
    a model reading state per object would pay per object."""
    wl = registry.get(name)
    strategy = Strategy(strategy)
    p = wl.params(params, small=small)
    profile = wl.profile if profile is None else profile
    record_calls = record_calls or batch
    if batched is None:
        batched = wl.batched and backend == "sim" and not record_calls
    if batched and (backend != "sim" or record_calls):
        raise ValueError("batched runs are the simulator's, without record_calls")
    opened = (backend, max_map_count, system_options, profile)
    try:
        result = _run(wl, strategy, p, opened, record_calls, batched)
    except Diverged:        # a call the model handles failed: the run one call at a time
        result = _run(wl, strategy, p, opened, record_calls, False)
    if batch:
        time_batch(result, lambda: open_backend(*opened))
    return result


def _run(wl, strategy, p, opened, record_calls, batched):
    """run()'s RunResult, the model's calls made on a backend opened with `opened`."""
    backend = opened[0]
    system, raw = open_backend(*opened)
    calls = []
    r = Run(None, strategy, p, system)
    if batched:
        session = Session(r, SyscallCounter())
        mm = r.mm = Recorder(raw, session)
        r.extra = Extra(session)
        counter = session.counter
    else:
        mm = r.mm = CountingMM(RecordingMM(raw, calls) if record_calls else raw)
        counter = mm.counter
    r.processes = [mm]
    backend_name = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
    try:
        baseline = Snapshot.of([mm])
        r.peak_map_count = baseline.map_count
        limit = None
        t0 = time.perf_counter()
        # A run allocates millions of long-lived, acyclic objects (VMAs): the cyclic
        # collector's full passes over them would cost more than the simulation itself.
        collecting = gc.isenabled()
        gc.disable()
        try:
            try:
                wl.func(r)
                r.phase, r.index = "final sync", None
                r.sync()
            finally:
                if batched:
                    session.close()
        except OSError as e:
            if not (batched and session.stopped):
                last = counter.last
                limit = Limit(r.phase, r.index, last.describe() if last else "?", e.errno,
                              counter.failed_map_count, _max_map_count(system, backend_name))
        finally:
            if collecting:
                gc.enable()
        if batched and session.stopped:     # (even if the model caught it)
            stop = session.stopped
            limit = Limit(stop.phase, stop.index, stop.call, stop.errno, stop.map_count,
                          _max_map_count(system, backend_name))
        wall = time.perf_counter() - t0
        final = Snapshot.of(r.processes)
        r.observe()
        peak = r.peak_map_count - baseline.map_count * len(r.processes)
        result = RunResult(wl.name, strategy.value, backend_name, p, p[wl.scale], baseline,
                           final, counter.as_dict(), wall, limit, peak,
                           wl.expected_vmas(strategy, p), dict(r.extra),
                           getattr(getattr(system, "profile", None), "name", "host"),
                           list(calls))     # the run's calls, not the teardown's exits
    finally:
        close_backend(system, r.processes)
    return result


def time_batch(result, fresh):
    """Run `result`'s calls as one array on a process from `fresh()` -> (system, mm) and
    set result.batch_ns to the executor's loop time, or batch_note to why not (a model
    that forks is not one process's array; a row whose result differs from the run's)."""
    try:
        arr = result.array()
    except ValueError as e:
        result.batch_note = str(e)
        return
    system, mm = fresh()
    try:
        results, ns = arr.run(mm)
    finally:
        close_backend(system, [mm])
    result.batch_ns = ns
    row = arr.first_difference(results)
    if row is not None:
        result.batch_note = (f"the array stopped at row {row} of {len(arr)}: "
                             f"{results[row]} where the run got {arr.expected[row]}")

