"""The distributed path for real: `dask scheduler` and two `dask worker` processes on
127.0.0.1 (tests/sweep/conftest.py), a sweep sent to them by address, and a worker
killed in the middle of a sweep."""
import threading
import time

import pandas as pd

from ptengine import cli, sweep

SPEC = """\
[[grid]]
workloads = ["glibc_threads", "fiber_pool"]
scale = [4, 16, 64]
strategies = ["prot_none", "guard"]
repetitions = 2
"""


def test_sweep_on_a_dask_cluster(dask_cluster, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "r.parquet"
    status = cli.main(["sweep", str(spec), "--scheduler", dask_cluster.address, "-o", str(out),
                       "--plot", str(tmp_path / "r.png"), "--no-progress"])
    assert status == 0, capsys.readouterr()
    df = pd.read_parquet(out)
    jobs = sweep.plan(SPEC)
    assert len(df) == len(jobs) == 2 * 3 * 2 * 2
    assert df["error"].isna().all()
    assert sorted(df["cell_id"].unique()) == sorted({j["cell_id"] for j in jobs})
    # The figures are the models' own: the closed form of workloads.md §2 where it exists.
    assert (df["vmas"] == df["expected_vmas"]).all()
    glibc = df[(df["workload"] == "glibc_threads") & (df["strategy"] == "prot_none")]
    assert sorted(set(glibc["vmas"])) == [8, 32, 128]
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_a_cluster_of_another_ptengine_is_refused(dask_cluster, monkeypatch, capsys, tmp_path):
    """The scheduler unpickles every task: a scheduler or worker that imports another
    ptengine (or none) is named before any task is sent."""
    from ptengine.sweep import execute
    monkeypatch.setattr(execute, "__version__", "0.0-other")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    assert cli.main(["sweep", str(spec), "--scheduler", dask_cluster.address, "--no-progress",
                     "-o", str(tmp_path / "r.parquet")]) == 2
    err = capsys.readouterr().err
    assert "the cluster does not run this ptengine (0.0-other): scheduler: " in err
    assert err.count("worker tcp://127.0.0.1:") == 2
    assert not (tmp_path / "r.parquet").exists()


# Cells of ~0.1-0.3 s (musl's thread churn), so the sweep lasts long enough for a worker
# to die in the middle of it.
SLOW = """\
[[grid]]
workloads = ["musl_churn"]
live = [8, 16]
cycles = { range = [2000, 5000, 1000] }
strategies = ["prot_none", "guard", "guard_batched"]
"""


def test_a_lost_worker_loses_no_cell(dask_cluster):
    from distributed import Client
    jobs = sweep.plan(SLOW)
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(df=sweep.run(SLOW, dask_cluster.address)))
    with Client(dask_cluster.address, timeout="30s") as watcher:
        runner.start()
        victim = dask_cluster.address_of(watcher, 0)
        deadline = time.monotonic() + 120
        # Kill worker 0 while it holds batches of this sweep (and the sweep goes on).
        while not watcher.processing().get(victim):
            assert time.monotonic() < deadline and runner.is_alive(), "the sweep never got going"
            time.sleep(0.02)
        lost = len(watcher.processing()[victim])
        killed_mid_sweep = runner.is_alive()
        dask_cluster.kill_worker(0)
        runner.join(timeout=300)
        assert not runner.is_alive()
        assert len(watcher.scheduler_info()["workers"]) == 1
    assert killed_mid_sweep and lost >= 1
    df = result["df"]
    assert len(df) == len(jobs) == 2 * 4 * 3
    assert df["error"].isna().all(), df["error"].dropna().tolist()
    assert [tuple(r) for r in df[["cell_id", "strategy"]].itertuples(index=False)] == \
        [(j["cell_id"], j["strategy"]) for j in jobs]
    assert (df["vmas"] == df["expected_vmas"]).all()
