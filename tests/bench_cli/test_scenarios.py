"""ptengine.bench.scenarios: the real figures of the scenarios (fast, and they must be
deterministic)."""
from ptengine.bench.scenarios import scenario_figures


def test_scenarios_are_deterministic():
    names = ["glibc_stacks_guard", "fork_cow", "locked_guards"]
    first, second = scenario_figures(names), scenario_figures(names)
    assert first == second
    assert first["glibc_stacks_guard"]["mm"]["guard_pages"] == 200
    assert first["locked_guards"]["errors"] == {"madvise: EINVAL": 1, "mlock: ENOMEM": 1}
