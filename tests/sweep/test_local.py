"""The local path: an embedded Dask cluster gives, cell for cell, what `compare`'s code
gives; failures are rows with their error; --resume runs only what is missing."""
import pandas as pd
import pytest

from ptengine import cli, sweep
from ptengine.sweep import execute
from ptengine.workloads import run, table

# 48 cells of small sizes: two grids, several models, a max_map_count that one of them
# reaches, two repetitions of one.
SPEC = """\
strategies = ["prot_none", "guard", "guard_batched"]

[[grid]]
workloads = ["glibc_threads"]
n = [3, 40]
stack_size = ["64KiB", "1MiB"]
max_map_count = [60, 65530]

[[grid]]
workloads = ["fiber_pool", "region_guards", "gwp_asan"]
scale = [5, 20]
strategies = ["prot_none", "guard"]
repetitions = 2
"""
COMPARED = [m.column for m in table.METRICS if m.column != "wall_time_s"]


def compare_alone(row):
    """The same cell through compare's code only: workloads.run and the table's row."""
    from ptengine.workloads import get
    wl = get(row["workload"])
    params = {k: row[k] for k in wl.defaults}
    return table.result_row(run(wl.name, row["strategy"], params,
                                max_map_count=row["max_map_count"]))


def same(a, b):
    return (pd.isna(a) and pd.isna(b)) if (a is None or b is None or pd.isna(a)) else a == b


def test_local_cluster_matches_compare():
    jobs = sweep.plan(SPEC)
    assert len(jobs) == 2 * 2 * 2 * 3 + 3 * 2 * 2 * 2
    df = sweep.run(SPEC)
    assert len(df) == len(jobs) and df["error"].isna().all()
    assert [tuple(r) for r in df[["cell_id", "strategy", "repetition"]].itertuples(index=False)] \
        == [(j["cell_id"], j["strategy"], j["repetition"]) for j in jobs]
    assert (df["ptengine_version"] == sweep.execute.__version__).all()
    # Each model runs under the profile it declares (the Android models under `android`).
    from ptengine.workloads import get
    assert list(df["host_profile"]) == [get(w).profile for w in df["workload"]]
    assert df["worker"].nunique() >= 1 and (df["cell_time_s"] > 0).all()
    for _, row in df.iterrows():
        want = compare_alone(row)
        for column in COMPARED:
            assert same(row[column], want[column]), (row["workload"], row["strategy"], column)
    # The max_map_count of 60 stops glibc's PROT_NONE threads, and the row says why.
    hit = df[(df["max_map_count"] == 60) & (df["n"] == 40) & (df["strategy"] == "prot_none")]
    assert len(hit) == 2 and (hit["limit_errno"] == "ENOMEM").all()
    assert (hit["limit_max_map_count"] == 60).all()


def serially(jobs, client=None, progress=False):
    """run_jobs without Dask: the worker's code in this process."""
    serially.ran += len(jobs)
    return [execute.run_job(j) for j in jobs]


def test_errors_are_rows_and_resume_runs_only_the_rest(monkeypatch, tmp_path):
    monkeypatch.setattr(execute, "run_jobs", serially)
    spec = "[[grid]]\nworkloads = ['W7']\nfibers = [2, 3]\npattern = ['live', 'bogus']\n"
    serially.ran = 0
    df = sweep.run(spec)
    assert serially.ran == len(df) == 2 * 2 * 3
    bad = df[df["pattern"] == "bogus"]
    assert len(bad) == 6 and bad["error"].str.startswith("ValueError: pattern must be").all()
    assert bad["vmas"].isna().all() and df[df["pattern"] == "live"]["error"].isna().all()
    # A table written, then resumed: rows with figures are kept, failed rows run again,
    # and the cells added to the SPEC run.
    path = tmp_path / "out.parquet"
    table.write(df, path)
    serially.ran = 0
    bigger = spec.replace("[2, 3]", "[2, 3, 4]")
    again = sweep.run(bigger, resume=str(path))
    assert serially.ran == 6 + 2 * 3
    assert len(again) == 3 * 2 * 3
    kept = again[(again["fibers"] < 4) & (again["pattern"] == "live")]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True),
                                  df[df["pattern"] == "live"].reset_index(drop=True))


def test_cli_resume_skips_cells_in_the_output(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(execute, "run_jobs", serially)
    spec = tmp_path / "s.toml"
    spec.write_text("[[grid]]\nworkloads = ['W6']\nguards = [2, 4]\n")
    out = tmp_path / "r.parquet"
    serially.ran = 0
    assert cli.main(["sweep", str(spec), "-o", str(out), "--csv", str(tmp_path / "r.csv"),
                     "--no-progress"]) == 0
    assert serially.ran == 6 and "6 rows, 2 cells, 0 with an error" in capsys.readouterr().out
    spec.write_text("[[grid]]\nworkloads = ['W6']\nguards = [2, 4, 8]\n")
    serially.ran = 0
    assert cli.main(["sweep", str(spec), "-o", str(out), "--resume", "--no-progress"]) == 0
    assert serially.ran == 3
    df = pd.read_parquet(out)
    assert sorted(df["guards"]) == [2, 2, 2, 4, 4, 4, 8, 8, 8]
    assert list(pd.read_csv(tmp_path / "r.csv").columns) == list(df.columns)


def test_no_model_parameter_shadows_a_column():
    from ptengine.sweep import kinds
    from ptengine.workloads import WORKLOADS
    reserved = table.reserved_columns() | set(kinds.JOB_COLUMNS) | set(execute.PROVENANCE)
    for w in WORKLOADS.values():
        assert not reserved & set(w.defaults), w.name
    # A parameter two models share has one type (a table column has one).
    types = {}
    for w in WORKLOADS.values():
        for k, v in w.defaults.items():
            assert types.setdefault(k, type(v)) is type(v), k


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_compare_writes_the_same_table(tmp_path, capsys, fmt):
    path = tmp_path / f"t.{fmt}"
    assert cli.main(["compare", "--no-progress", "W1", "W6", "-p", "n=5", "-p", "guards=3",
                     f"--{fmt}", str(path)]) == 0
    df = pd.read_csv(path, dtype_backend="numpy_nullable") if fmt == "csv" else \
        pd.read_parquet(path)
    assert list(df.columns[:5]) == list(table.IDENTITY)
    assert [c for c in df.columns if c in table.METRIC] == [m.column for m in table.METRICS]
    assert len(df) == 6
    for _, row in df.iterrows():
        want = compare_alone(dict(row, max_map_count=None))
        for column in ("vmas", "vm_pte_bytes", "syscalls", "maps_lines", "syscalls_by_name"):
            assert same(row[column], want[column]), column
