"""ptengine.regress: the baseline check, its diff, and the comparison of saved runs.

The check logic is tested on small figure trees with the computation replaced; the real
figures are computed for the scenarios (fast, and they must be deterministic), and the
callgrind part only where valgrind is installed.
"""
import json
import shutil

import pytest

from ptengine import regress


def fake_compute(figures, notes=()):
    def compute(sections=None, log=print):
        return json.loads(json.dumps(figures)), list(notes)
    return compute


FIGURES = {"scenarios": {"stacks": {"mm": {"map_count": 400, "VmPTE": 812},
                                    "syscalls": {"mmap": 200}}}}


@pytest.fixture
def baseline(tmp_path):
    path = tmp_path / "baseline.json"
    regress.write_baseline(path, FIGURES)
    return path


def run_check(path, figures, notes=()):
    lines = []
    status = regress.check(path, compute_fn=fake_compute(figures, notes), out=lines.append)
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
    regress.write_baseline(baseline, dict(FIGURES, instructions={"counts": {"zap": 1}}))
    status, text = run_check(baseline, FIGURES, notes=["instructions: skipped - no valgrind"])
    assert status == 0, text
    assert "note: instructions: skipped - no valgrind" in text
    regress.update(baseline, compute_fn=fake_compute(FIGURES), out=lambda _: None)
    kept = regress.load_baseline(baseline)["figures"]
    assert kept["instructions"] == {"counts": {"zap": 1}}


def test_other_toolchain_instruction_counts_are_not_compared(baseline):
    old = dict(FIGURES, instructions={"toolchain": {"cc": "gcc 12"}, "counts": {"zap": 1}})
    regress.write_baseline(baseline, old)
    new = dict(FIGURES, instructions={"toolchain": {"cc": "gcc 14"}, "counts": {"zap": 2}})
    status, text = run_check(baseline, new)
    assert status == 0, text
    assert "another toolchain" in text
    new["instructions"]["toolchain"] = {"cc": "gcc 12"}
    status, text = run_check(baseline, new)
    assert status == 1 and "instructions.counts.zap: 1 -> 2" in text


def test_update_then_check_round_trip(tmp_path):
    path = tmp_path / "sub" / "baseline.json"
    assert regress.update(path, compute_fn=fake_compute(FIGURES), out=lambda _: None) == 0
    assert run_check(path, FIGURES)[0] == 0


def test_missing_baseline_is_an_error(tmp_path):
    status, text = run_check(tmp_path / "none.json", FIGURES)
    assert status == 2 and "--update" in text


def test_scenarios_are_deterministic():
    names = ["glibc_stacks_guard", "fork_cow", "locked_guards"]
    first, second = regress.scenario_figures(names), regress.scenario_figures(names)
    assert first == second
    assert first["glibc_stacks_guard"]["mm"]["guard_pages"] == 200
    assert first["locked_guards"]["errors"] == {"madvise: EINVAL": 1, "mlock: ENOMEM": 1}


def saved_run(ratios, smoke=False):
    return {"benchmarks": [
        {"fullname": name, "extra_info": {"smoke": smoke, "ratios": {
            label: {"value": value} for label, value in per.items()}}}
        for name, per in ratios.items()]}


def test_compare_runs_flags_a_worsened_ratio():
    old = saved_run({"b::install": {"vs kernel": 0.10, "vs fill": 3.0}})
    new = saved_run({"b::install": {"vs kernel": 0.13, "vs fill": 3.5}})
    worse, better, unmatched = regress.compare_runs(old, new, margin=0.25)
    assert worse == [(("b::install", "vs kernel"), 0.10, 0.13)]
    assert not better and not unmatched


def test_compare_runs_within_margin_and_improvements():
    old = saved_run({"b::x": {"vs kernel": 1.0}, "b::gone": {"vs kernel": 1.0}})
    new = saved_run({"b::x": {"vs kernel": 0.5}, "b::new": {"vs kernel": 9.0}})
    worse, better, unmatched = regress.compare_runs(old, new, margin=0.25)
    assert not worse
    assert better == [(("b::x", "vs kernel"), 1.0, 0.5)]
    assert unmatched == [("b::gone", "vs kernel"), ("b::new", "vs kernel")]


def test_foreign_ratio_keys_and_smoke_runs():
    data = {"benchmarks": [
        {"fullname": "wl::m", "extra_info": {"sim_over_live": 0.5, "wall_time_s": 1.0,
                                             "live_wall_time_s": 2.0}},
        {"fullname": "smoke", "extra_info": {"smoke": True, "ratios": {"r": {"value": 1}}}},
    ]}
    assert regress.run_ratios(data) == {("wl::m", "vs kernel (wall)"): 0.5}
    row = regress.ratios_of(data["benchmarks"][0]["extra_info"])["vs kernel (wall)"]
    assert row["ptengine"] == "1 s" and row["reference"] == "2 s" and row["met"] is None


ANNOTATE = """\
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
11,141,936 (173.1%)  /src/_core.c:__pyx_f_8ptengine_5_core__walk_table'2 [/x.so]
 2,924,882 (45.43%)  /src/_core.c:__pyx_pw_8ptengine_5_core_10PageTables_33fault_anon [/x.so]
 1,176,308 (18.27%)  /src/_core.c:__pyx_pw_8ptengine_5_core_10PageTables_25zap [/x.so]
        22 ( 0.00%)  /usr/include/python3.11/object.h:__pyx_pw_8ptengine_5_core_10PageTables_33fault_anon
     1,371 ( 0.02%)  /src/_core.c:__pyx_f_8ptengine_5_core_10PageTables__require_none [/x.so]
"""


def test_parse_callgrind_annotate():
    assert regress.parse_callgrind_annotate(ANNOTATE) == {"fault_anon": 2924904,
                                                          "zap": 1176308}


def test_cli_rejects_pytest_args_without_compare(capsys):
    """pytest arguments (after --) only make sense for --compare."""
    assert regress.bench_main(["--check", "--", "-k", "x"]) == 2
    assert "only for --compare" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_with_callgrind():
    figures = regress.instruction_counts()
    assert set(figures["counts"]) == set(regress.WALKERS)
    pages = figures["bytes_walked"] // 4096
    # Every walker visits every page at least once: at least an instruction per page;
    # but a guard install over empty, whole 2 MiB spans writes one PMD entry per span
    # (the shared GUARD table): at least an instruction per 2 MiB.
    counts = dict(figures["counts"])
    assert counts.pop("install_guards") >= pages // 512, figures
    assert all(n >= pages for n in counts.values()), figures
