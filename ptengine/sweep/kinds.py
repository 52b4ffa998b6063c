"""What a sweep's cells can be: a registry of cell kinds, chosen by a grid's kind key.

A kind turns a checked grid into jobs (`expand`, on the client, before anything runs) and
one job into one table row (`run`, on a worker). A job is a plain dict: the row's
identity columns, which the worker's row repeats and a failed job's row keeps.

- `workloads`: workload models (ptengine.workloads), one job per (parameter point,
  max_map_count, strategy, repetition).
- `traces` (strace logs, for `ptengine replay`) and `snapshots` (/proc maps, for
  `ptengine whatif`): the SPEC accepts them, and they run once their modules are in the
  build (`requires`); until then a SPEC naming them is refused before anything runs.
"""
import dataclasses
import hashlib
import importlib.util
import itertools
import json

from ..workloads import table
from .spec import typed, values_of


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str                 # the `kind` column of its rows
    what: str                 # in words, for errors
    requires: str = ""        # the module that must be in the build
    expand: object = None     # (spec, Grid) -> [job dict]
    run: object = None        # job dict -> row dict (metrics added to the job's columns)

    def available(self):
        if self.expand is None or self.run is None:
            return False
        return not self.requires or importlib.util.find_spec(self.requires) is not None


def host_profile(job):
    """The name of the host profile a job's System models: a workload model runs under the
    profile it declares (an Android model under `android`), anything else under the
    reference machine's."""
    from .. import profile
    if job.get("kind") == "workload":
        from ..workloads import get
        return get(job["workload"]).host_profile.name
    return profile.get(None).name


def cell_id(*parts):
    """A stable short id of a cell (what it runs and with which values), the same in every
    run of the same SPEC: --resume matches rows by it."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# --- workloads --------------------------------------------------------------------------
def _workloads(spec, grid):
    from ..workloads import WORKLOADS, get
    names = grid.sources if isinstance(grid.sources, list) else [grid.sources]
    if names == ["all"]:
        return list(WORKLOADS.values())
    if not names:
        raise spec.error("workloads: empty list, the grid would have no cells", grid.index,
                         "workloads")
    out = []
    for n in names:
        try:
            out.append(get(n) if isinstance(n, str) else None)
        except KeyError as e:
            raise spec.error(f"workloads: {e.args[0]}", grid.index, "workloads") from None
        if out[-1] is None:
            raise spec.error(f"workloads: names are strings, got {n!r}", grid.index, "workloads")
    return out


def expand_workloads(spec, grid):
    wls = _workloads(spec, grid)
    reserved = table.reserved_columns() | set(JOB_COLUMNS)
    axes = {}                                     # workload name -> [(param, [values])]
    for key, raw in grid.entries.items():
        holders = [w for w in wls if key == "scale" or key in w.defaults]
        if not holders:
            known = sorted(set().union(*(w.defaults for w in wls)) | {"scale"})
            raise spec.error(f"unknown parameter {key!r}: no workload of this grid has it "
                             f"(they have: {', '.join(known)})", grid.index, key)
        values = values_of(spec, raw, grid.index, key)
        for w in holders:
            param = w.scale if key == "scale" else key
            if key == "scale" and w.scale in grid.entries:
                raise spec.error(f"scale: {w.name}'s scale parameter {w.scale!r} is set "
                                 f"too; give one of them", grid.index, key)
            assert param not in reserved, f"model parameter {param!r} shadows a column"
            axes.setdefault(w.name, []).append(
                (param, [typed(spec, v, w.defaults[param], grid.index, key) for v in values]))
    jobs = []
    for w in wls:
        keys = [k for k, _ in axes.get(w.name, [])]
        for combo in itertools.product(*(v for _, v in axes.get(w.name, []))):
            params = w.params(dict(zip(keys, combo)))
            for mmc in grid.max_map_counts:
                cid = cell_id("workload", w.name, params, mmc)
                for strategy in grid.strategies:
                    for rep in range(grid.repetitions):
                        job = dict(kind="workload", grid=grid.index + 1, cell_id=cid,
                                   repetition=rep, max_map_count=mmc)
                        job.update(table.identity(w.name, strategy, "sim", params))
                        jobs.append(job)
    return jobs


def run_workload(job):
    from ..workloads import get, run
    wl = get(job["workload"])
    result = run(wl.name, job["strategy"], {k: job[k] for k in wl.defaults},
                 max_map_count=job["max_map_count"])
    return table.result_row(result)


# The columns every job has besides the kind's identity (table.IDENTITY and parameters).
JOB_COLUMNS = ("kind", "grid", "cell_id", "repetition", "max_map_count")

# By the grid key that selects them, in the order errors list them.
KINDS = {
    "workloads": Kind("workload", "workload models", "", expand_workloads, run_workload),
    "traces": Kind("trace", "replaying strace logs (ptengine replay)", "ptengine.trace"),
    "snapshots": Kind("snapshot", "maps snapshots (ptengine whatif)", "ptengine.whatif"),
}


def expand(spec, grids):
    """Every job of every grid, in SPEC order, each (cell, strategy, repetition) once."""
    jobs, seen = [], set()
    for grid in grids:
        kind = KINDS[grid.kind]
        if not kind.available():
            raise spec.error(f"{grid.kind}: {kind.what} is not available in this build",
                             grid.index, grid.kind)
        for job in kind.expand(spec, grid):
            key = job_key(job)
            if key not in seen:
                seen.add(key)
                jobs.append(job)
    if not jobs:
        raise spec.error("empty grid: the SPEC expands to no cells")
    return jobs


def job_key(row):
    """What identifies a row: its cell, strategy and repetition."""
    return (row["cell_id"], row["strategy"], int(row["repetition"]))


def by_kind(name):
    return next(k for k in KINDS.values() if k.name == name)
