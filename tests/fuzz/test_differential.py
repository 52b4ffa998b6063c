"""Differential fuzzing under Hypothesis: random operation sequences applied to the
simulator and to the host kernel at the same addresses must agree after every step
(results, VMAs, pagemap bits, counters; see ptengine/verify.py). A failure is shrunk by
Hypothesis and printed as a ready-to-paste regression test.

The run is bounded: PTENGINE_FUZZ_SEQUENCES sequences (default 200) of
PTENGINE_FUZZ_STEPS steps (default 30). It is derandomized, so CI sees the same sequences
every time; set PTENGINE_FUZZ_RANDOM=1 to explore new ones.
"""
import os

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ptengine import live, verify

pytestmark = pytest.mark.skipif(not live.available(),
                                reason="the host kernel has no guard regions")

SEQUENCES = int(os.environ.get("PTENGINE_FUZZ_SEQUENCES", "200"))
STEPS = int(os.environ.get("PTENGINE_FUZZ_STEPS", "30"))


class SimulatorMatchesKernel(RuleBasedStateMachine):
    """One sequence: both backends, one operation per step, compared after each. After a
    divergence that does not come back on replay (a kernel race, see verify.reproduces),
    the sequence goes on from a fresh pair of processes, not from the diverged state."""

    @initialize()
    def start(self):
        self.sim, self.kernel = verify.make_sides()
        self.ops = []

    def restart(self):
        self.teardown()
        self.start()

    @rule(data=st.data())
    def step(self, data):
        op = verify.generate_op(lambda lo, hi: data.draw(st.integers(lo, hi)))
        self.ops.append(op)
        a, b = verify.apply_both(self.sim, self.kernel, op)
        if a != b:
            if not verify.reproduces(self.ops):
                return self.restart()
            raise AssertionError(f"{op!r}: ptengine {a!r}, kernel {b!r}\n"
                                 + verify.Divergence(self.ops, len(self.ops) - 1,
                                                     "").as_test())

    @invariant()
    def same_state(self):
        if not hasattr(self, "sim"):
            return
        diff = verify.describe_difference(
            verify.window_state(self.sim.mm, self.sim.baseline),
            verify.window_state(self.kernel.mm, self.kernel.baseline))
        if diff:
            if not verify.reproduces(self.ops):
                return self.restart()
            raise AssertionError("\n".join(diff) + "\n" + verify.Divergence(
                self.ops, len(self.ops) - 1, "").as_test())
        self.sim.mm.check()

    def teardown(self):
        if hasattr(self, "sim"):
            self.sim.close()
            self.kernel.close()


SimulatorMatchesKernel.TestCase.settings = settings(
    max_examples=SEQUENCES, stateful_step_count=STEPS, deadline=None, database=None,
    derandomize=os.environ.get("PTENGINE_FUZZ_RANDOM") is None,
    suppress_health_check=list(HealthCheck))
test_simulator_matches_kernel = SimulatorMatchesKernel.TestCase


def test_verify_command_finds_no_divergence_in_a_short_run():
    """The `ptengine verify` engine (seeded sequences, its own shrinking) on a few
    sequences; the Hypothesis machine above is the bulk of the fuzzing."""
    summary = verify.verify(seed=7, sequences=10, steps=STEPS)
    assert summary.sequences == 10
    assert not summary.divergences, summary.divergences[0][1].as_test()


def test_a_planted_divergence_is_found_and_shrunk(monkeypatch):
    """The harness must be able to fail: make the simulator forget guard markers on
    MADV_GUARD_REMOVE's neighbour... simpler: make one backend's madvise a no-op."""
    from ptengine.constants import MADV_GUARD_INSTALL
    ops = [("mmap", "anon", 10, 4, 3, "fixed", 0), ("write", 11, 0, 7),
           ("madvise", 10, 4, MADV_GUARD_INSTALL), ("access", 11, 0)]
    from ptengine import MM
    from ptengine.mm.api import MMCalls

    def loses_guards(self, addr, length, advice):
        if advice != MADV_GUARD_INSTALL:
            MMCalls.madvise(self, addr, length, advice)
    monkeypatch.setattr(MM, "madvise", loses_guards)
    with pytest.raises(verify.Divergence) as info:
        verify.run_ops(ops)
    assert info.value.step == 2
    small = verify.shrink(info.value.ops)
    assert small is not None and len(small.ops) <= 3
    assert "assert_same_behaviour" in small.as_test()


def test_a_divergence_that_does_not_replay_restarts_the_sequence(monkeypatch):
    """A divergence that does not come back on replay is noted, not reported, and the rest
    of the sequence runs on a fresh pair of processes (not on the diverged state)."""
    from ptengine.constants import MADV_GUARD_INSTALL
    from ptengine import MM
    ops = [("mmap", "anon", 10, 4, 3, "fixed", 0), ("write", 11, 0, 7),
           ("madvise", 10, 4, MADV_GUARD_INSTALL), ("access", 11, 0), ("write", 12, 0, 9),
           ("read", 12, 0)]
    from ptengine.mm.api import MMCalls
    installs = []

    def forgets_the_first(self, addr, length, advice):
        if advice == MADV_GUARD_INSTALL:
            installs.append(addr)
            if len(installs) == 1:
                return
        MMCalls.madvise(self, addr, length, advice)
    monkeypatch.setattr(MM, "madvise", forgets_the_first)
    real_make, made = verify.make_sides, []
    monkeypatch.setattr(verify, "make_sides", lambda: made.append(1) or real_make())
    summary = verify.Summary()
    assert verify.run_sequence(0, ops, summary) == len(ops)
    assert [d.step for _, d in summary.nondeterministic] == [2]
    assert not summary.divergences
    # The first run, its replay, and a fresh pair for steps 3 to 5.
    assert len(made) == 3
