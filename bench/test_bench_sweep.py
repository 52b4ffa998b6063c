"""A sweep of 2,000 small cells: the local Dask cluster against the same cells run serially.

    pytest bench/test_bench_sweep.py --benchmark-enable    # 1,995 cells
    pytest bench/test_bench_sweep.py                       # smoke: 105 cells, once

Serially is the worker's own code (`execute.run_job`) called cell after cell in this
process; the cluster is `distributed.LocalCluster`, one single-threaded worker process per
core, as `ptengine sweep` starts it (started, and ptengine imported in each worker, before
the timing: that start-up is recorded as a figure of its own). Targets (issue 14): the
cluster >= 1.7x faster than serial on this 2-core machine (cluster / serial <= 1 / 1.7),
and a scheduling overhead <= 10 ms per cell, measured as the worker time not spent in
cells, (wall time x workers - sum of the cells' own times) / cells: what Dask, batching,
pickling and idle workers cost together.

A control is recorded beside them: how much faster the same number of processes burn a
fixed amount of pure-Python work than one process does, here and now. On a machine whose
cores are shared with other jobs that figure is below the core count, and no sweep can
beat it; the sweep's speed-up should be read against it.
"""
import importlib
import os
import time

import pytest

from ptengine.sweep import execute, plan

# Seven models whose cells at scale 1..95 take ~1-7 ms each; x 3 strategies.
WORKLOADS = ["glibc_threads", "fiber_pool", "region_guards", "gwp_asan", "large_alloc", "jvm",
             "android_app"]


def spec(top):
    return (f"[[grid]]\nworkloads = {WORKLOADS!r}\nscale = {{ range = [1, {top}] }}\n"
            .replace("'", '"'))


@pytest.fixture(scope="module")
def local_cluster():
    t0 = time.perf_counter()
    with execute.local_client() as client:
        client.wait_for_workers(os.cpu_count())
        # Each worker imports ptengine once, at its first task: part of the start-up.
        client.run(importlib.import_module, "ptengine.sweep.execute")
        yield client, time.perf_counter() - t0


def _burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def parallel_headroom(workers, n=2_000_000):
    """(time of `workers` x n iterations in one process) / (the same in `workers`
    processes at once): the speed-up this machine gives right now."""
    import multiprocessing
    t0 = time.perf_counter()
    for _ in range(workers):
        _burn(n)
    serial = time.perf_counter() - t0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_burn, [1] * workers)                 # the pool's start-up, untimed
        t0 = time.perf_counter()
        pool.map(_burn, [n] * workers)
        return serial / (time.perf_counter() - t0)


def test_sweep_local_cluster_vs_serial(bench, smoke, local_cluster):
    client, startup = local_cluster
    jobs = plan(spec(5 if smoke else 95))
    workers = len(client.scheduler_info()["workers"])

    t0 = time.perf_counter()
    serial_rows = [execute.run_job(j) for j in jobs]
    serial = time.perf_counter() - t0

    got = {}

    def on_cluster():
        got["rows"] = execute.run_jobs(jobs, client)
    wall = bench.sim(on_cluster, rounds=1)
    rows = got["rows"]
    assert len(rows) == len(jobs) and not any(r["error"] for r in rows)
    assert [r["vmas"] for r in rows] == [r["vmas"] for r in serial_rows]

    compute = sum(r["cell_time_s"] for r in rows)
    overhead = (wall * workers - compute) / len(jobs)
    bench.ratio("local cluster / serial", wall, serial, at_most=1 / 1.7,
                goal=">= 1.7x faster than serial", ref_detail=f"serial, {len(jobs)} cells",
                note=f"{workers} workers")
    bench.figure("scheduling overhead per cell", overhead * 1e3, unit="ms", at_most=10,
                 goal="<= 10 ms per cell", reference="(wall x workers - cell time) / cells")
    bench.figure("parallel speed-up available here", parallel_headroom(workers), unit="x",
                 reference=f"{workers} busy processes vs 1 (control)")
    bench.figure("local cluster start-up", startup, unit="s",
                 reference="LocalCluster + Client, not in the ratio")
    bench.benchmark.extra_info.update(cells=len(jobs), workers=workers, serial_s=serial,
                                      cluster_s=wall, cell_compute_s=compute)
