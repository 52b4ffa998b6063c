"""ptengine.bench.ratios: the comparison of saved pytest-benchmark runs."""
from ptengine.bench import ratios


def saved_run(ratios, smoke=False):
    return {"benchmarks": [
        {"fullname": name, "extra_info": {"smoke": smoke, "ratios": {
            label: {"value": value} for label, value in per.items()}}}
        for name, per in ratios.items()]}


def test_compare_runs_flags_a_worsened_ratio():
    old = saved_run({"b::install": {"vs kernel": 0.10, "vs fill": 3.0}})
    new = saved_run({"b::install": {"vs kernel": 0.13, "vs fill": 3.5}})
    worse, better, unmatched = ratios.compare_runs(old, new, margin=0.25)
    assert worse == [(("b::install", "vs kernel"), 0.10, 0.13)]
    assert not better and not unmatched


def test_compare_runs_within_margin_and_improvements():
    old = saved_run({"b::x": {"vs kernel": 1.0}, "b::gone": {"vs kernel": 1.0}})
    new = saved_run({"b::x": {"vs kernel": 0.5}, "b::new": {"vs kernel": 9.0}})
    worse, better, unmatched = ratios.compare_runs(old, new, margin=0.25)
    assert not worse
    assert better == [(("b::x", "vs kernel"), 1.0, 0.5)]
    assert unmatched == [("b::gone", "vs kernel"), ("b::new", "vs kernel")]


def test_foreign_ratio_keys_and_smoke_runs():
    data = {"benchmarks": [
        {"fullname": "wl::m", "extra_info": {"sim_over_live": 0.5, "wall_time_s": 1.0,
                                             "live_wall_time_s": 2.0}},
        {"fullname": "smoke", "extra_info": {"smoke": True, "ratios": {"r": {"value": 1}}}},
    ]}
    assert ratios.run_ratios(data) == {("wl::m", "vs kernel (wall)"): 0.5}
    row = ratios.ratios_of(data["benchmarks"][0]["extra_info"])["vs kernel (wall)"]
    assert row["ptengine"] == "1 s" and row["reference"] == "2 s" and row["met"] is None
