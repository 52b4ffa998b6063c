"""What a sweep's cells can be: a registry of cell kinds, chosen by a grid's kind key
(mirrors no kernel file).

A kind turns a checked grid into jobs (`expand`, on the client, before anything runs) and
one job into one table row (`run`, on a worker). A job is a plain dict: the row's
identity columns, which the worker's row repeats and a failed job's row keeps.

- `workloads`: workload models (ptengine.workloads), one job per (parameter point,
  max_map_count, strategy, repetition).
- `traces`: strace logs replayed on the simulator (`ptengine replay`), one job per
  (log, faults, max_map_count, strategy, repetition). Strategy `prot_none` replays the
  log as recorded (the program's own guards, PROT_NONE in these logs), `guard` and
  `guard_batched` replay it rewritten to markers (`replay --rewrite`, trace/rewrite.py).
- `snapshots`: maps/smaps listings under `ptengine whatif`, one job per (listing,
  convert_reservations, max_map_count, strategy, repetition). Strategy `prot_none` is the
  process as listed ("now"), `guard` the same process with its guards as markers
  ("markers"); whatif has no batched conversion, so `guard_batched` is not run.

Files are named by path or glob, relative to the SPEC file's directory (the working
directory for a SPEC given as text), and every worker reads them at that absolute path.
Each is read and parsed when the SPEC is checked, so a missing or unreadable file is a
SpecError naming the line, before anything runs.
"""
import dataclasses
import glob
import hashlib
import itertools
import json
import os

from .. import profile
from ..trace import maps, strace, whatif
from ..trace.replay import _anon_vma_name, replay
from ..workloads import WORKLOADS, get, run, table
from .spec import typed, values_of


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str                 # the `kind` column of its rows
    expand: object            # (spec, Grid) -> [job dict]
    run: object               # job dict -> row dict (metrics added to the job's columns)
    strategies: dict = dataclasses.field(       # SPEC strategy -> what it runs, in words
        default_factory=lambda: {s: s for s in ("prot_none", "guard", "guard_batched")})
    metrics: tuple = ()       # its figures beyond table.METRICS (table.*_METRICS)


def host_profile(job):
    """The name of the host profile a job's System models: a workload model runs under the
    profile it declares (an Android model under `android`); a log or a snapshot under the
    reference machine's with CONFIG_ANON_VMA_NAME as its file shows it (the job's
    `anon_vma_name`, read when the SPEC was checked: replay and build_mm set it so)."""
    if job.get("kind") == "workload":
        return get(job["workload"]).host_profile.name
    return profile.get(None).with_fields(anon_vma_name=bool(job["anon_vma_name"])).name


def cell_id(*parts):
    """A stable short id of a cell (what it runs and with which values), the same in every
    run of the same SPEC: --resume matches rows by it."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# --- workloads --------------------------------------------------------------------------
def _workloads(spec, grid):
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
    wl = get(job["workload"])
    result = run(wl.name, job["strategy"], {k: job[k] for k in wl.defaults},
                 max_map_count=job["max_map_count"])
    return table.result_row(result)


# --- files: traces and snapshots --------------------------------------------------------
def _base(spec):
    """Where a SPEC's relative paths start: its file's directory, else the working one."""
    if spec.source != "SPEC" and os.path.isfile(spec.source):
        return os.path.dirname(os.path.abspath(spec.source))
    return os.getcwd()


def _path(spec, name):
    return os.path.abspath(os.path.join(_base(spec), os.path.expanduser(name)))


def _files(spec, grid):
    """The absolute paths a grid's kind key names (paths or globs), each checked to exist."""
    named = grid.sources if isinstance(grid.sources, list) else [grid.sources]
    if not named:
        raise spec.error(f"{grid.kind}: empty list, the grid would have no cells", grid.index,
                         grid.kind)
    out = []
    for n in named:
        if not isinstance(n, str) or not n:
            raise spec.error(f"{grid.kind}: paths are strings, got {n!r}", grid.index, grid.kind)
        path = _path(spec, n)
        if glob.has_magic(n):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
            if not found:
                raise spec.error(f"{grid.kind}: no file matches {n!r}", grid.index, grid.kind)
            out.extend(found)
        elif not os.path.isfile(path):
            raise spec.error(f"{grid.kind}: no such file: {path}", grid.index, grid.kind)
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def _read(spec, grid, key, path, parse):
    """parse(path), or a SpecError naming the line that names the file."""
    try:
        return parse(path)
    except OSError as e:
        raise spec.error(f"{key}: cannot read {path}: {e.strerror or e}", grid.index,
                         key) from None
    except (ValueError, UnicodeError, EOFError) as e:
        raise spec.error(f"{key}: {path}: {e}", grid.index, key) from None


def _axes(spec, grid, entries, params):
    """[(name, [values])] of a file grid's parameters ({name: (default, allowed)}) in
    `entries`, every other key refused."""
    axes = []
    for key, raw in entries.items():
        if key not in params:
            raise spec.error(f"unknown parameter {key!r}: {grid.kind} grids take "
                             f"{', '.join(params) or 'none'}", grid.index, key)
        default, allowed = params[key]
        values = [typed(spec, v, default, grid.index, key)
                  for v in values_of(spec, raw, grid.index, key)]
        bad = next((v for v in values if allowed and v not in allowed), None)
        if bad is not None:
            raise spec.error(f"{key}: wants one of {', '.join(map(repr, allowed))}, got "
                             f"{bad!r}", grid.index, key)
        axes.append((key, values))
    return axes


def _file_jobs(spec, grid, kind, files, entries, params):
    """Jobs of a file grid: files × parameter points × max_map_count × strategy × rep.
    `files` is [(path, {column: value} the file gives)]; `params` {name: (default, allowed)}."""
    axes = _axes(spec, grid, entries, params)
    given = dict(axes)
    names = list(params)
    jobs = []
    for path, known in files:
        for combo in itertools.product(*(given.get(n, [params[n][0]]) for n in names)):
            point = dict(zip(names, combo))
            for mmc in grid.max_map_counts:
                cid = cell_id(kind, path, known, point, mmc)
                for strategy in grid.strategies:
                    for rep in range(grid.repetitions):
                        job = dict(kind=kind, grid=grid.index + 1, cell_id=cid,
                                   repetition=rep, max_map_count=mmc, workload=None,
                                   strategy=strategy, backend="sim", source=path)
                        job.update(known, **point)
                        jobs.append(job)
    return jobs


# --- traces ------------------------------------------------------------------------------
TRACE_PARAMS = {"faults": ("first-write", ("first-write", "none"))}   # replay's --faults


def _parse_log(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        calls, _ = strace.parse(f)
    if not calls:
        raise ValueError("no system call in it: not an strace log")
    return calls


def expand_traces(spec, grid):
    entries = dict(grid.entries)
    start = entries.pop("start_maps", None)          # one listing for every log of the grid
    if start is not None:
        if not isinstance(start, str):
            raise spec.error(f"start_maps: a path, got {start!r}", grid.index, "start_maps")
        start = _path(spec, start)
        _read(spec, grid, "start_maps", start, maps.read)
    files = [(path, {"start_maps": start, "anon_vma_name":
                     _anon_vma_name(_read(spec, grid, "traces", path, _parse_log))})
             for path in _files(spec, grid)]
    return _file_jobs(spec, grid, "trace", files, entries, TRACE_PARAMS)


def run_trace(job):
    """The log replayed as `ptengine replay [--rewrite STRATEGY]` does, on a System with
    the job's max_map_count."""
    calls = _parse_log(job["source"])
    start = maps.read(job["start_maps"]) if job["start_maps"] else None
    rewrite = None if job["strategy"] == "prot_none" else job["strategy"]
    result = replay(calls, start_maps=start, faults=job["faults"], rewrite=rewrite,
                    system_options={"anon_vma_name": job["anon_vma_name"],
                                    "max_map_count": job["max_map_count"]})
    return {m.column: m.get(result) for m in table.TRACE_METRICS}


# --- snapshots ---------------------------------------------------------------------------
SNAPSHOT_PARAMS = {"convert_reservations": (False, ())}       # whatif --reservations


def _load_snapshot(path):
    snap = whatif.load_file(path)
    if not snap.entries:
        raise ValueError("no maps line in it")
    return snap


def expand_snapshots(spec, grid):
    files = [(path, {"anon_vma_name": any(e.anon_name for e in
                                          _read(spec, grid, "snapshots", path,
                                                _load_snapshot).entries)})
             for path in _files(spec, grid)]
    return _file_jobs(spec, grid, "snapshot", files, grid.entries, SNAPSHOT_PARAMS)


def run_snapshot(job):
    """The listing under `ptengine whatif [--reservations] --max-map-count N`; the row
    takes the strategy's side of the report (now, or with markers)."""
    snap = whatif.load_file(job["source"], None, job["max_map_count"])
    report = whatif.whatif(snap, reservations=job["convert_reservations"])
    side = SNAPSHOT_STRATEGIES[job["strategy"]]
    return {m.column: m.get((report, side)) for m in table.SNAPSHOT_METRICS}


SNAPSHOT_STRATEGIES = {"prot_none": "now", "guard": "markers"}

# The columns every job has besides the kind's identity (table.IDENTITY and parameters).
JOB_COLUMNS = ("kind", "grid", "cell_id", "repetition", "max_map_count")

# By the grid key that selects them, in the order errors list them.
KINDS = {
    "workloads": Kind("workload", expand_workloads, run_workload),
    "traces": Kind("trace", expand_traces, run_trace,                  # ptengine replay
                   {"prot_none": "as recorded", "guard": "rewritten: guard",
                    "guard_batched": "rewritten: guard_batched"}, table.TRACE_METRICS),
    "snapshots": Kind("snapshot", expand_snapshots, run_snapshot,     # ptengine whatif
                      SNAPSHOT_STRATEGIES, table.SNAPSHOT_METRICS),
}


def columns(jobs):
    """{column: pandas type} of the figures the jobs' kinds add to table.METRICS, and of
    the columns their files give (the table's tail, before provenance)."""
    out = {}
    for name in dict.fromkeys(j["kind"] for j in jobs):
        kind = by_kind(name)
        out |= table.kind_columns(kind.metrics)
        if kind.metrics:
            out |= FILE_COLUMNS
    return out


# What a trace or snapshot job carries besides its parameters, with its pandas type.
FILE_COLUMNS = {"source": "string", "start_maps": "string", "anon_vma_name": "boolean"}


def expand(spec, grids):
    """Every job of every grid, in SPEC order, each (cell, strategy, repetition) once."""
    jobs, seen = [], set()
    for grid in grids:
        kind = KINDS[grid.kind]
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
