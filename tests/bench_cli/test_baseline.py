"""ptengine.bench.baseline: the baseline check and its diff, on small figure trees with
the computation replaced."""
import json

import pytest

from ptengine.bench.baseline import check, load_baseline, update, write_baseline


def fake_compute(figures, notes=()):
    def compute(sections=None, log=print):
        return json.loads(json.dumps(figures)), list(notes)
    return compute


FIGURES = {"scenarios": {"stacks": {"mm": {"map_count": 400, "VmPTE": 812},
                                    "syscalls": {"mmap": 200}}}}


@pytest.fixture
def baseline(tmp_path):
    path = tmp_path / "baseline.json"
    write_baseline(path, FIGURES)
    return path


def run_check(path, figures, notes=()):
    lines = []
    status = check(path, compute_fn=fake_compute(figures, notes), out=lines.append)
    return status, "\n".join(lines)


def test_unchanged_figures_pass(baseline):
    status, text = run_check(baseline, FIGURES)
    assert status == 0, text
    assert "figures match" in text


def test_changed_figure_is_reported(baseline):
    changed = json.loads(json.dumps(FIGURES))
    changed["scenarios"]["stacks"]["mm"]["map_count"] = 402
    status, text = run_check(baseline, changed)
    assert status == 1
    assert "scenarios.stacks.mm.map_count: 400 -> 402  (+2, +0.50%)" in text
    assert "VmPTE" not in text                       # only what changed is listed
    assert "ptengine bench --update" in text


def test_new_and_vanished_figures_are_reported(baseline):
    changed = json.loads(json.dumps(FIGURES))
    del changed["scenarios"]["stacks"]["syscalls"]["mmap"]
    changed["scenarios"]["stacks"]["syscalls"]["mprotect"] = 200
    status, text = run_check(baseline, changed)
    assert status == 1
    assert "- scenarios.stacks.syscalls.mmap = 200" in text
    assert "+ scenarios.stacks.syscalls.mprotect = 200" in text


def test_section_not_computed_is_not_a_difference(baseline, tmp_path):
    """A section that cannot be computed here (no valgrind, no workload registry) is
    skipped with a note, and --update keeps it as it was."""
    write_baseline(baseline, dict(FIGURES, instructions={"counts": {"zap": 1}}))
    status, text = run_check(baseline, FIGURES, notes=["instructions: skipped - no valgrind"])
    assert status == 0, text
    assert "note: instructions: skipped - no valgrind" in text
    update(baseline, compute_fn=fake_compute(FIGURES), out=lambda _: None)
    kept = load_baseline(baseline)["figures"]
    assert kept["instructions"] == {"counts": {"zap": 1}}


def test_other_toolchain_instruction_counts_are_not_compared(baseline):
    old = dict(FIGURES, instructions={"toolchain": {"cc": "gcc 12"}, "counts": {"zap": 1}})
    write_baseline(baseline, old)
    new = dict(FIGURES, instructions={"toolchain": {"cc": "gcc 14"}, "counts": {"zap": 2}})
    status, text = run_check(baseline, new)
    assert status == 0, text
    assert "another toolchain" in text
    new["instructions"]["toolchain"] = {"cc": "gcc 12"}
    status, text = run_check(baseline, new)
    assert status == 1 and "instructions.counts.zap: 1 -> 2" in text


def test_update_then_check_round_trip(tmp_path):
    path = tmp_path / "sub" / "baseline.json"
    assert update(path, compute_fn=fake_compute(FIGURES), out=lambda _: None) == 0
    assert run_check(path, FIGURES)[0] == 0


def test_missing_baseline_is_an_error(tmp_path):
    status, text = run_check(tmp_path / "none.json", FIGURES)
    assert status == 2 and "--update" in text
