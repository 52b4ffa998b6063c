"""The runner's batched path (workloads/recorder.py) reports what the one-call-at-a-time
path reports: every registered model, every strategy, runs that stop at a limit, and the
run a handled failure sends back to one call at a time.

Simulator only: the recorder submits to MM.batch; the live backend's runs stay one call at
a time (the per-call comparison of compare --live needs the calls one by one).
"""
import errno

import pytest

import ptengine
from ptengine import constants as C
from ptengine.errors import Fault
from ptengine.workloads import WORKLOADS, run
from ptengine.workloads.metrics import SyscallCounter
from ptengine.workloads.recorder import Recorder, Ref, Session, align_up, tolerant
from ptengine.workloads.runner import Run

STRATS = ("prot_none", "guard", "guard_batched")
# Small sizes that reach each model's branches (churn, joins, overflows, growth, forks).
SIZES = {
    "glibc_threads": {"n": 60, "join": True, "cache_size": 100 << 20},
    "musl_churn": {"live": 20, "cycles": 30},
    "android_app": {"threads": 6, "java_fraction": 0.5, "background": 10},
    "android_device": {"processes": 3, "threads": 5, "background": 40},
    "jvm": {"java_threads": 10, "native_threads": 3, "overflows": 5},
    "large_alloc": {"blocks": 20, "churn": 20},
    "region_guards": {"guards": 1100},
    "gwp_asan": {"events": 60},
    "fiber_pool": {"fibers": 10, "pattern": "bursts", "burst": 5, "rounds": 3},
    "wasm": {"memories": 3, "grow_steps": 2},
}


def figures(r):
    """Everything a RunResult reports but the time."""
    return dict(r.as_dict(), wall_time_s=None)


def both(name, strategy, params, **kw):
    one = run(name, strategy, params, batched=False, **kw)
    batched = run(name, strategy, params, batched=True, **kw)
    return one, batched


def test_every_model_is_sized():
    assert set(SIZES) == set(WORKLOADS)


@pytest.mark.parametrize("strategy", STRATS)
@pytest.mark.parametrize("name", sorted(SIZES))
def test_model_figures_equal(name, strategy):
    one, batched = both(name, strategy, SIZES[name])
    assert figures(batched) == figures(one)
    assert one.syscalls["total"] > 0


@pytest.mark.parametrize("strategy", STRATS)
def test_stop_at_max_map_count_is_the_same_limit(strategy):
    """A row failing (ENOMEM at max_map_count) stops the run where the call did: same
    phase, index, call, errno, map count, and the same state and counts up to there."""
    params = {"n": 600, "mlockall_onfault": strategy != "prot_none"}
    one, batched = both("glibc_threads", strategy, params, max_map_count=500)
    assert one.limit is not None and one.limit.errno == errno.ENOMEM
    assert figures(batched) == figures(one)


def test_stop_in_a_forked_process():
    one, batched = both("android_device", "prot_none", {"processes": 4, "threads": 40,
                                                         "background": 40},
                        max_map_count=300)
    assert one.limit is not None and one.limit.phase.startswith("process 10")
    assert figures(batched) == figures(one)


def test_handled_failure_runs_one_call_at_a_time():
    """glibc 2.42 falls back to PROT_NONE when MADV_GUARD_INSTALL fails (mlockall
    MCL_ONFAULT): the recorded run diverges there and is made again call by call."""
    one, batched = both("glibc_threads", "guard", {"n": 50, "mlockall_onfault": True})
    assert "glibc_fallback" in one.extra
    assert figures(batched) == figures(one)


@pytest.fixture
def rec():
    system = ptengine.System()
    raw = system.spawn()
    r = Run(raw, "guard", {})
    yield Recorder(raw, Session(r, SyscallCounter())), raw
    raw.exit()


def test_refs_stay_symbolic_until_a_value_is_needed(rec):
    rec, raw = rec
    base = rec.mmap(0, 16 << 20, C.PROT_READ | C.PROT_WRITE,
                    C.MAP_PRIVATE | C.MAP_ANONYMOUS)
    top = base + (16 << 20)
    assert type(base) is Ref and type(top - 4096) is Ref
    assert top - base == 16 << 20 and top > base and base + 4096 >= base + 4096
    aligned = align_up(base + 1, 8192)           # PMD-aligned placement: no submission
    rec.madvise(aligned, 4096, C.MADV_GUARD_INSTALL)
    tolerant(rec).madvise(top, 4096, C.MADV_DONTNEED)     # unmapped: ENOMEM, tolerated
    assert raw.map_count == 0 and rec.n == 3
    addr = int(base)                             # a value: the rows run
    assert rec.n == 0 and raw.map_count == 1
    assert addr % (2 << 20) == 0 and int(aligned) == addr + 8192
    assert rec.session.counter.errors == {"madvise: ENOMEM": 1}
    with pytest.raises(Fault):                   # the guard is there
        raw.touch(int(aligned))
    raw.touch(int(aligned) + 4096)


def test_a_failed_row_stops_later_calls(rec):
    rec, raw = rec
    rec.munmap(1, 4096)                          # EINVAL: the run stops here
    rec.mmap(0, 4096, C.PROT_READ, C.MAP_PRIVATE | C.MAP_ANONYMOUS)
    with pytest.raises(OSError) as e:
        rec.submit()
    assert e.value.errno == errno.EINVAL and e.value.call == "munmap(1, 4096)"
    assert raw.map_count == 0
    with pytest.raises(OSError):
        rec.mprotect(0, 4096, C.PROT_READ)


def test_batched_runs_are_the_simulators_without_a_call_log():
    with pytest.raises(ValueError):
        run("wasm", "guard", {"memories": 1}, batched=True, record_calls=True)
