"""Sweeps: every workload model across its parameters and strategies, on Dask, as a table
(mirrors no kernel file).

    df = ptengine.sweep.run("sweep.toml")                    # a local cluster, one worker
    df = ptengine.sweep.run(text_or_dict, "tcp://host:8786") # per core; or a scheduler

`run(spec, client=None)` returns a pandas DataFrame with one row per (cell, strategy,
repetition): the job's identity (kind, grid, cell_id, workload, strategy, repetition,
backend, scale_param, scale, max_map_count), every model parameter, every metric of
`ptengine.workloads.table.METRICS` (the ones `ptengine compare` reports), the figures
of a `traces` or `snapshots` grid's kind (table.TRACE_METRICS, table.SNAPSHOT_METRICS,
and the file's `source`; only when the SPEC has such a grid), then `error`
(None, or why the row has no figures), `cell_time_s`, `worker`, `ptengine_version` and
`host_profile`. `spec` is a path (os.PathLike, or a str with no newline and no '='), TOML
text, or the dict tomllib would make of it; `client` is None (a local cluster started and
stopped here), a scheduler address, or a distributed.Client. The SPEC is checked whole
before anything runs (`SpecError`, naming the line).
"""
import importlib.resources

from ..workloads import table
from . import execute, kinds
from .spec import SpecError, grids, load

__all__ = ["run", "plan", "SpecError", "EXAMPLE", "load"]

# The table's leading columns: the job, then who ran (the model's parameters follow).
FRONT = ("kind", "grid", "cell_id", "workload", "strategy", "repetition", "backend",
         "scale_param", "scale", "max_map_count")

EXAMPLE = importlib.resources.files(__package__).joinpath("example.toml").read_text()


def plan(spec):
    """The jobs of a SPEC, checked: one dict per row the sweep will produce."""
    s = load(spec)
    return kinds.expand(s, grids(s, kinds.KINDS))


def run(spec, client=None, *, resume=None, progress=False):
    """Run a sweep; see the module's doc. `resume` is an earlier table (a DataFrame or a
    Parquet path): its rows without an error are kept and their cells not run again."""
    jobs = plan(spec)
    kept = {}
    if resume is not None:
        import pandas as pd
        earlier = pd.read_parquet(resume) if not isinstance(resume, pd.DataFrame) else resume
        wanted = {kinds.job_key(j) for j in jobs}
        for row in earlier.astype(object).where(earlier.notna(), None).to_dict("records"):
            if row.get("error") is None and kinds.job_key(row) in wanted:
                kept[kinds.job_key(row)] = row
    todo = [j for j in jobs if kinds.job_key(j) not in kept]
    ran = execute.run_jobs(todo, client, progress) if todo else []
    fresh = {kinds.job_key(r): r for r in ran}
    rows = [kept.get(kinds.job_key(j)) or fresh[kinds.job_key(j)] for j in jobs]
    return table.frame(rows, FRONT, kinds.columns(jobs) | execute.PROVENANCE)
