"""The figures drawn from a results table (compare --plot and sweep --plot): readable
ticks, no degenerate axes, the max_map_count limit where it is reached."""
import re

import pytest

from ptengine import sweep
from ptengine.sweep import execute
from ptengine.workloads import plots

SPEC = """\
[[grid]]
workloads = ["glibc_threads"]
n = [10, 40, 80]
max_map_count = 100

[[grid]]
workloads = ["gwp_asan"]
events = [20, 200, 2000]
"""


@pytest.fixture(scope="module")
def fig():
    real = execute.run_jobs
    execute.run_jobs = lambda jobs, client=None, progress=False: [execute.run_job(j) for j in jobs]
    try:
        df = sweep.run(SPEC)
    finally:
        execute.run_jobs = real
    figure = plots.figure(df)
    figure.canvas.draw()
    yield df, figure
    import matplotlib.pyplot as plt
    plt.close(figure)


def visible_axes(figure):
    out = []
    for sub in figure.subfigs:
        out.extend(ax for ax in sub.axes if ax.axison)
    return out


def panel(figure, title):
    return next(ax for ax in visible_axes(figure) if ax.get_title() == title)


def test_ticks_are_written_out_and_axes_are_not_degenerate(fig):
    df, figure = fig
    axes = visible_axes(figure)
    assert len(axes) == 2 + 3          # the summary's two, glibc's two, gwp_asan's VMAs
    for ax in axes:
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            text = label.get_text()
            assert not re.search(r"[×^$]|\\times|e[+-]?\d", text), (ax.get_title(), text)
        for lo, hi in (ax.get_xlim(), ax.get_ylim()):
            assert lo != hi, ax.get_title()          # (the summary runs top-down)
    n_axis = panel(figure, "glibc_threads: VMAs Δ")
    assert [t.get_text() for t in n_axis.get_xticklabels()] == ["10", "40", "80"]


def test_a_metric_zero_everywhere_is_said_not_plotted(fig):
    df, figure = fig
    assert (df[df["workload"] == "gwp_asan"]["vm_pte_bytes"] == 0).all()
    titles = [ax.get_title() for ax in visible_axes(figure)]
    assert "gwp_asan: VMAs Δ" in titles and "gwp_asan: page tables Δ" not in titles
    texts = [t.get_text() for sub in figure.subfigs for ax in sub.axes for t in ax.texts]
    assert "gwp_asan: page tables Δ is 0\nat every size and strategy" in texts


def test_max_map_count_drawn_where_reached(fig):
    df, figure = fig
    hit = df[df["limit_errno"].notna()]
    # PROT_NONE stacks cost 2 VMAs each: 80 threads need more than 100, 40 do not.
    assert set(hit["strategy"]) == {"prot_none"} and set(hit["n"]) == {80}
    ax = panel(figure, "glibc_threads: VMAs Δ")
    baseline = int(hit["baseline_vmas"].iloc[0])
    limit = [l for l in ax.get_lines() if l.get_label().startswith("max_map_count")]
    assert [l.get_label() for l in limit] == ["max_map_count 100 (X: run stopped)"]
    assert list(limit[0].get_ydata()) == [100 - baseline] * 2
    assert "max_map_count 100 (X: run stopped)" in [t.get_text() for t in ax.get_legend().texts]
    assert not [l for l in panel(figure, "glibc_threads: page tables Δ").get_lines()
                if l.get_label().startswith("max_map_count")]


def test_summary_compares_markers_with_prot_none_at_the_largest_size(fig):
    df, figure = fig
    ax = next(a for a in visible_axes(figure) if a.get_title().startswith("VMAs Δ that markers"))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["glibc_threads\nn=80", "gwp_asan\nevents=2,000"]
    notes = [t.get_text() for t in ax.texts]
    top = df[(df["workload"] == "gwp_asan") & (df["events"] == 2000)].set_index("strategy")
    before, after = top.loc["prot_none", "vmas"], top.loc["guard", "vmas"]
    assert f"−{before - after:,} ({before:,} → {after:,})" in notes
