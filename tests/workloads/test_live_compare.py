"""`compare --live` checks what every call returned and the syscall counts, not only the
state the runs leave (issue 11, item 2): a simulator that answers one call wrongly is
flagged with the first call that differs, and the real models agree call by call."""
import errno

import pytest

import ptengine
from ptengine import constants as C
from ptengine.workloads import Strategy, report, run
from ptengine.workloads.metrics import CallRecord


class Wrong:
    """The simulator's process with some methods replaced: a simulator that answers
    wrongly. `fork` hands the replacement on to the child."""

    def __init__(self, inner, patch):
        self.inner, self.patch = inner, patch

    def __getattr__(self, name):
        if name in self.patch:
            return lambda *args, **kwargs: self.patch[name](self.inner, *args, **kwargs)
        return getattr(self.inner, name)

    @property
    def map_count(self):
        return self.inner.map_count

    def fork(self):
        return Wrong(self.inner.fork(), self.patch)


def wrong_sim(**patch):
    """A backend factory for workloads.run(): the process compare simulates, patched."""
    def factory():
        system = ptengine.System()
        return system, Wrong(system.spawn(exec_layout=True), patch)
    factory.__name__ = "sim"
    return factory


def both(name, strategy, params, sim_backend="sim"):
    sim = run(name, strategy, params, small=True, backend=sim_backend, record_calls=True)
    live = run(name, strategy, params, small=True, backend="live", record_calls=True)
    return sim, live


def uncapped_process_madvise(mm, iovecs, advice, flags=0):
    """process_madvise as ptengine had it: every iovec advised whole, their sum returned
    (no MAX_RW_COUNT cap)."""
    for addr, length in iovecs:
        mm.madvise(addr, length, advice)
    return sum(length for _, length in iovecs)


def test_a_wrong_result_and_the_counts_it_changes_are_flagged(live_only):
    sim, live = both("wasm", Strategy.GUARD_BATCHED, {},
                     wrong_sim(process_madvise=uncapped_process_madvise))
    # The state agrees (the guards end up where they should), so only the calls tell.
    assert (sim.delta.map_count, sim.delta.vm_pte_kb) == (live.delta.map_count,
                                                          live.delta.vm_pte_kb)
    problems = report.mismatches(sim, live)
    assert problems[0].startswith("syscalls: total sim ")
    first = next(i for i, (a, b) in enumerate(zip(sim.calls, live.calls)) if a[2] != b[2])
    assert sim.calls[first][0] == "process_madvise"
    assert problems[1].startswith(f"call #{first + 1} process_madvise(")
    assert problems[1].endswith(f"sim {hex(sim.calls[first][2])} vs live "
                                f"{hex(live.calls[first][2])}")
    table = report.format_table([sim], [live])
    assert f"!!! SIM/LIVE MISMATCH [guard_batched] {problems[1]}" in table


def test_a_wrong_result_alone_is_flagged(live_only):
    """Same counts, same state: only the returned value of one kind of call differs."""
    def madvise_returning_one(mm, *args):
        mm.madvise(*args)
        return 1
    sim, live = both("fiber_pool", Strategy.GUARD, {"fibers": 5},
                     wrong_sim(madvise=madvise_returning_one))
    assert sim.syscalls == live.syscalls
    first = next(i for i, c in enumerate(live.calls) if c[0] == "madvise")
    call = CallRecord("madvise", live.calls[first][1]).describe()
    assert call.startswith(f"madvise({hex(live.calls[first][1][0])}, 4096, ")
    assert report.mismatches(sim, live) == [f"call #{first + 1} {call}: sim 1 vs live 0"]


def test_an_errno_is_compared_too(live_only):
    def failing_mprotect(mm, *args):
        raise OSError(errno.ENOMEM, "injected")
    sim, live = both("fiber_pool", Strategy.PROT_NONE, {"fibers": 3},
                     wrong_sim(mprotect=failing_mprotect))
    assert sim.limit is not None and live.limit is None
    assert any(p.endswith(": sim -ENOMEM vs live 0") for p in report.mismatches(sim, live))


@pytest.mark.parametrize("name, params", [
    ("wasm", {}), ("glibc_threads", {"n": 50}), ("large_alloc", {"blocks": 50}),
    ("region_guards", {"guards": 200}), ("fiber_pool", {"fibers": 50}),
])
@pytest.mark.parametrize("strategy", list(Strategy))
def test_the_models_agree_call_by_call(live_only, name, params, strategy):
    sim, live = both(name, strategy, params)
    assert sim.calls and len(sim.calls) == len(live.calls)
    assert sum(c[0] != "touch" for c in sim.calls) == sim.syscalls["total"]
    assert report.mismatches(sim, live) == []


def test_the_live_time_is_the_servers_loop_over_the_runs_array(live_only):
    """compare --live's live time is the kernel's: the run's calls as one array in the
    server (batch_ns), labelled apart from the per-call time of socket round trips; a model
    that forks says why it has no batch time."""
    sim = run("region_guards", Strategy.GUARD, {"guards": 50}, batch=True)
    live = run("region_guards", Strategy.GUARD, {"guards": 50}, backend="live", batch=True)
    assert sim.batch_ns > 0 and live.batch_ns > 0 and sim.batch_note is live.batch_note is None
    table = report.format_table([sim], [live])
    assert "live: kernel time, one batch (server loop)" in table
    assert "live: time, per call (socket round trips)" in table
    device = run("android_device", Strategy.GUARD, {"processes": 1, "threads": 1,
                                                    "background": 4}, batch=True)
    assert device.batch_ns is None and "fork" in device.batch_note
